"""How the op context turns a picture into a stylemap: the encoder alone, or refined per image.

One setting for every image input of every op (the app's "Inversion" control,
``smapgan edit --refine-steps N``): :class:`OpContext` asks :func:`invert` for a
picture's stylemap, caches it per image and setting, and every op (built-in or
plugin) edits from it without knowing. Refinement is :func:`smapgan.latent.invert.refine`
in the stylemap space ("w"), so blends in w and w+, lerps and directions all start
from the refined code.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

import torch

from ..intake import limits
from ..latent.invert import Differentiable, RefineStep, RefineTrace, refine
from ..model import StyleMapGAN

ENCODER_ONLY = "encoder only"
REFINED = "refined"
CHOICES = (ENCODER_ONLY, REFINED)
MAX_STEPS = limits.MAX_REFINE_STEPS


@dataclass(frozen=True)
class Inversion:
    """``steps`` = 0: the encoder's stylemap; > 0: that many refinement steps from it (``refine``'s
    default proximity and learning rate)."""

    steps: int = 0

    def __post_init__(self) -> None:
        if not 0 <= int(self.steps) <= MAX_STEPS:
            raise ValueError(f"refinement steps must be in [0, {MAX_STEPS}], got {self.steps}")

    @classmethod
    def from_choice(cls, choice: str | None, steps: float | int | None) -> "Inversion":
        """From the app's control: "encoder only" or "refined" with a number of steps."""
        if choice in (None, "", ENCODER_ONLY):
            return cls()
        if choice != REFINED:
            raise ValueError(f"inversion must be one of {', '.join(CHOICES)}, got {choice!r}")
        return cls(steps=int(steps or 0))

    @property
    def active(self) -> bool:
        return self.steps > 0

    @property
    def key(self) -> str:
        """Part of the cache key: codes refined with other settings are other entries."""
        return "encoder" if not self.active else f"refine:{self.steps}"


class InversionSession:
    """Per app session: the stop button's event (set to end a refinement early, keeping the best so far).

    A plain class, not a dataclass: Gradio serialises dataclass state values with ``asdict``.
    """

    def __init__(self) -> None:
        self.stop = threading.Event()

    def __deepcopy__(self, memo: dict) -> "InversionSession":
        return InversionSession()  # gr.State copies its initial value per session: a fresh event each


def invert(
    model: StyleMapGAN,
    image: torch.Tensor,
    encoded: torch.Tensor,
    inversion: Inversion,
    report: Callable[[float, str], None],
    stop: threading.Event | None = None,
    decoder: Differentiable | None = None,
) -> tuple[torch.Tensor, bool]:
    """The stylemap of ``image`` refined per ``inversion`` (active), starting from its encoder code ``encoded``,
    and whether it is complete (False when stopped early: use it, but do not cache it as the refined code);
    ``decoder``: what it back-propagates through (``refine``'s, the model by default)."""

    def progress(info: RefineStep) -> None:
        report(info.step / info.steps, f"refining image: step {info.step}/{info.steps}")

    trace = RefineTrace()
    code = refine(model, image, steps=inversion.steps, progress=progress, stop=stop, init=encoded, trace=trace,
                  decoder=decoder)
    return code, not trace.stopped
