"""``build_demo``: one Gradio tab and one API endpoint per registered op.

Nothing here names an op. Each tab's components come from the op's declared
inputs and outputs (:mod:`smapgan.app.widgets`); the Run button calls the op
through an :class:`~smapgan.ops.OpContext` with the session's stylemap cache and
the chosen renderer, and is exposed to ``gradio_client`` as ``/<op name>``.
"""

from __future__ import annotations

import inspect
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import gradio as gr
from .. import imageio, limits
from ..model import StyleMapGAN
from ..render import ReferenceRenderer, Renderer
from ..ops import OpContext, Registry, StylemapCache, discover
from ..ops.spec import BoxInput, ImageInput, ImageOutput, Op, OpError, PointsInput, SliderInput, parse_input, short_repr
from . import gate, widgets
from . import inversion as inversion_control

logger = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"
# The "fast" (bfloat16) mode pays off from this model size on: at 256 px an edit takes about half
# the exact time, at 64 px (the bundled model) it measured several times slower than exact
# (bench/fast_toggle.py; README), so the app does not offer a switch that would only slow it down.
FAST_MIN_SIZE = 256
UI_DIR = Path(__file__).resolve().parent.parent / "assets" / "app"


def default_renderer(model: StyleMapGAN) -> Renderer:
    """The CPU fast renderer (exact and fast modes) when this build has it, else the reference one."""
    try:
        from ..fast import FastRenderer
    except ImportError:
        return ReferenceRenderer(model)
    return FastRenderer(model)


def build_demo(
    model: StyleMapGAN,
    *,
    renderer: Renderer | None = None,
    registry: Registry | None = None,
    title: str = "StyleMapGAN",
    examples_dir: str | Path | None = None,
    prefill: bool = True,
    cache_size: int = 8,
    display_size: int = 256,
    offer_modes: bool | None = None,
) -> gr.Blocks:
    """The app: a tab per op of ``registry`` (default: :func:`smapgan.ops.discover`).

    ``renderer`` defaults to :func:`default_renderer`; when it offers several
    ``modes`` (e.g. "exact" and "fast") the app shows a toggle, by default only for models of
    ``FAST_MIN_SIZE`` px and more (``offer_modes`` forces it on or off).
    ``prefill`` loads each op's first example into its inputs.
    """
    if renderer is None:
        renderer = default_renderer(model)
    registry = discover() if registry is None else registry
    examples_dir = Path(examples_dir) if examples_dir is not None else EXAMPLES_DIR
    size = model.config.size
    display = widgets.display_side(size, display_size)
    gif_dir = Path(tempfile.mkdtemp(prefix="smapgan-app-"))
    for error in registry.errors:
        logger.warning("skipped broken op plugin %s", error)

    with gr.Blocks(title=title, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            f"# {title}\nEditing with a stylemap of {model.config.latent_spatial_size}x"
            f"{model.config.latent_spatial_size} cells at {size}x{size} px. Images are center-cropped and "
            "resized to the model; the canvas shows what the model sees."
        )
        if registry.errors:
            gr.Markdown(
                "**Some op plugins could not be loaded and were skipped:**\n\n"
                + "\n".join(f"- `{e.plugin}` ({e.source}): {e.message}" for e in registry.errors),
                elem_id="plugin-errors",
            )
        # Per session (Gradio deep-copies it: StylemapCache starts empty for each); dropped after an idle hour.
        cache = gr.State(StylemapCache(cache_size), time_to_live=3600)
        # Per session, per op: the last run's first input, results and error (what the browser shows).
        session = gr.State({}, time_to_live=3600)
        mode_input = None
        if offer_modes is None:
            offer_modes = size >= FAST_MIN_SIZE
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
        inversion = inversion_control.build_controls()
        if not len(registry):
            gr.Markdown("No editing ops are installed.")
        with gr.Tabs():
            for found in registry.sorted():
                with gr.Tab(found.title, id=found.name):
                    _build_tab(
                        found, model, renderer, cache, session, mode_input, display, gif_dir, examples_dir, prefill,
                        inversion,
                    )
        _browser_helpers(registry, display)
    demo.queue(default_concurrency_limit=1, max_size=limits.MAX_QUEUE)
    gate.install_fair_queue(demo)  # per-session and per-address caps on queued + running jobs
    return demo


def _browser_helpers(registry: Registry, display: int) -> None:
    """The page's style and script (``smapgan/assets/app``): boxes and placements drawn on the images
    they refer to, and "Clear mask" (undo every stroke). A hidden component runs it once."""
    overlays = []
    for found in registry.sorted():
        for item in found.inputs:
            if isinstance(item, (PointsInput, BoxInput)) and item.on:
                target = found.input(item.on)
                param = f"{item.on}_1" if isinstance(target, ImageInput) and target.count > 1 else item.on
                overlays.append({
                    "source": f"{found.name}-{item.name}",
                    "target": f"{found.name}-{param}",
                    "kind": "points" if isinstance(item, PointsInput) else "box",
                    "editor": isinstance(target, ImageInput) and target.mask != "none",
                })
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
    examples_dir: Path,
    prefill: bool,
    inversion: inversion_control.InversionControls | None = None,
) -> None:
    if found.description:
        gr.Markdown(found.description)
    rows = _example_rows(found, model.config.size, display, examples_dir) if found.examples else []
    initial = rows[0] if rows and prefill else {}
    bindings: list[widgets.InputBinding] = []
    # What the tab has to say (running, done, an error, an unreadable upload), under Run.
    status = gr.Markdown("", elem_id=f"{found.name}-status", elem_classes=["smapgan-status"], render=False)
    compare = bool(found.image_inputs)  # single-image results are compared with the first input
    with gr.Row():
        with gr.Column():
            images = [i for i in found.inputs if isinstance(i, ImageInput)]
            with gr.Row():
                for item in images:
                    with gr.Column(min_width=200):
                        bindings.append(widgets.build_input(item, model, display, initial, found.name, status))
            for item in found.inputs:
                if not isinstance(item, ImageInput):
                    bindings.append(widgets.build_input(item, model, display, initial, found.name, status))
            run_button = gr.Button("Run", variant="primary", elem_id=f"{found.name}-run")
            status.render()
        with gr.Column():
            outputs = [widgets.build_output(o, gif_dir, found.name, display, compare) for o in found.outputs]
    by_name = {b.item.name: b for b in bindings}
    _wire_points(found, by_name)
    api_components = [c for b in bindings for c in b.components]
    output_components = [c for o in outputs for c in o.components]
    params = [p for b in bindings for p in b.params]
    if rows:
        gr.Examples(
            [[row.get(p) for p in params] for row in rows],
            api_components,
            label="Examples",
            examples_per_page=4,
            cache_examples=False,
        )
    has_inversion = inversion is not None and bool(found.image_inputs)
    handler = _handler(found, bindings, outputs, model, renderer, mode_input is not None, has_inversion)
    inputs = [cache, session] + api_components + ([mode_input] if mode_input is not None else [])
    if has_inversion:
        inputs += inversion.inputs
    views = [c for o in outputs for c in o.views]
    # Only Run is disabled while the op runs (the inputs stay editable), and it comes back when the
    # op has ended either way: Gradio does not follow a failed event with its `.then` steps.
    done = run_button.click(
        lambda: (gr.update(interactive=False, value="Running..."), widgets.status_text("Running...")),
        None, [run_button, status], queue=False, api_visibility="private",
    ).then(
        handler,
        inputs,
        output_components,
        api_name=found.name,
        api_description=found.description or None,
        preprocess=False,  # every image is decoded by smapgan.imageio, with its limits and clear errors
    )

    def succeeded(state: dict) -> list[Any]:
        memo = state.get(found.name) or {}
        shown: list[Any] = []
        for o in outputs:
            if o.show is not None:
                value = (memo.get("values") or {}).get(o.item.name)
                shown += o.show(memo.get("before"), value[0]) if value else [gr.skip()] * len(o.views)
        text = f"Done in {memo['elapsed']:.2f} s." if "elapsed" in memo else ""
        return [gr.update(interactive=True, value="Run"), widgets.status_text(text), *shown]

    def failed(state: dict) -> list[Any]:
        message = (state.get(found.name) or {}).get("error") or "the run did not complete"
        return [gr.update(interactive=True, value="Run"), widgets.status_text(message, error=True)]

    done.success(succeeded, [session], [run_button, status, *views], queue=False, api_visibility="private")
    done.failure(failed, [session], [run_button, status], queue=False, api_visibility="private")
    _wire_previews(found, by_name, outputs, session, status)


def _wire_previews(
    found: Op, by_name: dict[str, widgets.InputBinding], outputs: list[widgets.OutputBinding], session: gr.State,
    status: Any,
) -> None:
    """A slider that ``previews`` a frames output shows the nearest frame already rendered, with no run."""
    image = next((o for o in outputs if isinstance(o.item, ImageOutput)), None)
    for item in found.inputs:
        if not isinstance(item, SliderInput) or not item.previews or image is None or item.name not in by_name:
            continue
        slider = by_name[item.name].components[0]
        targets = image.views if image.show is not None else image.components

        def preview(state: dict, value: float, item: SliderInput = item) -> list[Any]:
            memo = state.get(found.name) or {}
            frames = ((memo.get("values") or {}).get(item.previews) or [[]])[0]
            if not frames:
                return [gr.skip()] * (1 + len(targets))
            span = item.maximum - item.minimum
            index = round((float(value) - item.minimum) / span * (len(frames) - 1)) if span else 0
            index = min(max(index, 0), len(frames) - 1)
            text = (f"Preview: frame {index + 1} of {len(frames)} already rendered; "
                    f"Run renders {item.name} {float(value):g} exactly.")
            shown = image.show(memo.get("before"), frames[index]) if image.show else [frames[index]]
            return [widgets.status_text(text), *shown]

        slider.input(preview, [session, slider], [status, *targets], queue=False, api_visibility="private")




def _example_rows(found: Op, size: int, display: int, examples_dir: Path) -> list[dict[str, Any]]:
    """Each declared example as component values keyed by API parameter name (unusable ones are logged)."""
    rows = []
    for example in found.examples:
        row: dict[str, Any] = {}
        try:
            for item in found.inputs:
                value = example.get(item.name)
                if not isinstance(item, ImageInput):
                    row[item.name] = item.default_value() if value is None else value
                    continue
                # No preset mask in the app: a layer given with the value cannot be undone (and the
                # editor logs "No draw texture found for layer" for it); the user brushes instead.
                mask = None
                if item.count == 1:
                    row[item.name] = None if value is None else widgets.example_value(
                        item, value, mask, size, display, examples_dir
                    )
                    continue
                values = list(value or [])
                masks = list(mask or [])
                for i in range(item.count):
                    v = values[i] if i < len(values) else None
                    m = masks[i] if i < len(masks) else None
                    row[f"{item.name}_{i + 1}"] = None if v is None else widgets.example_value(
                        item, v, m, size, display, examples_dir
                    )
        except (imageio.ImageInputError, OSError, ValueError) as exc:
            logger.warning("op %s: example skipped (%s)", found.name, exc)
            continue
        rows.append(row)
    return rows


def _wire_points(found: Op, by_name: dict[str, widgets.InputBinding]) -> None:
    """Clicking on an image appends a point (fractions of the center square) to the points input placed on it."""
    for item in found.inputs:
        if not isinstance(item, PointsInput) or item.on not in by_name:
            continue
        target = by_name[item.on].components[0]
        box = by_name[item.name].components[0]
        if not isinstance(target, gr.Image):
            continue

        def add_point(payload: Any, points: str, evt: gr.SelectData, multiple: bool = item.multiple) -> str:
            source = widgets.file_source(payload)
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

        target.select(add_point, [target, box], box, preprocess=False, api_visibility="private", **widgets.PREVIEW_EVENT)


def _first_image(found: Op, kwargs: dict[str, Any]) -> Any:
    """The op's first input image as the model saw it (the "before" of a comparison), or None."""
    for item in found.image_inputs:
        value = kwargs.get(item.name)
        value = value[0] if isinstance(value, list) and value else value
        if value is not None and not isinstance(value, list):
            return imageio.tensor_to_image(value.image)
    return None


def _handler(
    found: Op,
    bindings: list[widgets.InputBinding],
    outputs: list[widgets.OutputBinding],
    model: StyleMapGAN,
    renderer: Renderer,
    has_mode: bool,
    has_inversion: bool = False,
) -> Callable[..., Any]:
    """The endpoint function, with a signature naming each input (the API shows those names)."""
    counts = [len(b.components) for b in bindings]
    n_values = sum(counts)

    def run(*args: Any) -> list[Any]:
        # Gradio passes (cache, session, *input values, [mode], [inversion, refine_steps,
        # inversion_session], progress): progress is inserted at its position in the signature below.
        # A direct call may leave out the inversion settings (encoder only).
        cache, session, progress = args[0], args[1], args[-1]
        values, tail = args[2 : 2 + n_values], args[2 + n_values : -1]
        mode = tail[0] if has_mode and tail else None
        settings = tail[int(has_mode) :]
        memo: dict[str, Any] = {}
        if isinstance(session, dict):  # what the browser shows after the run (API calls have their own)
            session[found.name] = memo
        started = time.perf_counter()
        try:
            if mode not in (None, "") and mode not in renderer.modes:
                raise OpError(f"mode must be one of {', '.join(renderer.modes)}; got {short_repr(mode)}")
            if not isinstance(cache, StylemapCache):
                raise OpError("this call has no session state; call the app's named endpoints")
            inversion, stop = (
                inversion_control.settings(*settings) if has_inversion and len(settings) == 3
                else (inversion_control.Inversion(), None)
            )
            ctx = OpContext(
                model, renderer.with_mode(mode or renderer.mode), cache, lambda f, d: progress(f, desc=d),
                inversion=inversion, stop=stop,
            )
            kwargs, start = {}, 0
            with limits.pixel_budget():
                for binding, n in zip(bindings, counts):
                    given = list(values[start : start + n])
                    if isinstance(binding.item, ImageInput):
                        kwargs[binding.item.name] = binding.to_value(ctx, given)
                    else:  # checked against the spec and the limits, every failure a clear OpError
                        kwargs[binding.item.name] = parse_input(binding.item, given[0], model)
                    start += n
            result = found.run(ctx, **kwargs)
            per_output = {o.item.name: o.to_values(result[o.item.name]) for o in outputs}
            shown = [v for o in outputs for v in per_output[o.item.name]]
            memo.update(values=per_output, before=_first_image(found, kwargs),
                        elapsed=time.perf_counter() - started)
            return shown[0] if len(shown) == 1 else shown  # Gradio wants a bare value for one output
        except gr.Error as exc:
            memo["error"] = str(exc)
            raise
        except (imageio.ImageInputError, OpError, limits.LimitError, ValueError) as exc:
            memo["error"] = str(exc)
            raise gr.Error(str(exc), print_exception=False) from None  # the user's mistake: no traceback in the log
        except Exception as exc:  # a plugin bug: log it for the operator, show one line to the user
            logger.exception("op %s failed", found.name)
            memo["error"] = f"{found.title} failed: {type(exc).__name__}: {exc}"
            raise gr.Error(memo["error"]) from None

    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter("cache", kind), inspect.Parameter("session", kind)]
    seen_default = False
    for binding in bindings:
        defaults = binding.defaults or [binding.item.default_value(model)] * len(binding.params)
        for name, default in zip(binding.params, defaults):
            if default is inspect.Parameter.empty and seen_default:
                default = None  # Python wants defaults last; the op still reports the missing image
            seen_default = seen_default or default is not inspect.Parameter.empty
            params.append(inspect.Parameter(name, kind, default=default))
    if has_mode:
        params.append(inspect.Parameter("mode", kind, default=renderer.mode))
    if has_inversion:
        params.append(inspect.Parameter("inversion", kind, default=inversion_control.ENCODER_ONLY))
        params.append(inspect.Parameter("refine_steps", kind, default=inversion_control.DEFAULT_STEPS))
        params.append(inspect.Parameter("inversion_session", kind, default=None))
    params.append(inspect.Parameter("progress", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=gr.Progress()))
    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    run.__name__ = found.name
    return run
