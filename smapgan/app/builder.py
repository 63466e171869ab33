"""``build_demo``: one Gradio tab and one API endpoint per registered op.

Nothing here names an op. Each tab's components come from the op's declared
inputs and outputs (:mod:`smapgan.app.widgets`); the Run button calls the op
through an :class:`~smapgan.ops.OpContext` with the session's stylemap cache and
the chosen renderer, and is exposed to ``gradio_client`` as ``/<op name>``.
"""

from __future__ import annotations

import inspect
import logging
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

import gradio as gr
from .. import imageio
from ..model import StyleMapGAN
from ..ops import OpContext, Registry, StylemapCache, discover
from ..ops.context import renderer_mode, renderer_modes, with_mode
from ..ops.spec import ImageInput, Op, OpError, PointsInput
from . import inversion as inversion_control
from . import widgets

logger = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"


class _Renderers:
    """One renderer per mode, made on first use (a fast renderer keeps its own caches)."""

    def __init__(self, renderer: Any) -> None:
        self._base = renderer
        self._by_mode: dict[str, Any] = {renderer_mode(renderer): renderer}
        self._lock = threading.Lock()

    @property
    def modes(self) -> tuple[str, ...]:
        return renderer_modes(self._base)

    @property
    def default(self) -> str:
        return renderer_mode(self._base)

    def get(self, mode: str | None) -> Any:
        mode = mode or self.default
        with self._lock:
            if mode not in self._by_mode:
                self._by_mode[mode] = with_mode(self._base, mode)
            return self._by_mode[mode]


def default_renderer(model: StyleMapGAN) -> Any:
    """The CPU fast renderer (exact and fast modes) when this build has it, else the reference one."""
    try:
        from ..fast import FastRenderer
    except ImportError:
        from ..render import Renderer

        return Renderer(model)
    return FastRenderer(model)


def build_demo(
    model: StyleMapGAN,
    *,
    renderer: Any = None,
    registry: Registry | None = None,
    title: str = "StyleMapGAN",
    examples_dir: str | Path | None = None,
    prefill: bool = True,
    cache_size: int = 8,
    display_size: int = 256,
) -> gr.Blocks:
    """The app: a tab per op of ``registry`` (default: :func:`smapgan.ops.discover`).

    ``renderer`` defaults to :func:`default_renderer`; when it offers several
    ``modes`` (e.g. "exact" and "fast") the app shows a toggle.
    ``prefill`` loads each op's first example into its inputs.
    """
    if renderer is None:
        renderer = default_renderer(model)
    registry = discover() if registry is None else registry
    renderers = _Renderers(renderer)
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
        mode_input = None
        if len(renderers.modes) > 1:
            mode_input = gr.Radio(
                list(renderers.modes), value=renderers.default, label="Renderer",
                info="fast: bfloat16 and incremental updates; exact: the reference float32 path",
            )
        inversion = inversion_control.build_controls()
        if not len(registry):
            gr.Markdown("No editing ops are installed.")
        with gr.Tabs():
            for found in registry.sorted():
                with gr.Tab(found.title, id=found.name):
                    _build_tab(
                        found, model, renderers, cache, mode_input, display, gif_dir, examples_dir, prefill, inversion
                    )
    demo.queue(default_concurrency_limit=1, max_size=64)
    return demo


def _build_tab(
    found: Op,
    model: StyleMapGAN,
    renderers: _Renderers,
    cache: gr.State,
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
    with gr.Row():
        with gr.Column():
            images = [i for i in found.inputs if isinstance(i, ImageInput)]
            with gr.Row():
                for item in images:
                    with gr.Column(min_width=200):
                        bindings.append(widgets.build_input(item, model, display, initial, found.name))
            for item in found.inputs:
                if not isinstance(item, ImageInput):
                    bindings.append(widgets.build_input(item, model, display, initial, found.name))
            run_button = gr.Button("Run", variant="primary", elem_id=f"{found.name}-run")
        with gr.Column():
            outputs = [widgets.build_output(o, gif_dir, found.name, display) for o in found.outputs]
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
    handler = _handler(found, bindings, outputs, model, renderers, mode_input is not None, has_inversion)
    controls = [run_button] + [c for b in bindings for c in b.controls]
    inputs = [cache] + api_components + ([mode_input] if mode_input is not None else [])
    if has_inversion:
        inputs += inversion.inputs
    run_button.click(
        lambda: _updates(len(controls), interactive=False), None, controls, queue=False, api_visibility="private"
    ).then(
        handler,
        inputs,
        output_components,
        api_name=found.name,
        api_description=found.description or None,
        preprocess=False,  # every image is decoded by smapgan.imageio, with its limits and clear errors
    ).then(
        lambda: _updates(len(controls), interactive=True), None, controls, queue=False, api_visibility="private"
    )


def _updates(count: int, **changes: Any) -> Any:
    """The same update for ``count`` components (a bare update for one, as Gradio expects)."""
    updates = [gr.update(**changes) for _ in range(count)]
    return updates[0] if count == 1 else updates


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
                mask = example.get(f"{item.name}_mask")
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
                width, height = imageio.open_image(source).size
            except imageio.ImageInputError as exc:
                raise gr.Error(str(exc)) from None
            side = min(width, height)
            x = (evt.index[0] - (width - side) / 2 + 0.5) / side
            y = (evt.index[1] - (height - side) / 2 + 0.5) / side
            point = f"{min(max(x, 0.0), 1.0):.3f},{min(max(y, 0.0), 1.0):.3f}"
            return f"{points}; {point}" if points and points.strip() and multiple else point

        target.select(add_point, [target, box], box, queue=False, preprocess=False, api_visibility="private")


def _handler(
    found: Op,
    bindings: list[widgets.InputBinding],
    outputs: list[widgets.OutputBinding],
    model: StyleMapGAN,
    renderers: _Renderers,
    has_mode: bool,
    has_inversion: bool = False,
) -> Callable[..., Any]:
    """The endpoint function, with a signature naming each input (the API shows those names)."""
    counts = [len(b.components) for b in bindings]
    n_values = sum(counts)

    def run(*args: Any) -> list[Any]:
        # Gradio passes (cache, *input values, [mode], [inversion, refine_steps, session], progress):
        # progress is inserted at its position in the signature below. A direct call may leave out
        # the inversion settings (encoder only).
        cache, progress = args[0], args[-1]
        values, tail = args[1 : 1 + n_values], args[1 + n_values : -1]
        mode = tail[0] if has_mode and tail else None
        settings = tail[int(has_mode) :]
        inversion, stop = (
            inversion_control.settings(*settings) if has_inversion and len(settings) == 3
            else (inversion_control.Inversion(), None)
        )
        ctx = OpContext(
            model, renderers.get(mode), cache, lambda f, d: progress(f, desc=d), inversion=inversion, stop=stop
        )
        try:
            kwargs, start = {}, 0
            for binding, n in zip(bindings, counts):
                kwargs[binding.item.name] = binding.to_value(ctx, list(values[start : start + n]))
                start += n
            result = found.run(ctx, **kwargs)
            shown = [v for o in outputs for v in o.to_values(result[o.item.name])]
            return shown[0] if len(shown) == 1 else shown  # Gradio wants a bare value for one output
        except gr.Error:
            raise
        except (imageio.ImageInputError, OpError, ValueError) as exc:
            raise gr.Error(str(exc)) from None
        except Exception as exc:  # a plugin bug: log it for the operator, show one line to the user
            logger.exception("op %s failed", found.name)
            raise gr.Error(f"{found.title} failed: {type(exc).__name__}: {exc}") from None

    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter("cache", kind)]
    seen_default = False
    for binding in bindings:
        defaults = binding.defaults or [binding.item.default_value(model)] * len(binding.params)
        for name, default in zip(binding.params, defaults):
            if default is inspect.Parameter.empty and seen_default:
                default = None  # Python wants defaults last; the op still reports the missing image
            seen_default = seen_default or default is not inspect.Parameter.empty
            params.append(inspect.Parameter(name, kind, default=default))
    if has_mode:
        params.append(inspect.Parameter("mode", kind, default=renderers.default))
    if has_inversion:
        params.append(inspect.Parameter("inversion", kind, default=inversion_control.ENCODER_ONLY))
        params.append(inspect.Parameter("refine_steps", kind, default=inversion_control.DEFAULT_STEPS))
        params.append(inspect.Parameter("session", kind, default=None))
    params.append(inspect.Parameter("progress", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=gr.Progress()))
    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    run.__name__ = found.name
    return run
