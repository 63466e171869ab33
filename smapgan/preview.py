"""A quick local render of an edit first, then the exact one.

A person moving a mask wants to see the edit at once; the local render
(``Renderer.render_local``: the base's normalization statistics, only the
changed region recomputed) gives an approximation in a fraction of the exact
render's time. :func:`previewed` yields that first, then the exact render, so
that the last image shown is always exact. It is a generator: a caller that
finds the edit superseded after the preview (the app's endpoint: the same
person's next edit is queued) stops iterating, and the exact render is never made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from .render import Encoded, Renderer


@dataclass(frozen=True)
class Shown:
    """An image to show and whether it is the exact render (else the local preview: say so in the UI)."""

    image: torch.Tensor
    exact: bool


def previewed(renderer: Renderer, edit: Sequence[torch.Tensor], base: Encoded) -> Iterator[Shown]:
    """Yield the edit's local render (when it differs from the exact one), then its exact render.

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
    if not exact:
        yield Shown(renderer.render(edit, base=base), True)
