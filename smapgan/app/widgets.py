"""The widget factory input kinds build their components with, output widgets, and the conversions
between widget values and op values.

The app builder never names an op nor an input kind: each input's kind picks its widget from a
:class:`WidgetFactory` (``item.widget(ui)``), whose :class:`Widget` turns what Gradio hands over
(file paths, ImageEditor dicts, strings) into what :meth:`~smapgan.ops.Op.run` takes; output
bindings turn op results (tensors) into what the output components show. Only Gradio's public
API is used here; the one internal the upload check needs is in :mod:`.gradio_internals`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gradio as gr
import numpy as np
from PIL import Image

from ..intake import images as imageio
from ..intake import limits
from ..ops import spec
from ..ops.context import OpContext
from . import blobs, gradio_internals

BRUSH_COLOR = "#ff2a6d"
PREVIEW_EVENT = dict(concurrency_id="preview", concurrency_limit=limits.PREVIEW_CONCURRENCY)
"""Upload previews and point clicks decode the user's files: they run in the queue (its per-client caps
apply; ``queue=False`` events can be joined by fn_index and would run unbounded), in one lane of their own."""


def display_side(model_size: int, target: int = 256) -> int:
    """Canvas side: the model size times a whole factor, near ``target`` (exact paint <-> pixel mapping)."""
    return model_size * max(1, target // model_size)


def preview_image(source: Any, model_size: int, display: int) -> Image.Image:
    """What the model will see (center crop + resize), upscaled for display."""
    return imageio.preview(imageio.load_image(source, model_size), display)


def editor_value(image: Image.Image | None, mask: np.ndarray | None = None) -> dict[str, Any]:
    """An ImageEditor value: background plus one brush layer drawn from a boolean mask."""
    layers = []
    if image is not None and mask is not None:
        layers = [mask_layer(mask, image.size[0])]
    return {"background": image, "layers": layers, "composite": None}


def mask_layer(mask: np.ndarray, side: int) -> Image.Image:
    """A transparent RGBA layer with the brush color where ``mask`` is set (resized to ``side``)."""
    selected = Image.fromarray(mask.astype(np.uint8) * 255).resize((side, side), Image.Resampling.NEAREST)
    rgba = np.zeros((side, side, 4), dtype=np.uint8)
    color = tuple(int(BRUSH_COLOR[i : i + 2], 16) for i in (1, 3, 5))
    sel = np.asarray(selected) > 0
    rgba[sel] = (*color, 160)
    return Image.fromarray(rgba)


def file_source(payload: Any) -> Any:
    """The file behind a raw (not preprocessed) Gradio file payload: a path, bytes, or None."""
    if payload is None or isinstance(payload, (bytes, bytearray)):
        return payload or None
    if isinstance(payload, str):
        return _uploaded(payload) if payload else None
    if isinstance(payload, dict):
        path = payload.get("path")
        return _uploaded(path) if path else None
    path = getattr(payload, "path", None)
    if path is None:
        raise imageio.ImageInputError(f"expected an image file, got {type(payload).__name__}")
    return _uploaded(path)


def _uploaded(path: Any) -> Any:
    """``path``, if it may be read for the request being served: a file Gradio stored (an upload or output).

    Gradio checks the paths of file payloads only when they carry its ``meta`` marker; with
    preprocessing off, a bare ``{"path": "/any/server/file"}`` would reach the decoder. Outside a
    running app (the CLI, direct calls) any path is the caller's own and is left alone.
    """
    if gradio_internals.serving_app() is None:
        return path
    if not isinstance(path, (str, os.PathLike)) or not gradio_internals.is_in_or_equal(path, gradio_internals.upload_folder()):
        raise imageio.ImageInputError("only files uploaded to this app can be used; upload the image instead")
    return path


def editor_sources(component: Any, payload: Any) -> dict[str, Any] | None:
    """Background, layers and composite of a raw ImageEditor payload, as paths or bytes.

    The browser uploads canvases as blobs kept for its session under ``payload["id"]`` (:mod:`.blobs`);
    API clients send files. Gradio's own preprocessing (which decodes without limits)
    is bypassed so that every image goes through :mod:`smapgan.intake.images`.
    """
    if payload is None:
        return None
    if not isinstance(payload, dict):
        return {"background": file_source(payload), "layers": [], "composite": None}
    blob_id = payload.get("id")
    stored = blobs.take(blob_id) if blob_id is not None else None  # only this session's own uploads
    if stored is not None:
        return {
            "background": stored["background"] or None,
            "layers": [layer for layer in stored["layers"] if layer],
            "composite": stored["composite"] or None,
        }
    layers = payload.get("layers") or []
    if not isinstance(layers, list) or len(layers) > limits.MAX_LAYERS:
        count = len(layers) if isinstance(layers, list) else "malformed"
        raise imageio.ImageInputError(f"an editor value has {count} layers; the limit is {limits.MAX_LAYERS}")
    return {
        "background": file_source(payload.get("background")),
        "layers": [s for s in (file_source(layer) for layer in layers) if s is not None],
        "composite": file_source(payload.get("composite")),
    }


def editor_mask(sources: dict[str, Any], model_size: int) -> np.ndarray | None:
    """Union of an editor's layers as a boolean mask at the model's size (None: no strokes)."""
    layers = sources.get("layers") or []
    if not layers:
        return None
    background = sources.get("background") or sources.get("composite")
    size = imageio.image_size(background) if background is not None else None  # header only
    union: np.ndarray | None = None
    for layer in layers:
        with imageio.decoding(layer):
            image = imageio.open_image(layer)
            if size is not None and image.size != size:
                image = image.resize(size, Image.Resampling.NEAREST)
            selected = imageio.mask_pixels(image)
            del image
        union = selected if union is None else (union | selected)
    assert union is not None
    return imageio.fit_mask(union, model_size) if union.any() else None


@dataclass
class Widget:
    """The components of one op input, their API parameter names, and how their values become the op's value."""

    item: spec.Input
    components: list[Any]
    params: list[str]
    """One API parameter per component, in order (the endpoint takes them by these names)."""
    to_value: Callable[[OpContext, list[Any]], Any]
    """The components' values (in ``params`` order) as a value :meth:`spec.Op.run` takes."""
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


EMPTY_EDITOR = {"background": None, "layers": [], "composite": None}
"""An editor with no image: the starting value (and so the API default) of an optional canvas."""


class WidgetFactory:
    """What an input kind builds its widget with, for one op's tab.

    The spec classes (:mod:`smapgan.ops.spec`) never import Gradio: their ``widget(ui)`` picks one
    of these builders, or makes any Gradio component with :attr:`gr` and wraps it with
    :meth:`single`. ``initial``: starting values by API parameter name (the op's default example);
    ``prefix``: components get ``elem_id`` ``<prefix>-<parameter>`` (for tests and styling);
    ``status``: a Markdown where an image that cannot be read is reported (the input is then cleared).
    """

    def __init__(
        self, model: Any, display: int, initial: dict[str, Any] | None = None, prefix: str = "", status: Any = None,
        examples_dir: Path | None = None,
    ) -> None:
        self.model = model
        self.size = model.config.size
        self.display = display
        self.initial = initial or {}
        self.prefix = prefix
        self.status = status
        self.examples_dir = examples_dir

    @property
    def gr(self) -> Any:
        """The Gradio module, for a kind that needs a component no builder here makes."""
        return gr

    def build(self, item: spec.Input) -> Widget:
        """The input's widget, as its kind makes it (inside the current Gradio layout context)."""
        return item.widget(self)

    def elem_id(self, param: str) -> str | None:
        return f"{self.prefix}-{param}" if self.prefix else None

    def start(self, param: str, default: Any) -> Any:
        """The component's starting value: the example's, else ``default``."""
        value = self.initial.get(param)
        return default if value is None else value

    def single(self, item: spec.Input, component: Any, connect: Callable[[Tab], None] | None = None) -> Widget:
        """One component whose value goes to the op as it came: :meth:`spec.Op.run` reads it with the
        input's ``parse`` (and the limits: :func:`spec.parse_input`), as it reads a Python caller's."""
        return Widget(item, [component], [item.name], lambda ctx, v: v[0], connect)

    def text(self, item: spec.Input, placeholder: str = "") -> Widget:
        """A text field (any kind's fallback: its text form is what ``--set`` takes)."""
        default = item.default_value(self.model)
        comp = gr.Textbox(
            value=self.start(item.name, "" if default is None else str(default)), label=item.title,
            info=item.info or None, placeholder=placeholder or None, elem_id=self.elem_id(item.name),
        )
        return self.single(item, comp)

    def slider(self, item: spec.SliderInput) -> Widget:
        """A slider; one that ``previews`` a frames output shows the nearest frame already rendered as it moves."""
        step = item.step if item.step is not None else (1 if item.integer else (item.maximum - item.minimum) / 100)
        comp = gr.Slider(
            item.minimum, item.maximum, value=self.start(item.name, item.default), step=step, label=item.title,
            info=item.info or None, elem_id=self.elem_id(item.name),
        )
        return self.single(item, comp, (lambda tab: _connect_preview(tab, item, comp)) if item.previews else None)

    def number(self, item: spec.NumberInput) -> Widget:
        comp = gr.Number(
            value=self.start(item.name, item.default), precision=0 if item.integer else None, label=item.title,
            info=item.info or None, elem_id=self.elem_id(item.name),
        )
        return self.single(item, comp)

    def dropdown(self, item: spec.Input, options: list[str]) -> Widget:
        info = item.info or None
        if not options:
            info = "nothing to choose from for this model" + (f" ({item.info})" if item.info else "")
        comp = gr.Dropdown(
            choices=options, value=self.start(item.name, item.default_value(self.model)), label=item.title, info=info,
            elem_id=self.elem_id(item.name),
        )
        return self.single(item, comp)

    def points(self, item: spec.PointsInput) -> Widget:
        """A text field of points; placed ``on`` an image, a click there adds one, drawn on it by the page."""
        where = f"click on {item.on}" if item.on else "x,y"
        elem_id = self.elem_id(item.name)
        comp = gr.Textbox(
            value=self.start(item.name, ""), label=item.title, info=item.info or None,
            placeholder=f"x,y; x,y in [0,1] ({where})", elem_id=elem_id,
        )
        if not item.on:
            return self.single(item, comp)
        # The image it is placed on stays; only the points go.
        gr.Button(f"Clear {item.title.lower()}", size="sm", elem_id=f"{elem_id}-clear" if elem_id else None).click(
            lambda: "", None, comp, queue=False, api_visibility="private"
        )

        def connect(tab: Tab) -> None:
            _connect_points(tab, item, comp)
            _overlay(tab, item, item.on, "points")

        return self.single(item, comp, connect)

    def box(self, item: spec.BoxInput) -> Widget:
        """A text field ``x0,y0,x1,y1``; placed ``on`` an image, the page draws it there."""
        comp = gr.Textbox(
            value=self.start(item.name, ""), label=item.title, info=item.info or None,
            placeholder="x0,y0,x1,y1 in [0,1]", elem_id=self.elem_id(item.name),
        )
        return self.single(item, comp, (lambda tab: _overlay(tab, item, item.on, "box")) if item.on else None)

    def images(self, item: spec.ImageInput) -> Widget:
        """An image upload (an editor to brush on when the input takes a mask); one per image of ``count``."""
        return _image_input(self, item)

    def image_example(self, item: spec.ImageInput, value: Any) -> dict[str, Any]:
        """Component values of an image input for an example's file name(s), by API parameter name."""
        assert self.examples_dir is not None, "examples need the factory's examples_dir"
        # No preset mask in the app: a layer given with the value cannot be undone (and the
        # editor logs "No draw texture found for layer" for it); the user brushes instead.
        if item.count == 1:
            shown = None if value is None else example_value(item, value, None, self.size, self.display, self.examples_dir)
            return {item.name: shown}
        values = list(value or [])
        return {
            f"{item.name}_{i + 1}": None if i >= len(values) or values[i] is None else example_value(
                item, values[i], None, self.size, self.display, self.examples_dir
            )
            for i in range(item.count)
        }


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

    def add_point(payload: Any, points: str, evt: gr.SelectData, multiple: bool = item.multiple) -> str:
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
        return f"{points}; {point}" if points and points.strip() and multiple else point

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
    return f'<span class="smapgan-error">{_escape(message)}</span>' if error else _escape(message)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _image_input(ui: WidgetFactory, item: spec.ImageInput) -> Widget:
    size, display, status = ui.size, ui.display, ui.status

    def make(label: str, param: str, optional: bool) -> Any:
        elem_id = ui.elem_id(param)
        if item.mask == "none":
            comp = gr.Image(
                ui.initial.get(param),
                type="filepath",
                image_mode=None,
                sources=["upload", "clipboard"],
                label=label,
                format="png",
                elem_id=elem_id,
                elem_classes=["smapgan-picture"],
            )

            def on_upload(payload: Any) -> Any:
                # A file that cannot be read: say why in the tab's status line and clear the input,
                # so that the next upload starts from an empty, working component.
                try:
                    with limits.pixel_budget():
                        shown = preview_image(file_source(payload), size, display) if payload else None
                except (imageio.ImageInputError, limits.LimitError) as exc:
                    return (None, status_text(str(exc), error=True)) if status is not None else None
                return (shown, "") if status is not None else shown

            comp.upload(
                on_upload,
                comp,
                [comp, status] if status is not None else comp,
                preprocess=False,
                api_visibility="private",
                **PREVIEW_EVENT,
            )
        else:
            # An optional canvas starts empty rather than None: Gradio lists a parameter whose component
            # has a value as optional, with that value as its default (gradio_client may leave it out).
            comp = gr.ImageEditor(
                ui.start(param, dict(EMPTY_EDITOR, layers=[]) if optional else None),
                type="filepath",
                elem_id=elem_id,
                elem_classes=["smapgan-editor"],
                image_mode="RGBA",
                format="png",
                label=label,
                sources=("upload", "clipboard"),
                transforms=(),
                layers=False,
                brush=gr.Brush(default_size=max(4, display // 24), colors=[(BRUSH_COLOR, 0.6)], color_mode="fixed"),
                eraser=gr.Eraser(default_size=max(4, display // 24)),
                canvas_size=(display, display),
                fixed_canvas=True,
            )
            blobs.bounded(comp)  # canvas uploads: per session, bounded
            # No server round trip on upload: the canvas shows the uploaded image at once (fitted into
            # the square canvas) and keeps every stroke; replacing the value from the server would
            # reload the canvas and drop what was drawn meanwhile.
            if elem_id:  # strokes are undone one by one in the browser: the image stays, nothing reloads
                gr.Button("Clear mask", size="sm", elem_id=f"{elem_id}-clear").click(
                    None, js=f"() => window.smapganClearMask && window.smapganClearMask('{elem_id}')"
                )
        return comp

    if item.count == 1:
        params = [item.name]
        components = [make(item.title, item.name, item.optional)]
    else:
        params = [f"{item.name}_{i}" for i in range(1, item.count + 1)]
        components = [make(f"{item.title} 1", params[0], item.optional)]
        with gr.Accordion(f"More ({item.count - 1})", open=False):
            components += [make(f"{item.title} {i}", params[i - 1], True) for i in range(2, item.count + 1)]

    def to_value(ctx: OpContext, values: list[Any]) -> Any:
        pictures = [_picture(ctx, item, c, v) for c, v in zip(components, values)]
        if item.count == 1:
            return pictures[0]
        return [p for p in pictures if p is not None]

    return Widget(item, components, params, to_value)


def _picture(ctx: OpContext, item: spec.ImageInput, component: Any, payload: Any) -> spec.Picture | None:
    """A raw component payload as a Picture (images and masks decoded by smapgan.intake.images)."""
    if item.mask == "none":
        source = file_source(payload)
        return None if source is None else ctx.picture(source)
    sources = editor_sources(component, payload)
    if not sources:
        return None
    image = sources.get("background") or sources.get("composite")
    if image is None:
        return None
    mask = editor_mask(sources, ctx.size)
    return ctx.picture(image, None if mask is None else imageio.mask_to_tensor(mask))


class Converter:
    """How one run's tensors become what its output components are sent, each converted once.

    A plain run sends each value once, as PIL images (Gradio writes each into its cache). A
    streaming run sends values in several updates (its image first and last, each frame in every
    gallery update after it), and Gradio rewrites a PIL image's cache file in place each time it is
    sent, while the page or a client may be downloading it (truncated downloads were seen). So a
    streaming run converts with a ``folder``: each image becomes a PNG file written there once, which
    Gradio copies once and never rewrites; the folder is the run's and goes when the run ends.
    Conversions are cached by tensor identity, so a frame is encoded once however often it is sent.
    """

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        # By id of the tensor, which is kept with its conversions (no other tensor takes its id meanwhile).
        self._images: dict[int, tuple[Any, Image.Image]] = {}
        self._files: dict[int, str] = {}

    def pil(self, tensor: Any) -> Image.Image:
        """The tensor (1,3,S,S) as an image."""
        if id(tensor) not in self._images:
            self._images[id(tensor)] = (tensor, imageio.tensor_to_image(tensor))
        return self._images[id(tensor)][1]

    def image(self, tensor: Any) -> Image.Image | str:
        """What an image component is sent for the tensor: its image, or with a folder the path of its PNG."""
        image = self.pil(tensor)
        if self.folder is None:
            return image
        if id(tensor) not in self._files:
            path = self.folder / f"{len(self._files)}.png"
            image.save(path, format="PNG")
            self._files[id(tensor)] = str(path)
        return self._files[id(tensor)]


@dataclass
class OutputBinding:
    item: spec.Output
    components: list[Any]
    """What the op's endpoint returns (also the API's outputs)."""
    to_values: Callable[[Any, Converter], list[Any]]
    """The components' values for the op's final value (a run's last update, what the API returns)."""
    views: list[Any] = field(default_factory=list)
    """Components only the browser shows, filled by ``show`` when a run ends (e.g. a before/after slider)."""
    show: Callable[[Any, Any], list[Any]] | None = None
    """``show(before, value)``: values of ``views`` for the op's value (a tensor) and its first input (PIL)."""
    live: list[Any] = field(default_factory=list)
    """The views that follow the value while a streaming run sends it (the slider), filled by ``follow``."""
    follow: Callable[[Any, Any], list[Any]] | None = None
    """``follow(before, value)``: values of ``live``, plain values (no ``gr.update``: see :meth:`cleared`)."""
    partial: Callable[[Any, Converter], list[Any]] | None = None
    """The components' values for a value a streaming op is still extending (frames so far: the gallery
    fills, the GIF comes with the last frame). None: the value is sent whole as it comes (``to_values``)."""

    def streamed_values(self, value: Any, convert: Converter) -> list[Any]:
        """The components' values for a value shown while the op still runs."""
        return (self.partial or self.to_values)(value, convert)

    def cleared(self) -> list[Any]:
        """Empty components, for an output a streaming run has not given yet (the last run's is gone).

        Not ``gr.skip()``: Gradio 6.31 turns every ``gr.skip()``/``gr.update()`` of an output into a new
        component instance that the session keeps for its lifetime (one Gallery per call; the
        1000-edit soak test's server grew by 5.4% instead of 0.0%).
        """
        return [None for _ in self.components]


def display_pair(before: Image.Image | None, after: Image.Image, display: int) -> tuple[Image.Image, Image.Image]:
    """Before and after at the canvas size (nearest upscaling: the model's pixels stay visible)."""
    after = imageio.preview(after, display)
    before = after if before is None else imageio.preview(before.convert("RGB"), display)
    return before, after


def build_output(
    item: spec.Output, gif_dir: Path, prefix: str = "", display: int = 256, compare: bool = False
) -> OutputBinding:
    """Create the components showing one output (``elem_id`` ``<prefix>-<output>``).

    ``compare``: an image result is shown as a before/after slider against the op's first input
    image, at the canvas size, with its model-size PNG to download (the hidden ``gr.Image`` keeps
    the API's value).
    """
    elem_id = f"{prefix}-{item.name}" if prefix else None
    if isinstance(item, spec.ImageOutput):
        comp = gr.Image(
            label=item.title, type="pil", format="png", interactive=False, elem_id=elem_id, height=display + 60,
            elem_classes=["smapgan-result"], visible=not compare,
        )
        if not compare:
            return OutputBinding(item, [comp], lambda v, convert: [convert.image(v)])
        slider = gr.ImageSlider(
            label=f"{item.title}: before / after (drag)", type="pil", format="png", interactive=False,
            elem_id=f"{elem_id}-compare" if elem_id else None, elem_classes=["smapgan-slider"],
            buttons=["fullscreen"], max_height=display + 40,
        )
        download = gr.DownloadButton(
            f"Download {item.title.lower()} (PNG)", visible=False, size="sm",
            elem_id=f"{elem_id}-download" if elem_id else None,
        )

        def compared(before: Any, value: Any) -> list[Any]:
            # Shown while a run streams and again when it ends: files written once (Gradio copies each
            # once) rather than images, whose cache files Gradio would rewrite while they load.
            image = imageio.tensor_to_image(value)
            return [tuple(str(_write_file(side, gif_dir, ".png")) for side in display_pair(before, image, display))]

        def show(before: Any, value: Any) -> list[Any]:
            image = imageio.tensor_to_image(value)
            label = f"Download {item.title.lower()} ({image.size[0]}x{image.size[1]} PNG)"
            path = _write_file(image, gif_dir, ".png")
            return [*compared(before, value), gr.update(value=str(path), label=label, visible=True)]

        return OutputBinding(
            item, [comp], lambda v, convert: [convert.image(v)], views=[slider, download], show=show,
            live=[slider], follow=compared,
        )
    if isinstance(item, spec.FramesOutput):
        gallery = gr.Gallery(
            label=item.title, format="png", columns=4, height="auto", interactive=False, elem_id=elem_id,
            object_fit="contain", elem_classes=["smapgan-frames"],
        )
        gif = gr.Image(
            label=f"{item.title} (GIF)",
            type="filepath",
            interactive=False,
            elem_id=f"{elem_id}-gif" if elem_id else None,
            height=display + 60,
            elem_classes=["smapgan-result"],
        )

        def frames(value: Any, convert: Converter) -> list[Any]:
            if not value:
                return [[], None]
            animation = _write_gif([convert.pil(f) for f in value], gif_dir, item.duration_ms)
            return [[convert.image(f) for f in value], str(animation)]

        def frames_so_far(value: Any, convert: Converter) -> list[Any]:
            return [[convert.image(f) for f in value], None]  # and no GIF of an earlier run meanwhile

        return OutputBinding(item, [gallery, gif], frames, partial=frames_so_far)
    if isinstance(item, spec.NumbersOutput):
        comp = gr.JSON(label=item.title, elem_id=elem_id)
        return OutputBinding(item, [comp], lambda v, convert: [{k: round(float(x), 6) for k, x in v.items()}])
    raise TypeError(f"the app cannot show outputs of type {type(item).__name__}")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed meanwhile by a concurrent run's pruning
        return 0.0


def _write_gif(images: list[Image.Image], folder: Path, duration_ms: int, keep: int = 64) -> Path:
    """The animation as ``<content hash>.gif`` in ``folder`` (at most ``keep`` files kept)."""
    return _write_file(images, folder, ".gif", duration_ms, keep)


def _write_file(
    images: Image.Image | list[Image.Image], folder: Path, suffix: str, duration_ms: int = 100, keep: int = 64
) -> Path:
    """An image (PNG) or animation (GIF) as ``<content hash><suffix>`` in ``folder`` (at most ``keep`` of each).

    Named by content: Gradio's cache keys its copy of an output by content *and* file name,
    so a fresh name for every run would add a file to it each time the same result is shown.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(suffix=f"{suffix}.tmp", dir=folder)
    os.close(fd)
    try:
        if isinstance(images, list):
            imageio.save_gif(images, name, duration_ms)
        else:
            images.save(name, format="PNG")
        digest = hashlib.blake2b(Path(name).read_bytes(), digest_size=16).hexdigest()
        path = folder / f"{digest}{suffix}"
        os.replace(name, path)  # atomic: a concurrent run of the same result writes the same bytes
    finally:
        Path(name).unlink(missing_ok=True)
    old = sorted((p for p in folder.glob(f"*{suffix}") if p != path), key=_mtime)
    for stale in old[: max(0, len(old) - keep + 1)]:  # bounded: Gradio keeps its own copy of what it served
        stale.unlink(missing_ok=True)
    return path


def example_value(item: spec.ImageInput, value: Any, mask: Any, size: int, display: int, examples_dir: Path) -> Any:
    """A component value for an example: a file name of ``examples_dir`` (or a path) and an optional mask box/file."""
    path = Path(value)
    if not path.is_absolute():
        path = examples_dir / path
    image = preview_image(path, size, display)
    if item.mask == "none":
        return image
    selected = None
    if mask is not None:
        if isinstance(mask, (tuple, list)) and len(mask) == 4 and all(isinstance(v, (int, float)) for v in mask):
            selected = imageio.box_mask(tuple(float(v) for v in mask), size)[0, 0].numpy() > 0
        else:
            selected = imageio.load_mask(mask, size)[0, 0].numpy() > 0
    return editor_value(image, selected)
