"""``build_demo``: one Gradio tab and one API endpoint per registered op.

Nothing here names an op or an input kind. Each input's widget is made by its kind's builder
(:data:`smapgan.app.inputs.WIDGETS`), the outputs come from :mod:`smapgan.app.outputs`; the Run
button calls the op through an :class:`~smapgan.ops.OpContext` with the session's prefix for its refined
codes and the chosen renderer, and is exposed to ``gradio_client`` as ``/<op name>``, its values passed by
parameter name (Gradio's public ``inputs_kwargs``, which is also what names them in the API).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import logging
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import gradio as gr
from PIL import Image

from ..intake import images as imageio
from ..intake import limits
from ..latent.invert import step_gflop
from ..model import StyleMapGAN
from ..render import ReferenceRenderer, Renderer
from ..ops import Registry, discover
from ..ops.spec import ChoiceInput, ImageOutput, Op, OpError, short_repr
from . import departures, gate
from .examples import ModelExamples, example_rows
from .inputs import PhotoIntake, Tab, Widget, WidgetFactory, display_side, status_text
from .outputs import Converter, OutputBinding, build_output, write_file
from . import inversion as inversion_control
from . import photos
from . import previews
from .models import ModelChoices, ServedModel
from .zerogpu import on_gpu

logger = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"
UI_DIR = Path(__file__).resolve().parent.parent / "assets" / "app"


def default_renderer(model: StyleMapGAN) -> Renderer:
    """The CPU fast renderer (exact and fast modes) when this build has it, else the reference one."""
    try:
        from ..fast import FastRenderer
    except ImportError:
        return ReferenceRenderer(model)
    # A person looks at a result before the next edit: meanwhile the maps it began are completed.
    return FastRenderer(model, fill_when_idle=True)


def _session_prefix() -> str:
    """A new session's prefix for the codes refined for it: random, so that no session reads another's."""
    return f"session:{secrets.token_hex(8)}/"


@dataclass
class AppInputs:
    """The controls above the tabs that every op's Run also takes: the model and how photos are cropped."""

    models: ModelChoices
    model: Any
    crop: Any
    face: Any
    crop_views: list[Any] = dataclasses.field(default_factory=list)
    """The aligned crops shown beside uploads: another model crops differently, so a switch hides them."""


def build_demo(
    model: StyleMapGAN | ModelChoices,
    *,
    renderer: Renderer | None = None,
    registry: Registry | None = None,
    title: str = "StyleMapGAN",
    examples_dir: str | Path | None = None,
    prefill: bool = True,
    display_size: int = 256,
    offer_modes: bool | None = None,
) -> gr.Blocks:
    """The app: a tab per op of ``registry`` (default: :func:`smapgan.ops.discover`).

    ``renderer`` defaults to :func:`default_renderer`; when it has several ``modes`` (e.g.
    "exact" and "fast") the API takes ``mode`` and the page shows a toggle where the renderer says
    the other modes pay off on this machine and model (``Renderer.offered_modes``: the fast
    renderer measures bf16 on this CPU); ``offer_modes`` forces the toggle on or off.
    ``prefill`` loads each op's first example into its inputs.

    ``model`` may be a :class:`~smapgan.app.models.ModelChoices`: a model dropdown then sits above
    the tabs, each model is loaded on first use (each with its own renderer, for its device), and
    every endpoint also takes ``model`` (a name of the dropdown), ``crop`` and ``face``. Each model
    shows its own examples (:class:`~smapgan.app.examples.ModelExamples`); ``examples_dir`` is for a
    single model, whose examples are then the ops' own with their files in that folder.
    """
    if isinstance(model, ModelChoices):
        if renderer is not None or examples_dir is not None:
            raise ValueError("with several models each has its own renderer and examples: pass neither")
        models = model
        served = models.get()
        model, renderer = served.model, served.renderer
    else:
        if renderer is None:
            renderer = default_renderer(model)
        models = ModelChoices.of(model, renderer, examples=ModelExamples(Path(examples_dir or EXAMPLES_DIR)))
    registry = discover() if registry is None else registry
    size = model.config.size
    display = display_side(size, display_size)
    gif_dir = Path(tempfile.mkdtemp(prefix="smapgan-app-"))
    for error in registry.errors:
        logger.warning("skipped broken op plugin %s", error)

    with gr.Blocks(title=title, delete_cache=(3600, 3600)) as demo:
        header = gr.Markdown(_header(title, model), elem_id="header")
        if registry.errors:
            gr.Markdown(
                "**Some op plugins could not be loaded and were skipped:**\n\n"
                + "\n".join(f"- `{e.plugin}` ({e.source}): {e.message}" for e in registry.errors),
                elem_id="plugin-errors",
            )
        # Per session (Gradio calls it for each): the prefix of its refined codes in the renderer's cache.
        cache = gr.State(_session_prefix, time_to_live=3600)
        # Per session, per op: the last run's first input, results and error (what the browser shows).
        session = gr.State({}, time_to_live=3600)
        mode_input = None
        if offer_modes is None:
            offer_modes = len(renderer.offered_modes()) > 1
        if len(renderer.modes) > 1:  # the API always takes `mode`; the page shows it where it pays off
            mode_input = gr.Radio(
                list(renderer.modes), value=renderer.mode, label="Renderer",
                info=(
                    "fast: bfloat16 and incremental updates, faster only where the CPU computes bfloat16 "
                    "natively and is not overloaded (measure: bench/fast_toggle.py); exact: the reference "
                    "float32 path"
                ),
                visible=bool(offer_modes), elem_id="renderer-mode",
            )
        shared_inputs = _app_inputs(models, model)
        inversion = inversion_control.build_controls()
        if not len(registry):
            gr.Markdown("No editing ops are installed.")
        overlays: list[dict[str, Any]] = []
        switches: list[TabSwitch] = []
        with gr.Tabs():
            for found in registry.sorted():
                with gr.Tab(found.title, id=found.name):
                    tab_overlays, switch = _build_tab(
                        found, model, renderer, cache, session, mode_input, display, gif_dir, prefill,
                        inversion, shared_inputs,
                    )
                    overlays += tab_overlays
                    switches.append(switch)
        _connect_model_choice(shared_inputs, header, title, switches)
        _browser_helpers(overlays, display)
    demo.queue(default_concurrency_limit=1, max_size=limits.MAX_QUEUE)
    # Per-session and per-address caps on queued + running jobs; refinement priced (by the model each job
    # names) and in a lane of its own.
    gate.install_fair_queue(demo, price=inversion_control.pricing(inversion, _step_gflop(models), shared_inputs.model))
    departures.install(demo)  # a client that leaves: its queued jobs dropped, its running ones stopped
    return demo


def _step_gflop(models: ModelChoices) -> Callable[[Any], float]:
    """``per_step(name)``: GFLOP of one refinement step of the model named (what a job is charged per step
    and image), counted once per model. A model not in memory yet is charged as the dearest one counted
    so far: its size is known only once it is loaded."""
    counted: dict[str, float] = {}

    def per_step(name: Any) -> float:
        name = name if name in models.names else models.default  # any other name is refused by the op
        if name not in counted:
            served = models.peek(name)
            if served is None:
                return max(counted.values())
            counted[name] = step_gflop(served.model)
        return counted[name]

    per_step(models.default)  # loaded by now: the floor of what an unknown model is charged
    return per_step


def _header(title: str, model: StyleMapGAN) -> str:
    side, cells = model.config.size, model.config.latent_spatial_size
    if model.config.alignment == "ffhq":
        crop = ("Photos are aligned on the face as the model's training faces were (FFHQ alignment); "
                "each result is also put back into your photo.")
    else:
        crop = "Images are center-cropped and resized to the model; the canvas shows what the model sees."
    return f"# {title}\nEditing with a stylemap of {cells}x{cells} cells at {side}x{side} px. {crop}"


def _app_inputs(models: ModelChoices, model: StyleMapGAN) -> AppInputs:
    """The model dropdown (shown when there is a choice) and the photo crop controls."""
    with gr.Row(elem_id="app-inputs"):
        choice = gr.Dropdown(
            models.names, value=models.default, label="Model", elem_id="model-choice",
            visible=len(models.names) > 1, info="loaded on first use; each has its own examples and directions",
        )
        crop = gr.Radio(
            list(photos.CROPS), value="auto", label="Crop", elem_id="crop", visible=model.config.alignment == "ffhq",
            info="face: aligned on the face (FFHQ); center: the largest centered square; auto: what the model wants",
        )
        face = gr.Number(
            0, precision=0, minimum=0, label="Face", elem_id="face", visible=False,
            info="several faces were found: which one (0: the largest and surest)",
        )
    return AppInputs(models, choice, crop, face)


@dataclass
class TabSwitch:
    """What a tab changes when another model is chosen: its components, and their values for a model."""

    components: list[Any]
    values: Callable[[ServedModel], list[Any]]


def _connect_model_choice(app: AppInputs, header: Any, title: str, switches: list[TabSwitch]) -> None:
    """Choosing a model shows its header, examples, choices and notices.

    A model in memory is shown by an unqueued event, which only sends what was made for the model when it
    was first shown (nothing computed, no queue round trip; few updates, as Gradio rebuilds a component
    and its config for each). A model not in memory (or not shown yet) goes to ``pending``, whose change
    loads it in the queue (a load is work a client must not start outside the queue's caps; in a lane of
    its own, so that it never waits for an edit that is running), and the page then shows the model
    chosen by then.
    """
    outputs = [header, app.crop, app.face, *(c for s in switches for c in s.components)]
    pending = gr.Textbox(visible=False, elem_id="model-pending")

    def page(served: ServedModel) -> list[Any]:
        if "page" not in served.derived:  # made once per load: its examples' images are stored when made
            aligns = served.model.config.alignment == "ffhq"
            served.derived["page"] = [
                _header(title, served.model), gr.update(visible=aligns), gr.update(visible=False, value=0),
                *(v for s in switches for v in s.values(served)),
            ]
        return [dict(v) if isinstance(v, dict) else v for v in served.derived["page"]]  # Gradio consumes updates

    def show(name: str) -> list[Any]:
        served = app.models.peek(name) if name in app.models.names else None
        if served is None or "page" not in served.derived:
            return [*(gr.skip() for _ in outputs), f"{name}\n{secrets.token_hex(4)}"]  # a change each time
        return [*page(served), gr.skip()]

    def load(request: str) -> Any:
        name = request.rpartition("\n")[0]
        try:
            page(app.models.get(name))
        except Exception as exc:  # a Hub id that cannot be reached: say so, the other models still work
            logger.warning("model %s could not be loaded: %s", name, exc)
            raise gr.Error(f"model {name} could not be loaded: {exc}", print_exception=False) from None
        return gr.skip()

    app.model.change(show, [app.model], [*outputs, pending], queue=False, api_visibility="private",
                     show_progress="hidden")
    if app.crop_views:  # the uploads' crops were the last model's: emptied in the browser (then not shown)
        empty = "null" if len(app.crop_views) == 1 else json.dumps([None] * len(app.crop_views))
        app.model.change(None, None, app.crop_views, js=f"() => {empty}", api_visibility="private")
    pending.change(load, [pending], [header], api_visibility="private", show_progress="minimal",
                   concurrency_id="models", concurrency_limit=1,
                   ).success(show, [app.model], [*outputs, pending], queue=False, api_visibility="private",
                             show_progress="hidden")


def _unavailable(found: Op, model: StyleMapGAN) -> str:
    """Why ``found`` cannot run on ``model`` (a choice the model has none of, e.g. its directions), or ""."""
    missing = [i for i in found.inputs if isinstance(i, ChoiceInput) and callable(i.choices) and not i.options(model)]
    if not missing:
        return ""
    names = ", ".join(i.title.lower() for i in missing)
    return f"**{found.title} is not available for this model**: it has no {names} (stored with the model)."


def _browser_helpers(overlays: list[dict[str, Any]], display: int) -> None:
    """The page's style and script (``smapgan/assets/app``): boxes and placements drawn on the images
    they refer to (``overlays``, from the inputs' widgets), and "Clear mask" (undo every stroke).
    A hidden component runs it once."""
    css = (UI_DIR / "ui.css").read_text().replace("{display}", str(display))
    config = json.dumps({"css": css, "display": display, "overlays": overlays})
    gr.HTML("", html_template="<span></span>", js_on_load=(UI_DIR / "ui.js").read_text(), config=config,
            elem_id="smapgan-ui", container=False, padding=False)


def _build_tab(
    found: Op,
    model: StyleMapGAN,
    renderer: Renderer,
    cache: gr.State,
    session: gr.State,
    mode_input: Any,
    display: int,
    gif_dir: Path,
    prefill: bool,
    inversion: inversion_control.InversionControls | None = None,
    app: AppInputs | None = None,
) -> tuple[list[dict[str, Any]], TabSwitch]:
    """One op's tab: each input's widget as its kind makes it, the outputs, Run and its endpoint.

    Returns the tab's entries for the page script (boxes and points drawn on images), and what it
    changes when another model is chosen.
    """
    if app is None:
        app = AppInputs(ModelChoices.of(model, renderer), None, None, None)
    if found.description:
        gr.Markdown(found.description)
    rows = _model_rows(found, app.models.get(), display)
    # What the tab says about the model: an op it cannot run, no examples of its own (empty: not shown).
    notes = gr.Markdown(_notes(found, app.models.get(), rows), elem_id=f"{found.name}-notes",
                        elem_classes=["smapgan-status"])
    initial = rows[0] if rows and prefill else {}
    # What the tab has to say (running, done, an error, an unreadable upload), under Run.
    status = gr.Markdown("", elem_id=f"{found.name}-status", elem_classes=["smapgan-status"], render=False)
    photo = None
    if app.model is not None:  # uploads previewed as the chosen model sees them
        def preview(source: Any, name: Any, crop: Any, face: Any) -> tuple[int, Any, str, int]:
            return photos.upload_preview(source, app.models.get(name).model, crop, face)

        photo = PhotoIntake([app.model, app.crop, app.face], app.face, preview, app.crop_views)
    ui = WidgetFactory(model, display, initial, found.name, status, photo=photo)
    images = {i.name for i in found.image_inputs}
    compare = bool(images)  # single-image results are compared with the first input
    built: dict[str, Widget] = {}
    with gr.Row():
        with gr.Column():
            with gr.Row():
                for item in found.image_inputs:
                    with gr.Column(min_width=200):
                        built[item.name] = ui.build(item)
            for item in found.inputs:
                if item.name not in images:
                    built[item.name] = ui.build(item)
            run_button = gr.Button("Run", variant="primary", elem_id=f"{found.name}-run")
            status.render()
        with gr.Column():
            outputs = [build_output(o, gif_dir, found.name, display, compare) for o in found.outputs]
            photo_views = _photo_views(found)
    inputs = list(built.values())  # in the page's order (images first): the API's parameters
    tab = Tab(found, built, outputs, session, status, overlays=[])
    for widget in inputs:
        if widget.connect is not None:
            widget.connect(tab)
    by_param = {p: c for w in inputs for p, c in zip(w.params, w.components)}
    output_components = [c for o in outputs for c in o.components]
    dataset, columns = None, list(by_param)
    # Another model's examples are shown in the same Dataset: its columns come from the default model's
    # examples, else from the ops' own (the bundled model's), shown once that model is chosen (a direction
    # the default model lacks is kept: these rows only lay out the columns).
    layout = rows or (
        example_rows(found, model, display, app.models.bundled_examples, any_choice=True) if found.examples else []
    )
    if layout:
        dataset = gr.Examples(
            [[row.get(p) for p in by_param] for row in layout],
            list(by_param.values()),
            label="Examples",
            examples_per_page=4,
            cache_examples=False,
            visible=bool(rows),
            elem_id=f"{found.name}-examples",
        ).dataset
        # The columns Gradio shows: inputs that some example gives (another model's rows are sent so).
        shown_ids = {c._id for c in dataset._components}
        columns = [p for p, c in by_param.items() if c._id in shown_ids]
    has_inversion = inversion is not None and bool(found.image_inputs)
    handler = _handler(found, inputs, outputs, app.models, gif_dir)
    # The values come by API parameter name (Gradio's `inputs_kwargs`: the API lists those names).
    shared: dict[str, Any] = {"mode": mode_input} if mode_input is not None else {}
    preview_flag = previews.flag(found)
    if preview_flag is not None:
        shared[previews.PARAM] = preview_flag
    if app.model is not None:
        shared["model"] = app.model
        if found.image_inputs:
            shared.update(crop=app.crop, face=app.face)
    if has_inversion:
        shared.update(zip(("inversion", "refine_steps", "inversion_session"), inversion.inputs))
    clash = sorted(set(by_param) & set(shared))
    if clash:
        raise ValueError(f"op {found.name!r}: {', '.join(clash)} would shadow the app's own parameters")
    named = {**by_param, **shared}
    views = [c for o in outputs for c in o.views]
    # Only Run is disabled while the op runs (the inputs stay editable), and it comes back when the
    # op has ended either way: Gradio does not follow a failed event with its `.then` steps.
    # The page asks for a local preview before the exact image (smapgan.app.previews); the API does not.
    flagged = [preview_flag] if preview_flag is not None else []
    done = run_button.click(
        lambda: (gr.update(interactive=False, value="Running..."), status_text("Running..."),
                 *(True for _ in flagged)),
        None, [run_button, status, *flagged], queue=False, api_visibility="private",
    ).then(
        handler,
        [cache, session],
        output_components,
        inputs_kwargs=named,
        api_name=found.name,
        api_description=found.description or None,
        preprocess=False,  # every image is decoded by smapgan.intake.images, with its limits and clear errors
    )

    def succeeded(state: dict) -> list[Any]:
        memo = state.get(found.name) or {}
        shown = [v for o in outputs if o.show is not None for v in _views(o, memo)]
        text = previews.finished_text(memo)
        in_photo = _show_photo(memo, gif_dir) if photo_views else []
        return [gr.update(interactive=True, value="Run"), status_text(text), *shown, *in_photo]

    def failed(state: dict) -> list[Any]:
        message = (state.get(found.name) or {}).get("error") or "the run did not complete"
        return [gr.update(interactive=True, value="Run"), status_text(message, error=True)]

    done.success(succeeded, [session], [run_button, status, *views, *photo_views], queue=False,
                 api_visibility="private")
    done.failure(failed, [session], [run_button, status], queue=False, api_visibility="private")

    # A streaming run shows its image before it ends: an output's live views (the before/after slider)
    # follow its hidden component as each update changes it (Gradio fires `change` for hidden
    # components too; tests/test_app_stream_browser.py), and `succeeded` shows every view at the end.
    def follow(output: OutputBinding) -> Callable[[dict], Any]:
        def live(state: dict) -> Any:
            memo = state.get(found.name) or {}
            value = (memo.get("values") or {}).get(output.item.name)
            if value is None:  # not given yet by this run: the last run's result is gone from the image too
                return _update([[None for _ in output.live]])
            return _update([output.follow(memo.get("before"), value)])
        return live

    for o in outputs:
        if o.follow is not None:
            o.components[0].change(
                follow(o), [session], o.live, queue=False, api_visibility="private", show_progress="hidden"
            )
    previews.connect_status(found, outputs, session, status)
    choices = [w for w in inputs if isinstance(w.item, ChoiceInput) and callable(w.item.choices)]

    def for_model(served: ServedModel) -> list[Any]:
        """The tab for another model: its notes, its directions (choices), its examples."""
        own = _model_rows(found, served, display)
        values: list[Any] = [_notes(found, served, own)]  # a value, not an update: Gradio sends those cheaply
        for w in choices:
            options = w.item.options(served.model)
            values.append(gr.update(choices=options, value=w.item.default_value(served.model)))
        if dataset is not None:
            samples = [[_as_files(row.get(p), gif_dir) for p in columns] for row in own]
            values.append(gr.Dataset(samples=samples or [[None] * len(columns)], visible=bool(samples)))
        return values

    switched = [notes, *(w.components[0] for w in choices), *([dataset] if dataset is not None else [])]
    return tab.overlays, TabSwitch(switched, for_model)


def _model_rows(found: Op, served: ServedModel, display: int) -> list[dict[str, Any]]:
    """The model's own examples of ``found`` as component values, made once per model (their images decoded)."""
    key = f"examples:{found.name}"
    if key not in served.derived:
        examples = served.examples
        served.derived[key] = (
            example_rows(found, served.model, display, examples.folder, examples.of(found))
            if examples.folder is not None else []
        )
    return served.derived[key]


def _notes(found: Op, served: ServedModel, rows: list[dict[str, Any]]) -> str:
    """What ``found``'s tab says about the model: that it cannot run the op, that it has no examples for it
    (and why, where its listing is unreadable); "" when neither."""
    notes = [_unavailable(found, served.model)]
    if not rows:
        why = f" ({served.examples.problem})" if served.examples.problem else ""
        notes.append(f"No examples for {found.title} with this model{why}; a model folder gives its own in "
                     f"`examples/examples.json` (docs/photos.md).")
    return "\n\n".join(n for n in notes if n)


def _as_files(value: Any, folder: Path) -> Any:
    """An example's images as PNG files: Gradio re-encodes an image value each time the examples are
    sent (a model switch), but only hashes a file's bytes."""
    if isinstance(value, Image.Image):  # a folder of their own: results' files are pruned, these must stay
        return str(write_file(value, folder / "examples", ".png", keep=100_000))
    if isinstance(value, dict):
        return {k: _as_files(v, folder) for k, v in value.items()}
    return value


def _photo_views(found: Op) -> list[Any]:
    """The result put back into the photo, and its download: for ops with an image input and result."""
    if not found.image_inputs or not any(isinstance(o, ImageOutput) for o in found.outputs):
        return []
    return [
        gr.Image(label="In your photo", type="filepath", interactive=False, visible=False,
                 elem_id=f"{found.name}-photo", buttons=["fullscreen"]),
        gr.DownloadButton("Download the photo (PNG)", visible=False, size="sm", elem_id=f"{found.name}-photo-download"),
    ]


def _show_photo(memo: dict[str, Any], files: Path) -> list[Any]:
    """Values of :func:`_photo_views` for a finished run (hidden when it gave no photo)."""
    photo = memo.get("photo")
    if photo is None:
        return [gr.update(visible=False, value=None), gr.update(visible=False)]
    path, (width, height) = photo
    label = f"Download the photo ({width}x{height} PNG)"
    return [gr.update(value=path, visible=True), gr.update(value=path, label=label, visible=True)]


def _views(output: OutputBinding, memo: dict[str, Any]) -> list[Any]:
    """The output's browser-only views (a before/after slider, a download) for what the run has shown."""
    assert output.show is not None
    value = (memo.get("values") or {}).get(output.item.name)
    return output.show(memo.get("before"), value) if value is not None else [gr.skip() for _ in output.views]


def _first_image(found: Op, kwargs: dict[str, Any]) -> Any:
    """The op's first input image as the model saw it (the "before" of a comparison), or None
    (``kwargs``: the inputs as the op got them, ``OpContext.inputs``)."""
    for item in found.image_inputs:
        value = kwargs.get(item.name)
        value = value[0] if isinstance(value, list) and value else value
        if value is not None and not isinstance(value, list):
            return imageio.tensor_to_image(value.image)
    return None


def _handler(
    found: Op,
    inputs: list[Widget],
    outputs: list[OutputBinding],
    models: ModelChoices,
    files: Path,
) -> Callable[..., Any]:
    """The endpoint function: the session states, then every value by its API parameter name.

    Gradio passes the op's values, ``mode`` and the inversion settings as keyword arguments
    (``inputs_kwargs``); a direct call may leave any of them out (an input then takes its default,
    an image is missing, the inversion is the encoder alone).

    The endpoint has its op's shape. A streaming op (:attr:`Op.streams`) gets a generator: Gradio
    sends each update as it comes (the image while the frames still render, the gallery each time
    its frames have doubled: :func:`_grown`; outputs not given yet empty), and the last update is
    complete (the final values, sent unless the update before was already them: each image sent is
    a download for the client), which is what API callers (``gradio_client``'s ``predict``, ``/call``'s ``complete``
    event) receive. Its files are written in a folder of its own under ``files``, removed when it
    ends. Any other op has one result: its endpoint returns it, as a direct call expects.
    """
    params = {p for w in inputs for p in w.params}
    first_renderer = models.get().renderer

    def prepare(
        cache: Any, session: Any, progress: Any, values: dict[str, Any], memo: dict[str, Any]
    ) -> tuple[photos.PhotoContext, dict[str, Any]]:
        """The op context and the op's raw values (files and brush layers; ``Op.run`` parses the settings,
        then decodes the images, cropped by the context as the model wants)."""
        mode = values.pop("mode", None)
        preview = previews.wanted(values.pop(previews.PARAM, None)) and found.streams
        settings = [values.pop(k, None) for k in ("inversion", "refine_steps", "inversion_session")]
        name, crop, face = (values.pop(k, None) for k in ("model", "crop", "face"))
        unknown = set(values) - params
        if unknown:
            raise OpError(f"op {found.name!r} has no parameter {', '.join(sorted(unknown))}")
        if mode not in (None, "") and mode not in first_renderer.modes:
            raise OpError(f"mode must be one of {', '.join(first_renderer.modes)}; got {short_repr(mode)}")
        if not isinstance(cache, str):
            raise OpError("this call has no session state; call the app's named endpoints")
        served = models.get(name or None)
        model, renderer = served.model, served.renderer
        inversion, stop = (
            inversion_control.settings(*settings) if settings[0] is not None
            else (inversion_control.Inversion(), None)
        )
        mode = mode if mode in renderer.modes else renderer.mode  # a GPU's reference renderer has one mode
        ctx = photos.PhotoContext(
            model, renderer.with_mode(mode), cache,
            inversion_control.reporter(lambda f, d: progress(f, desc=d), stop, memo),
            inversion=inversion, stop=stop, align=photos.crop_mode(crop, model), face=photos.face_number(face),
            previews=preview,
        )
        return ctx, {w.item.name: w.to_value([values.get(p) for p in w.params]) for w in inputs}

    def run(cache: Any, session: Any, progress: Any = gr.Progress(), **values: Any) -> Any:
        memo = _memo(session, found.name)
        started = time.perf_counter()
        with _reported(found, memo):
            ctx, kwargs = prepare(cache, session, progress, values, memo)
            result = found.run(ctx, **kwargs)
            memo["before"] = _first_image(found, ctx.inputs)
            convert = Converter()
            sent = [o.to_values(result[o.item.name], convert) for o in outputs]
            memo.update(values=result, elapsed=time.perf_counter() - started, **_in_photo(found, ctx, result, files))
            return _update(sent)

    def stream(cache: Any, session: Any, progress: Any = gr.Progress(), **values: Any) -> Iterator[Any]:
        memo = _memo(session, found.name)
        started = time.perf_counter()
        with _reported(found, memo):
            ctx, kwargs = prepare(cache, session, progress, values, memo)
            shown: dict[str, Any] = {}  # by output: the op's value sent last (what the page's views show)
            memo["values"] = shown
            state: dict[str, Any] = {}

            def unseen() -> bool:
                """Would nobody see what the run sends or makes next? Its client left, or it has shown a
                preview and the same session's next edit of the op waits (which replaces the image)."""
                return departures.left() or ("preview_s" in memo and previews.newer_edit())

            with (
                tempfile.TemporaryDirectory(dir=files, prefix="run-") as folder,
                contextlib.closing(found.stream(ctx, **kwargs)) as states,
            ):
                convert = Converter(Path(folder))
                sent: dict[str, list[Any]] = {}  # by output: the component values sent last
                last: list[list[Any]] | None = None  # the last update sent, by output
                for previous, state in itertools.pairwise(itertools.chain([{}], states)):
                    if unseen():  # what the op has just made (an exact render made stale while it ran)
                        return
                    if "before" not in memo:  # the inputs were decoded by the op's first step
                        memo["before"] = _first_image(found, ctx.inputs)
                    due = _due(outputs, shown, previous, state)
                    if due:
                        for o in outputs:
                            if o.item.name in due:
                                shown[o.item.name] = state[o.item.name]
                                sent[o.item.name] = o.streamed_values(state[o.item.name], convert)
                        memo["preview"] = ctx.showing_preview  # (before the update: the status line reads it)
                        if ctx.showing_preview and "preview_s" not in memo:
                            memo["preview_s"] = time.perf_counter() - started
                        # Every output in every update (see OutputBinding.cleared): what was sent, again.
                        last = [sent.get(o.item.name) or o.cleared() for o in outputs]
                        yield _update(last)
                    if ctx.showing_preview and unseen():  # before the op makes the exact render
                        return
                final = [o.to_values(state[o.item.name], convert) for o in outputs]  # every one: the API's result
                memo.update(values=dict(state), elapsed=time.perf_counter() - started, **_in_photo(found, ctx, state, files))
                if final != last:  # else the last update was already complete: not sent (and downloaded) twice
                    yield _update(final)

    endpoint = stream if found.streams else run
    endpoint.__name__ = found.name
    return on_gpu(endpoint)  # a ZeroGPU Space lends its GPU to the ops only


_NOTHING = object()
"""The session's entry for the load of the model it ran with last (not an op name: ops' names are identifiers)."""


def _in_photo(found: Op, ctx: photos.PhotoContext, result: dict[str, Any], files: Path) -> dict[str, Any]:
    """The memo's ``photo`` (the file of the first image result put back into the first photo, and its
    size; or None) and ``note`` (several faces: which one was used). The photo is written at once: a
    session keeps its path, never the full-resolution image (sessions are many, photos large)."""
    image = next((result[o.name] for o in found.outputs if isinstance(o, ImageOutput) and o.name in result), None)
    if image is None or not found.image_inputs:
        return {}
    photo = ctx.in_photo(image)
    written = None if photo is None else (str(write_file(photo, files, ".png")), photo.size)
    return {"photo": written, "note": ctx.note}


def _due(
    outputs: list[OutputBinding], shown: dict[str, Any], previous: dict[str, Any], state: dict[str, Any]
) -> set[str]:
    """The outputs a streaming run sends in the update for ``state`` (after ``previous``): each one the
    op has given anew (a new value, not the one ``shown``), one it is extending only once it has grown."""
    return {
        o.item.name for o in outputs
        if o.item.name in state and state[o.item.name] is not shown.get(o.item.name, _NOTHING)
        and (o.partial is None or _grown(shown.get(o.item.name), previous.get(o.item.name)))
    }


def _grown(sent: Any, before: Any) -> bool:
    """Is an output the op is extending (frames so far) worth sending again: had it doubled since it
    was sent by the step before this one?

    Each update sends the whole gallery, and ``gradio_client`` downloads every file of every update:
    sent at every frame, a 32-frame run cost a client 528 downloads (25 s here) instead of 32.
    Doubling keeps that near twice the frames (sent at 2, 5, 11, 23 of 32), and shows each frame by
    the time about twice as many are rendered. Judged on the step before, so that the op's last
    step, whose frames the final update sends with the GIF, is never sent twice.
    """
    return before is not None and len(before) > 0 and len(before) >= 2 * len(sent or ())


def _memo(session: Any, name: str) -> dict[str, Any]:
    """A new record of the op's run in the session: its first input, its results (op values, by
    output: what it has shown so far while it streams), then its time or its error. The page's views,
    ``succeeded``/``failed`` and the preview read it; an API call without a session gets a loose one."""
    memo: dict[str, Any] = {}
    if isinstance(session, dict):
        session[name] = memo
    return memo


@contextlib.contextmanager
def _reported(found: Op, memo: dict[str, Any]) -> Iterator[None]:
    """Every failure as the ``gr.Error`` the user sees, also kept in ``memo`` (around a generator's
    body too: an error after its first updates is reported the same way)."""
    try:
        yield
    except gr.Error as exc:
        memo["error"] = str(exc)
        raise
    except (imageio.ImageInputError, OpError, limits.LimitError, ValueError) as exc:
        # An input named by its label, as the page shows it
        labelled = isinstance(exc, OpError) and exc.field is not None
        memo["error"] = exc.worded(repr(exc.field.title)) if labelled else str(exc)
        raise gr.Error(memo["error"], print_exception=False) from None  # the user's mistake: no traceback in the log
    except Exception as exc:  # a plugin bug: log it for the operator, show one line to the user
        logger.exception("op %s failed", found.name)
        memo["error"] = f"{found.title} failed: {type(exc).__name__}: {exc}"
        raise gr.Error(memo["error"]) from None


def _update(per_output: list[list[Any]]) -> Any:
    """One endpoint update from each output's component values (Gradio wants a bare value for one)."""
    flat = [v for values in per_output for v in values]
    return flat[0] if len(flat) == 1 else flat
