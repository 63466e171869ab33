"""One image's gamma/beta maps, made tile by tile when a render needs them.

An image's maps cost more than its synthesis (257 of 441 GFLOP at 256 px), and
an edit rarely needs all of them: the original's only outside the region a
mask replaces, a reference's only under that mask, a lerp endpoint's none at
all (the interpolated pyramid gets its own). :class:`LazyMaps` makes each
styled layer's maps on a fixed grid of tiles, only the tiles a caller asks
for, and remembers which are done, so that the next edit of the same pair
(a moved mask) computes only the tiles it has not seen.

Every tile is computed the same way (its cells plus a one-cell halo,
zero-padded at the border, in a batch of tiles), whether it is asked for alone
or with all the others, so maps made piecewise equal maps made at once bit for
bit (``tests/test_fast.py``): a result never depends on the order of edits.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .incremental import crop_with_halo
from .prepared import CL, Modulation, PreparedDecoder

# Tiles per side of a level: a brushed region's tiles then cover it to within an eighth of the image
# (coarser, the small levels' maps, the costliest per cell, were made for both images of a pair).
TILES_PER_SIDE = 8
# Tile sides, in cells, are kept within these bounds: below 2 a conv call costs more than its work,
# above 32 a tile is as efficient as a whole map.
MIN_TILE, MAX_TILE = 2, 32


def tile_grid(side: int) -> int:
    """Tile side, in cells, for a level of ``side`` cells."""
    return min(side, max(MIN_TILE, min(MAX_TILE, side // TILES_PER_SIDE)))


class LazyMaps:
    """(gamma, beta) of each styled layer of one pyramid in one dtype, computed per tile on demand.

    ``on_compute(cells, flops)`` is told of every tile computed (the renderer's statistics).
    """

    def __init__(self, pyramid: Sequence[torch.Tensor], dtype: torch.dtype,
                 on_compute: Callable[[int, float], None] | None = None) -> None:
        self.pyramid = list(pyramid)
        self.dtype = dtype
        self.on_compute = on_compute
        self._maps: list[Modulation | None] = [None] * len(self.pyramid)
        self._done: list[torch.Tensor | None] = [None] * len(self.pyramid)  # (tiles_y, tiles_x) bool

    def __len__(self) -> int:
        return len(self.pyramid)

    def complete(self, i: int | None = None) -> bool:
        """Are all tiles of level ``i`` (of every level, when None) made?"""
        levels = range(len(self)) if i is None else [i]
        return all(self._done[j] is not None and bool(self._done[j].all()) for j in levels)

    def started(self) -> bool:
        """Has any tile been made (a render used these maps), so that completing them may pay?"""
        return any(done is not None and bool(done.any()) for done in self._done)

    def make_some(self, decoder: PreparedDecoder, max_flops: float) -> bool:
        """Make missing tiles of the first incomplete level already in use, about ``max_flops`` worth.

        False when there is nothing left to make. Levels no render has touched stay unallocated: making
        them would add to the cache's bytes behind its budget's back.
        """
        for i in range(len(self)):
            done = self._done[i]
            if done is None:
                continue
            todo = (~done).nonzero().tolist()
            if todo:
                side = tile_grid(max(self.pyramid[i].shape[-2:]))
                per_tile = side * side * decoder.steps[i].flops_per_cell
                self._make(decoder, i, todo[:max(1, int(max_flops // per_tile))], side)
                return True
        return False

    def tiles_done(self, i: int) -> int:
        done = self._done[i]
        return 0 if done is None else int(done.sum())

    def made_on(self, i: int, need: torch.Tensor) -> bool:
        """Are level ``i``'s maps made on every cell of ``need`` ((H,W) bool)?"""
        done = self._done[i]
        if done is None:
            return not bool(need.any())
        return not bool((self._wanted(i, need) & ~done).any())

    def _wanted(self, i: int, need: torch.Tensor) -> torch.Tensor:
        """The tiles of level ``i`` that hold any cell of ``need``."""
        side = tile_grid(max(self.pyramid[i].shape[-2:]))
        return F.max_pool2d(need[None, None].float(), side, stride=side, ceil_mode=True)[0, 0] > 0

    def level(self, decoder: PreparedDecoder, i: int, need: torch.Tensor | None = None) -> Modulation:
        """Level ``i``'s full-size maps, made at least on the cells of ``need`` ((H,W) bool; None: all).

        Cells outside ``need`` may hold values of tiles not made yet: read only what you asked for.
        """
        level = self.pyramid[i]
        h, w = level.shape[-2:]
        side = tile_grid(max(h, w))
        if self._maps[i] is None and need is not None and not bool(need.any()):
            return self.scratch(decoder, i)  # nothing asked: nothing kept (a lerp's endpoint)
        if self._maps[i] is None:
            self._maps[i] = self.scratch(decoder, i)
            self._done[i] = torch.zeros(-(-h // side), -(-w // side), dtype=torch.bool)
        done = self._done[i]
        if need is None:
            wanted = torch.ones_like(done)
        else:
            wanted = self._wanted(i, need)
        todo = (wanted & ~done).nonzero().tolist()
        if todo:
            self._make(decoder, i, todo, side)
        return self._maps[i]  # type: ignore[return-value]

    def scratch(self, decoder: PreparedDecoder, i: int) -> Modulation:
        """Uninitialised maps of level ``i``'s shape, not kept: room for an edit that replaces every cell."""
        level = self.pyramid[i]
        shape = (level.shape[0], decoder.steps[i].gamma_weight.shape[0], *level.shape[-2:])
        return (torch.empty(shape, dtype=self.dtype, memory_format=CL),
                torch.empty(shape, dtype=self.dtype, memory_format=CL))

    def all(self, decoder: PreparedDecoder) -> list[Modulation]:
        """Every level's maps, complete (what a full render of the image needs)."""
        return [self.level(decoder, i) for i in range(len(self))]

    def _make(self, decoder: PreparedDecoder, i: int, tiles: list[list[int]], side: int) -> None:
        """Make the listed tiles of level ``i``: their windows (with a one-cell halo) as one batch, one conv each.

        One batched conv runs at the speed of a whole map where a conv per tile would be dominated by
        its calls. The batch always holds two tiles or more (a lone tile is paired with itself): oneDNN
        picks another kernel for a batch of one, whose sums round differently, and a tile's maps must
        not depend on which other tiles were made with it (tests/test_fast.py checks this).
        """
        step, level = decoder.steps[i], self.pyramid[i]
        gamma, beta = self._maps[i]  # type: ignore[misc]
        boxes = [(ty * side, (ty + 1) * side, tx * side, (tx + 1) * side) for ty, tx in tiles]
        windows = [crop_with_halo(level, box, 1) for box in boxes]  # edge tiles: zero-padded to the same shape
        if len(windows) == 1:
            windows.append(windows[0])
        batch = torch.cat(windows).to(dtype=step.dtype, memory_format=CL)
        g, b = step.modulation(batch, padding=0)
        h, w = level.shape[-2:]
        cells = 0
        for n, ((y0, y1, x0, x1), (ty, tx)) in enumerate(zip(boxes, tiles)):
            y1, x1 = min(y1, h), min(x1, w)
            gamma[..., y0:y1, x0:x1] = g[n:n + 1, :, :y1 - y0, :x1 - x0]
            beta[..., y0:y1, x0:x1] = b[n:n + 1, :, :y1 - y0, :x1 - x0]
            self._done[i][ty, tx] = True  # type: ignore[index]
            cells += (y1 - y0) * (x1 - x0)
        if self.on_compute is not None:
            self.on_compute(cells, cells * step.flops_per_cell)

    def made(self) -> list[Modulation | None]:
        """Each level's full-size maps as allocated so far (None: no tile yet; tiles not made hold garbage)."""
        return list(self._maps)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for maps in self._maps if maps is not None for t in maps)
