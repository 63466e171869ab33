"""A quick local render of an edit first, then the exact one, unless a newer edit came in meanwhile.

A person moving a mask wants to see the edit at once; the local render
(``Renderer.render_local``: the base's normalization statistics, only the
changed region recomputed) gives an approximation in a fraction of the exact
render's time. :class:`Previewer` yields that first, then the exact render, so
that the last image shown is always exact; an edit superseded by a newer one
(a later call on the same previewer, or ``newer()`` saying one is waiting: the
app's next job of the same session) skips its exact render, since nobody would
see it.
"""

from __future__ import annotations

import itertools
import threading
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


class Previewer:
    """Local render, then exact, per edit; newer edits of one person (one previewer) supersede older ones."""

    def __init__(self, renderer: Renderer, newer: Callable[[], bool] = nothing_newer) -> None:
        """``newer``: True when a newer edit of the same person is waiting elsewhere (the app's queue)."""
        self.renderer = renderer
        self.newer = newer
        self._ticket = itertools.count(1)
        self._latest = 0
        self._lock = threading.Lock()

    def render(self, edit: Sequence[torch.Tensor], base: Encoded) -> Iterator[Shown]:
        """Yield the local render (when it differs from the exact one), then the exact render unless superseded.

        The edit counts as begun when iteration starts; a later ``render`` on this
        previewer begun before this one's exact render starts supersedes it.

        The first edit of a base is rendered exactly at once (a local render would first record the
        base's features: a full synthesis before the preview); the features are recorded after it
        has been yielded, so that the next edit of the same base is previewed.
        """
        with self._lock:
            ticket = self._latest = next(self._ticket)
        if not self.renderer.local_ready(base):
            yield Shown(self.renderer.render(edit, base=base), True)
            self.renderer.prepare_local(base)
            return
        image, exact = self.renderer.render_local(edit, base)
        yield Shown(image, exact)
        if exact or self.superseded(ticket):
            return
        yield Shown(self.renderer.render(edit, base=base), True)

    def superseded(self, ticket: int) -> bool:
        with self._lock:
            if ticket != self._latest:
                return True
        return self.newer()
