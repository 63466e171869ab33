"""A quick local render of an edit first, then the exact one, unless a newer edit came in meanwhile.

A person moving a mask wants to see the edit at once; the local render
(``Renderer.render_local``: the base's normalization statistics, only the
changed region recomputed) gives an approximation in a fraction of the exact
render's time. :func:`previewed` yields that first, then the exact render, so
that the last image shown is always exact; an edit superseded by a newer one
(``newer()`` says one is waiting: the app's next job of the same session) skips
its exact render, since nobody would see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch

from .render import Encoded, Renderer


@dataclass(frozen=True)
class Shown:
    """An image to show and whether it is the exact render (else the local preview: say so in the UI)."""

    image: torch.Tensor
    exact: bool


def nothing_newer() -> bool:
    """The default ``newer``: no edit waits anywhere else (a single caller: the CLI, a script)."""
    return False


def previewed(
    renderer: Renderer, edit: Sequence[torch.Tensor], base: Encoded, newer: Callable[[], bool] = nothing_newer
) -> Iterator[Shown]:
    """Yield the local render (when it differs from the exact one), then the exact render unless ``newer()``
    says a newer edit of the same person is waiting (the app's queue) once the local one was shown.

    The first edit of a base is rendered exactly at once (a local render would first record the
    base's features: a full synthesis before the preview); the features are recorded after it
    has been yielded, so that the next edit of the same base is previewed.
    """
    if not renderer.local_ready(base):
        yield Shown(renderer.render(edit, base=base), True)
        renderer.prepare_local(base)
        return
    image, exact = renderer.render_local(edit, base)
    yield Shown(image, exact)
    if not exact and not newer():
        yield Shown(renderer.render(edit, base=base), True)
