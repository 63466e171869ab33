"""The app's "Inversion" control: encoder only, or each input image refined per image (with a stop button,
shown by the page only while a refinement runs: ``ui.js``).

One control above the tabs, applied by the op context to every image input of
every op (:mod:`smapgan.ops.inversion`); refined stylemaps are cached per image
and setting under the session's prefix in the renderer's cache, so the edits that follow start at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from ..latent.invert import DEFAULT_STEPS
from ..ops.inversion import CHOICES, ENCODER_ONLY, MAX_STEPS, REFINED, Inversion, InversionSession
from . import departures

__all__ = [
    "DEFAULT_STEPS", "ENCODER_ONLY", "Inversion", "InversionControls", "build_controls", "done_text", "reporter",
    "settings",
]
_STEP = re.compile(r"step (\d+)/(\d+)")


@dataclass
class InversionControls:
    choice: gr.Radio
    steps: gr.Slider
    stop: gr.Button
    session: gr.State

    @property
    def inputs(self) -> list[Any]:
        """What every op's Run passes after its own inputs: choice, steps (API parameters), session (hidden)."""
        return [self.choice, self.steps, self.session]


def build_controls() -> InversionControls:
    with gr.Row(elem_id="inversion"):
        choice = gr.Radio(
            list(CHOICES), value=ENCODER_ONLY, label="Inversion", elem_id="inversion-choice",
            info="refined: optimise each input image's stylemap against it (closer fit for images unlike the "
            "training set; cached per image, so later edits are fast)",
        )
        steps = gr.Slider(
            0, MAX_STEPS, value=DEFAULT_STEPS, step=10, label="Refinement steps", elem_id="inversion-steps",
        )
        stop = gr.Button("Stop refinement", variant="stop", size="sm", elem_id="inversion-stop", scale=0)
    session = gr.State(InversionSession())
    stop.click(_stop, [session], None, queue=False, api_visibility="private")
    return InversionControls(choice, steps, stop, session)


def pricing(
    controls: InversionControls, per_step: Callable[[Any], float], model: Any = None
) -> Callable[[Any, list[Any]], float]:
    """``price(event, values)``: a queued job's refinement work in GFLOP (steps x images x GFLOP per step of
    the model the job names: ``per_step(name)``, the name being the value of ``model``, the model choice,
    among the job's inputs, else None), 0 for encoder-only jobs; for the fair queue's budget and lane."""
    image_kinds = (gr.Image, gr.ImageEditor, gr.Gallery, gr.File)

    def price(event: Any, values: list[Any]) -> float:
        inputs = list(getattr(event, "inputs", []))
        if controls.choice not in inputs or controls.steps not in inputs or len(values) != len(inputs):
            return 0.0
        if values[inputs.index(controls.choice)] != REFINED:
            return 0.0
        try:
            steps = min(max(float(values[inputs.index(controls.steps)]), 0.0), MAX_STEPS)
        except (TypeError, ValueError):
            return 0.0  # refused by the op's own check, with its message
        images = sum(len(value) if isinstance(value, list) else 1
                     for block, value in zip(inputs, values) if isinstance(block, image_kinds) and value)
        name = values[inputs.index(model)] if model is not None and model in inputs else None
        return steps * max(images, 1) * per_step(name)

    return price


def _stop(session: InversionSession) -> None:
    session.stop.set()


def settings(choice: str | None, steps: Any, session: InversionSession | None) -> tuple[Inversion, Any]:
    """The op context's inversion and stop event for one run (the stop event is cleared first)."""
    try:
        inversion = Inversion.from_choice(choice, float(steps) if steps not in (None, "") else 0)
    except (TypeError, ValueError) as exc:
        raise gr.Error(str(exc)) from None
    if session is None:
        return inversion, None
    session.stop.clear()
    departures.stop_on_leave(session.stop)  # a client that leaves stops its refinement between steps
    return inversion, session.stop


def reporter(
    progress: Callable[[float, str], None], stop: Any, memo: dict[str, Any]
) -> Callable[[float, str], None]:
    """The op context's progress report: the page's progress, and in ``memo["stopped"]`` the step
    (k, n) at which Stop ended a refinement (its first report once the stop is set: it ends there)."""

    def report(fraction: float, desc: str) -> None:
        if stop is not None and stop.is_set() and "stopped" not in memo and desc.startswith("refining"):
            found = _STEP.search(desc)
            if found:
                memo["stopped"] = (int(found.group(1)), int(found.group(2)))
        progress(fraction, desc)

    return report


def done_text(memo: dict[str, Any]) -> str:
    """The status line after a run: its time, and where a Stop ended its refinement."""
    if "elapsed" not in memo:
        return ""
    text = f"Done in {memo['elapsed']:.2f} s."
    if "stopped" in memo:
        step, steps = memo["stopped"]
        text = f"Refinement stopped at step {step} of {steps} (the best fit so far is used). {text}"
    return text
