"""The app's input widgets: the builder each input kind is shown with (:data:`WIDGETS`, a table from
the kind's :class:`~smapgan.ops.Input` subclass to its builder), and their event wiring (points placed
by clicks, slider previews, overlays drawn by the page).

The op specs know nothing of the app: a new kind is one class in its op's module, shown as a text box
(its text form is what ``--set`` takes) unless it has an entry here.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypeVar

import gradio as gr

from ..intake import images as imageio
from ..intake import limits
from ..intake.align import FaceNotFound
from ..intake.faces import FaceSupportMissing
from ..ops import spec
from . import blobs
from .intake import file_source, image_source, preview_image

if TYPE_CHECKING:
    from .outputs import OutputBinding

T = TypeVar("T")
BRUSH_COLOR = "#ff2a6d"
UI_DIR = Path(__file__).resolve().parent.parent / "assets" / "app"
PREVIEW_EVENT = dict(concurrency_id="preview", concurrency_limit=limits.PREVIEW_CONCURRENCY)
"""Upload previews and point clicks decode the user's files: they run in the queue (its per-client caps
apply; ``queue=False`` events can be joined by fn_index and would run unbounded), in one lane of their own."""


def display_side(model_size: int, target: int = 256) -> int:
    """Canvas side: the model size times a whole factor, near ``target`` (exact paint <-> pixel mapping)."""
    return model_size * max(1, target // model_size)


@dataclass
class Widget:
    """The components of one op input, their API parameter names, and how their values become the op's value."""

    item: spec.Input
    components: list[Any]
    params: list[str]
    """One API parameter per component, in order (the endpoint takes them by these names)."""
    to_value: Callable[[list[Any]], Any]
    """The components' values (in ``params`` order) as the raw value :meth:`spec.Op.run` takes (nothing decoded)."""
    connect: Callable[["Tab"], None] | None = None
    """Wiring that needs the tab's other widgets or outputs (called once all of them exist)."""


@dataclass
class Tab:
    """What an input's :attr:`Widget.connect` may wire to: the op's tab, once every component exists."""

    op: spec.Op
    inputs: dict[str, Widget]
    outputs: list["OutputBinding"]
    session: Any
    """The per-session ``gr.State``: each op's last run (its first input, its values, its error)."""
    status: Any
    overlays: list[dict[str, Any]]
    """Entries for the page script: a box or points drawn on the image component they refer to."""


@dataclass
class PhotoIntake:
    """An upload previewed as a photo for the chosen model (the app's intake: :mod:`smapgan.app.builder`).

    ``preview(source, *values)``, given the values of ``inputs`` (the model, crop and face controls),
    returns the model's side and, where the photo is not simply center-cropped, the crop the model will
    see (shown beside the photo, which stays as uploaded: the result goes back into it), a note and the
    number of faces found (``face`` is shown when there are several).
    """

    inputs: list[Any]
    face: Any
    preview: Callable[..., tuple[int, Any, str, int]]
    views: list[Any]
    """The crop views made: another model crops differently, so a model switch empties them (an empty one
    is not shown: ``ui.css``, so that neither needs a change of visibility, which Gradio sends dearly)."""


EMPTY_EDITOR = {"background": None, "layers": [], "composite": None}
"""An editor with no image: the starting value (and so the API default) of an optional canvas."""


class WidgetFactory:
    """What a widget builder makes one input's components with, for one op's tab.

    ``initial``: starting values by API parameter name (the op's default example); ``prefix``:
    components get ``elem_id`` ``<prefix>-<parameter>`` (for tests and styling); ``status``: a
    Markdown where an image that cannot be read is reported (the input is then cleared).
    """

    def __init__(
        self, model: Any, display: int, initial: dict[str, Any] | None = None, prefix: str = "", status: Any = None,
        examples_dir: Path | None = None, photo: PhotoIntake | None = None,
    ) -> None:
        self.model = model
        self.photo = photo  # plain image uploads are previewed as photos for the chosen model
        self.size = model.config.size
        self.display = display
        self.initial = initial or {}
        self.prefix = prefix
        self.status = status
        self.examples_dir = examples_dir

    def build(self, item: spec.Input) -> Widget:
        """The input's widget, made by its kind's builder (inside the current Gradio layout context)."""
        return for_kind(WIDGETS, item)(self, item)

    def elem_id(self, param: str) -> str | None:
        return f"{self.prefix}-{param}" if self.prefix else None

    def start(self, param: str, default: Any) -> Any:
        """The component's starting value: the example's, else ``default``."""
        value = self.initial.get(param)
        return default if value is None else value

    def single(self, item: spec.Input, component: Any, connect: Callable[[Tab], None] | None = None) -> Widget:
        """One component whose value goes to the op as it came: :meth:`spec.Op.run` reads it with the
        input's ``parse`` (and the limits: :func:`spec.parse_input`), as it reads a Python caller's."""
        return Widget(item, [component], [item.name], lambda v: v[0], connect)


def for_kind(table: Mapping[type, T], item: spec.Input) -> T:
    """``table``'s entry for the input's kind, or for the nearest kind it derives from (its class's MRO)."""
    return next(table[kind] for kind in type(item).__mro__ if kind in table)


def text_field(ui: WidgetFactory, item: spec.Input) -> Widget:
    """A text field (any kind's fallback: its text form is what ``--set`` takes)."""
    default = item.default_value(ui.model)
    comp = gr.Textbox(
        value=ui.start(item.name, "" if default is None else str(default)), label=item.title,
        info=item.info or None, elem_id=ui.elem_id(item.name),
    )
    return ui.single(item, comp)


def slider(ui: WidgetFactory, item: spec.SliderInput) -> Widget:
    """A slider; one that ``previews`` a frames output shows the nearest frame already rendered as it moves."""
    step = item.step if item.step is not None else (1 if item.integer else (item.maximum - item.minimum) / 100)
    comp = gr.Slider(
        item.minimum, item.maximum, value=ui.start(item.name, item.default), step=step, label=item.title,
        info=item.info or None, elem_id=ui.elem_id(item.name),
    )
    return ui.single(item, comp, (lambda tab: _connect_preview(tab, item, comp)) if item.previews else None)


def number_field(ui: WidgetFactory, item: spec.NumberInput) -> Widget:
    comp = gr.Number(
        value=ui.start(item.name, item.default), precision=0 if item.integer else None, label=item.title,
        info=item.info or None, elem_id=ui.elem_id(item.name),
    )
    return ui.single(item, comp)


def dropdown(ui: WidgetFactory, item: spec.ChoiceInput) -> Widget:
    options = item.options(ui.model)
    info = item.info or None
    if not options:
        info = "nothing to choose from for this model" + (f" ({item.info})" if item.info else "")
    comp = gr.Dropdown(
        choices=options, value=ui.start(item.name, item.default_value(ui.model)), label=item.title, info=info,
        elem_id=ui.elem_id(item.name),
    )
    return ui.single(item, comp)


def points_field(ui: WidgetFactory, item: spec.PointsInput) -> Widget:
    """A text field of points; placed ``on`` an image, a click there adds one, drawn on it by the page."""
    where = f"click on {item.on}" if item.on else "x,y"
    elem_id = ui.elem_id(item.name)
    comp = gr.Textbox(
        value=ui.start(item.name, ""), label=item.title, info=item.info or None,
        placeholder=f"x,y; x,y in [0,1] ({where})", elem_id=elem_id,
    )
    if not item.on:
        return ui.single(item, comp)
    # The image it is placed on stays; only the points go.
    gr.Button(f"Clear {item.title.lower()}", size="sm", elem_id=f"{elem_id}-clear" if elem_id else None).click(
        lambda: "", None, comp, queue=False, api_visibility="private"
    )

    def connect(tab: Tab) -> None:
        _connect_points(tab, item, comp)
        _overlay(tab, item, item.on, "points")

    return ui.single(item, comp, connect)


def box_field(ui: WidgetFactory, item: spec.BoxInput) -> Widget:
    """A text field ``x0,y0,x1,y1``; placed ``on`` an image, the page draws it there."""
    comp = gr.Textbox(
        value=ui.start(item.name, ""), label=item.title, info=item.info or None,
        placeholder="x0,y0,x1,y1 in [0,1]", elem_id=ui.elem_id(item.name),
    )
    return ui.single(item, comp, (lambda tab: _overlay(tab, item, item.on, "box")) if item.on else None)


def image_uploads(ui: WidgetFactory, item: spec.ImageInput) -> Widget:
    """An image upload (an editor to brush on when the input takes a mask); one per image of ``count``.

    A file that cannot be read is refused at upload, in editors too: the tab's status line says why
    (the decoder's message), the input is emptied and so are the tab's results, which belonged to it.
    """
    size, display = ui.size, ui.display
    uploads: list[tuple[Any, Any]] = []  # (component, its editor's upload guard; None for a plain upload)

    def make(label: str, param: str, optional: bool) -> Any:
        elem_id = ui.elem_id(param)
        if item.mask == "none":
            comp = gr.Image(
                ui.initial.get(param), type="filepath", image_mode=None, sources=["upload", "clipboard"], label=label,
                format="png", elem_id=elem_id, elem_classes=["smapgan-picture"],
            )
            uploads.append((comp, None))
        else:
            # An optional canvas starts empty rather than None: Gradio lists a parameter whose component
            # has a value as optional, with that value as its default (gradio_client may leave it out).
            comp = gr.ImageEditor(
                ui.start(param, dict(EMPTY_EDITOR, layers=[]) if optional else None), type="filepath",
                elem_id=elem_id, elem_classes=["smapgan-editor"], image_mode="RGBA", format="png", label=label,
                sources=("upload", "clipboard"), transforms=(), layers=False,
                brush=gr.Brush(default_size=max(4, display // 24), colors=[(BRUSH_COLOR, 0.6)], color_mode="fixed"),
                eraser=gr.Eraser(default_size=max(4, display // 24)), canvas_size=(display, display), fixed_canvas=True,
            )
            blobs.bounded(comp)  # canvas uploads: per session, bounded
            # No server round trip on upload: the canvas shows the uploaded image at once (fitted into
            # the square canvas) and keeps every stroke; replacing the value from the server would
            # reload the canvas and drop what was drawn meanwhile. Only a file the browser cannot draw
            # goes to the server (the guard), to be refused.
            guard = None
            if elem_id:
                guard = gr.HTML(
                    "", html_template="<span></span>", js_on_load=(UI_DIR / "guard.js").read_text(),
                    config=elem_id, visible="hidden", elem_id=f"{elem_id}-guard", container=False, padding=False,
                )
                # strokes are undone one by one in the browser: the image stays, nothing reloads
                gr.Button("Clear mask", size="sm", elem_id=f"{elem_id}-clear").click(
                    None, js=f"() => window.smapganClearMask && window.smapganClearMask('{elem_id}')"
                )
            uploads.append((comp, guard))
        return comp

    def connect(tab: Tab) -> None:
        if tab.status is not None:
            for comp, guard in uploads:
                if guard is None:
                    _connect_upload(tab, comp, size, display, ui.photo)
                else:
                    _connect_unreadable(tab, guard, size)

    if item.count == 1:
        params = [item.name]
        components = [make(item.title, item.name, False)]
    else:
        params = [f"{item.name}_{i}" for i in range(1, item.count + 1)]
        components = [make(f"{item.title} 1", params[0], False)]
        with gr.Accordion(f"More ({item.count - 1})", open=False):
            components += [make(f"{item.title} {i}", params[i - 1], True) for i in range(2, item.count + 1)]

    def to_value(values: list[Any]) -> Any:
        sources = [image_source(item, v) for v in values]
        return sources[0] if item.count == 1 else [s for s in sources if s is not None]

    return Widget(item, components, params, to_value, connect)


def _refused(tab: Tab, state: Any, message: str) -> list[Any]:
    """A refused upload: the tab's status line says why, and its results and last run (whose frames the
    previews show) are emptied, as they belonged to the old input. Values for [status, *stale outputs]."""
    if isinstance(state, dict):
        state.pop(tab.op.name, None)
    return [status_text(message, error=True), *(v for o in tab.outputs for v in o.blank())]


def _stale(tab: Tab) -> list[Any]:
    """The tab's result components and views: what a refused upload empties."""
    return [c for o in tab.outputs for c in (*o.components, *o.views)]


def _connect_upload(tab: Tab, comp: Any, size: int, display: int, photo: PhotoIntake | None = None) -> None:
    """A plain upload is decoded on the server for its preview: the center crop replaces it, or (a
    ``photo`` whose model aligns faces) the crop is shown beside it. A refused upload is emptied
    (:func:`_refused`); no face found keeps the photo (the center crop is still a choice). Any other
    upload clears an earlier message."""
    stale = _stale(tab)
    keep = [gr.skip() for _ in stale]
    extra: list[Any] = []
    if photo is not None:
        view = gr.Image(label="What the model sees (aligned)", type="pil", interactive=False,
                        elem_id=f"{comp.elem_id}-crop" if comp.elem_id else None, elem_classes=["smapgan-crop"],
                        height=display + 60)
        photo.views.append(view)
        extra = [view, photo.face]
    hidden = [None, gr.skip()][: len(extra)]

    def on_upload(payload: Any, state: Any, *choices: Any) -> list[Any]:
        source = file_source(payload) if payload else None
        if source is None:
            return [gr.skip(), "", *hidden, *keep]
        try:
            with limits.pixel_budget():
                side, cropped, note, faces = (size, None, "", 0) if photo is None else photo.preview(source, *choices)
                if cropped is None:
                    return [preview_image(source, side, display), "", *hidden, *keep]
        except FaceNotFound as exc:
            return [gr.skip(), status_text(str(exc), error=True), None, gr.update(visible=False), *keep]
        except (imageio.ImageInputError, limits.LimitError, spec.OpError, FaceSupportMissing, ValueError) as exc:
            status, *blank = _refused(tab, state, str(exc))
            return [None, status, *hidden, *blank]
        shown = imageio.preview(cropped, display)
        face_update = gr.update(visible=True, maximum=faces - 1) if faces > 1 else gr.skip()
        return [gr.skip(), status_text(note), shown, face_update, *keep]

    choices = photo.inputs if photo is not None else []
    comp.upload(on_upload, [comp, tab.session, *choices], [comp, tab.status, *extra, *stale], preprocess=False,
                api_visibility="private", **PREVIEW_EVENT)


def _connect_unreadable(tab: Tab, guard: Any, size: int) -> None:
    """An editor's file reaches the server only when the browser could not draw it (``guard``: ``guard.js``,
    which also empties the editor in the browser; a value sent from here would leave it stuck
    "processing"): the decoder then says why, and the upload is refused (:func:`_refused`)."""

    def on_unreadable(state: Any, event: gr.EventData) -> list[Any]:
        data = event._data if isinstance(event._data, dict) else {}
        return _refused(tab, state, _why_unreadable(data.get("path"), data.get("name"), size))

    guard.submit(on_unreadable, [tab.session], [tab.status, *_stale(tab)], api_visibility="private", **PREVIEW_EVENT)


def _why_unreadable(path: Any, name: Any, size: int) -> str:
    """Why the browser could not draw an uploaded file: the decoder's message, as for a plain upload."""
    if not path:
        return "the upload did not arrive; upload the image again"
    try:
        with limits.pixel_budget():
            imageio.load_image(file_source({"path": path}), size)
    except (imageio.ImageInputError, limits.LimitError) as exc:
        return str(exc)
    return f"image {str(name)!r} cannot be drawn on in this browser; upload it as PNG, JPEG or WEBP"


def _overlay(tab: Tab, item: spec.Input, on: str, kind: str) -> None:
    """Ask the page script to draw ``item``'s value (a box or points) on the image component it is placed on."""
    target = tab.inputs.get(on)
    if target is None:
        return
    tab.overlays.append({
        "source": f"{tab.op.name}-{item.name}",
        "target": f"{tab.op.name}-{target.params[0]}",
        "kind": kind,
        "editor": isinstance(target.components[0], gr.ImageEditor),
    })


def _connect_points(tab: Tab, item: spec.PointsInput, box: Any) -> None:
    """Clicking on the image appends a point (fractions of the center square) to the points field."""
    target = tab.inputs.get(item.on)
    if target is None or not isinstance(target.components[0], gr.Image):
        return
    image = target.components[0]

    def add_point(payload: Any, points: str, evt: gr.SelectData) -> str:
        source = file_source(payload)
        if source is None or evt.index is None:
            return points
        try:
            width, height = imageio.image_size(source)  # from the header: nothing decoded
        except imageio.ImageInputError as exc:
            raise gr.Error(str(exc)) from None
        side = min(width, height)
        x = (evt.index[0] - (width - side) / 2 + 0.5) / side
        y = (evt.index[1] - (height - side) / 2 + 0.5) / side
        point = f"{min(max(x, 0.0), 1.0):.3f},{min(max(y, 0.0), 1.0):.3f}"
        return f"{points}; {point}" if points and points.strip() else point

    image.select(add_point, [image, box], box, preprocess=False, api_visibility="private", **PREVIEW_EVENT)


def _connect_preview(tab: Tab, item: spec.SliderInput, slider: Any) -> None:
    """Moving the slider shows the nearest frame of ``item.previews`` already rendered, with no run."""
    image = next((o for o in tab.outputs if isinstance(o.item, spec.ImageOutput)), None)
    if image is None:
        return
    targets = image.views if image.show is not None else image.components
    name = tab.op.name

    def preview(state: dict, value: float) -> list[Any]:
        memo = state.get(name) or {}
        # Only a finished run's frames: a streaming run's frames so far would map the slider wrongly.
        frames = (memo.get("values") or {}).get(item.previews) if "elapsed" in memo else None
        if not frames:
            return [gr.skip()] * (1 + len(targets))
        span = item.maximum - item.minimum
        index = round((float(value) - item.minimum) / span * (len(frames) - 1)) if span else 0
        index = min(max(index, 0), len(frames) - 1)
        text = (f"Preview: frame {index + 1} of {len(frames)} already rendered; "
                f"Run renders {item.name} {float(value):g} exactly.")
        frame = frames[index]
        shown = image.show(memo.get("before"), frame) if image.show else [imageio.tensor_to_image(frame)]
        return [status_text(text), *shown]

    slider.input(preview, [tab.session, slider], [tab.status, *targets], queue=False, api_visibility="private")


def status_text(message: str = "", error: bool = False) -> str:
    """A tab's status line (Markdown); errors are marked so that they stand out."""
    if not message:
        return ""
    text = html.escape(message, quote=False)
    return f'<span class="smapgan-error">{text}</span>' if error else text


WIDGETS: dict[type, Callable[[WidgetFactory, Any], Widget]] = {
    spec.Input: text_field,
    spec.SliderInput: slider,
    spec.NumberInput: number_field,
    spec.ChoiceInput: dropdown,
    spec.PointsInput: points_field,
    spec.BoxInput: box_field,
    spec.ImageInput: image_uploads,
}
"""Each input kind's widget builder ``builder(ui, item)``; a kind without an entry gets its nearest base
kind's (:func:`for_kind`), in the end :func:`text_field`. A new kind with a widget of its own adds one entry."""
