"""The renderer: the one place where ops turn stylemaps and pyramids into images.

Ops never call the networks directly; they ask a renderer, which may cache
per-image work and, given the pyramid an edit started from (``base``), recompute
only what the edit changed. This module is the exact reference behaviour; the
CPU fast paths in ``smapgan.fast`` implement the same interface.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .model import StyleMapGAN

Pyramid = list[torch.Tensor]


class Renderer:
    """Exact rendering with plain model calls (no caching)."""

    mode = "exact"

    def __init__(self, model: StyleMapGAN) -> None:
        self.model = model

    @torch.inference_mode()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images (N,3,S,S) in [-1,1] -> stylemaps."""
        return self.model.encode(images.to(self.model.device))

    @torch.inference_mode()
    def expand(self, stylemap: torch.Tensor) -> Pyramid:
        return self.model.expand(stylemap)

    @torch.inference_mode()
    def render(self, pyramid: Sequence[torch.Tensor], base: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """Image (N,3,S,S), unclamped, from a pyramid.

        ``base`` is the pyramid the edit started from (e.g. the original's); a
        renderer may use it to recompute only the changed regions. The result
        must not depend on it beyond float tolerance.
        """
        return self.model.synthesize(list(pyramid))

    @torch.inference_mode()
    def decode(self, stylemap: torch.Tensor) -> torch.Tensor:
        return self.render(self.expand(stylemap))
