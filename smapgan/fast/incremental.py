"""Recompute only what an edit changed: pyramid windows and gamma/beta patches.

Two facts make a local edit cheap:

* The stylemap resizer has no normalization, so a change in some stylemap cells
  only changes a window of each pyramid level (its receptive field). That
  window is recomputed from a cropped input with a halo; everything else is
  copied from the base pyramid.
* gamma and beta are linear convs of a pyramid level. Where the new level
  equals the base over a cell's 3x3 neighbourhood, the cell's gamma/beta are the
  base's; where it equals a cached ``other`` over the neighbourhood (a reference
  image, where a mask takes the reference), they are that image's, if its maps are cached. Only the
  remaining cells (a mask's rim, a moved region) are recomputed: a thin set or a
  small box by gathering just their neighbourhoods, a large one by a conv over its box. Along an animation ``lerp(base, edit, t)`` the maps are
  ``lerp(base's, edit's, t)``: the edit's are computed once.

What this cannot make local is the synthesis network itself: each styled conv
normalizes over the whole (C,H,W) of a sample, so a local change moves the
mean and variance of every later layer and with them every pixel of the
image. The exact path therefore always reruns the synthesis convs from the
first changed layer on (see ``docs/fast.md``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

from .prepared import CL, Folded, Modulation, Normalize, PlainConv, PreparedDecoder, StyledStep, UpConv

Box = tuple[int, int, int, int]  # y0, y1, x0, x1 (half-open)
# ``maps_at(need, make=True)``: a cached image's full-size (gamma, beta), made at least on the (H,W) bool cells
# asked for; with ``make=False``, None unless those cells are made already.
MapsAt = Callable[..., "tuple[torch.Tensor, torch.Tensor] | None"]

# Cells to recompute are gathered one by one (an im2col of just them) while they are fewer than this
# fraction of their bounding box; beyond, one conv over the box is cheaper.
SPARSE_FRACTION = 0.4
# Cells per GEMM of the sparse path (bounds its temporary: SPARSE_CHUNK x 9*C values).
SPARSE_CHUNK = 2048
# A box of at most this many cells is gathered even where most of its cells change: a conv over so few cells
# costs mostly its weight (folded, then reordered by oneDNN: 9.4 MB each at 512 channels), where the gathered
# GEMM reads it once. Measured on 1 thread, 512 channels: 2.4x faster at 6x6 cells, 1.3x at 12x12, 1.0-1.1x at 16x16.
GATHER_BOX_CELLS = 144


def changed_cells(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """(H,W) bool: cells where any channel differs (batch 1).

    Every edit compares whole pyramids (at 256 px, 30 M values against 30 M), so channels-last float32 levels
    are compared by their bits, two values per int64, and each cell's flags eight per int64: 1.6-2.3x faster
    than ``(new != old).any(dim=1)`` on one thread. Equal bits give the base's maps bit for bit, which is what
    an unchanged cell must keep (-0.0 against 0.0 counts as changed: its cell is recomputed, to float tolerance).
    """
    a, b = new.permute(0, 2, 3, 1), old.permute(0, 2, 3, 1)  # (1, H, W, C): a view of channels-last memory
    if new.dtype == old.dtype == torch.float32 and new.shape[1] % 16 == 0 and a.is_contiguous() and b.is_contiguous():
        differs = a.view(torch.int64) != b.view(torch.int64)  # (1, H, W, C/2)
        return differs.view(torch.int64).any(dim=-1)[0]  # (1, H, W, C/16): each int64 is 8 flags
    return (new != old).any(dim=1)[0]


def bbox(mask: torch.Tensor) -> Box | None:
    """Half-open bounding box of the set cells of an (H,W) bool mask, None if empty."""
    rows = mask.any(dim=1).nonzero()
    if rows.numel() == 0:
        return None
    cols = mask.any(dim=0).nonzero()
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def dilate(mask: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """Binary dilation of an (H,W) bool mask by a (2r+1)^2 square.

    Pooled over the set cells' bounding box grown by ``radius`` only: an edit's changed cells are a small part
    of a level (at 256 px, 36 dilations of up to 65k cells per edit).
    """
    if radius == 0:
        return mask
    box = bbox(mask)
    if box is None:
        return mask.clone()
    y0, y1, x0, x1 = grow(box, radius, tuple(mask.shape))  # type: ignore[arg-type]
    k = 2 * radius + 1
    out = torch.zeros_like(mask)
    out[y0:y1, x0:x1] = F.max_pool2d(mask[None, None, y0:y1, x0:x1].float(), k, stride=1, padding=radius)[0, 0] > 0
    return out


def erode(mask: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """Binary erosion; cells beyond the border count as set (zero padding is the same for every image)."""
    return ~dilate(~mask, radius)


def grow(box: Box, by: int, limit: tuple[int, int]) -> Box:
    y0, y1, x0, x1 = box
    return max(0, y0 - by), min(limit[0], y1 + by), max(0, x0 - by), min(limit[1], x1 + by)


def crop_with_halo(x: torch.Tensor, box: Box, halo: int) -> torch.Tensor:
    """``x[..., box]`` grown by ``halo`` cells, zero-padded where the halo leaves the image."""
    h, w = x.shape[-2:]
    y0, y1, x0, x1 = box
    sub = x[..., max(0, y0 - halo):min(h, y1 + halo), max(0, x0 - halo):min(w, x1 + halo)]
    pads = (max(0, halo - x0), max(0, x1 + halo - w), max(0, halo - y0), max(0, y1 + halo - h))
    if any(pads):
        sub = F.pad(sub, pads)
    return sub


# --------------------------------------------------------------------------- pyramid windows


def _step_out_box(step: PlainConv | UpConv, box: Box, size: tuple[int, int]) -> tuple[Box, tuple[int, int]]:
    """Cells of a resizer step's output that a change inside ``box`` of its input can reach."""
    y0, y1, x0, x1 = box
    if isinstance(step, UpConv):
        h, w = 2 * size[0], 2 * size[1]
        return (max(0, 2 * y0 - 2), min(h, 2 * y1 + 2), max(0, 2 * x0 - 2), min(w, 2 * x1 + 2)), (h, w)
    return grow(box, 1, size), size


def expand_window(
    prepared: PreparedDecoder,
    stylemap: torch.Tensor,
    base_stylemap: torch.Tensor,
    base_pyramid: Sequence[torch.Tensor],
    max_fraction: float = 0.5,
) -> list[torch.Tensor] | None:
    """The pyramid of ``stylemap`` from a cached one, recomputing only the changed windows.

    Returns None when the stylemaps differ in more than ``max_fraction`` of the
    cells (a full expand is then cheaper) or are not comparable.
    """
    if stylemap.shape != base_stylemap.shape or stylemap.shape[0] != 1:
        return None
    changed = changed_cells(stylemap.to(base_stylemap), base_stylemap)
    box = bbox(changed)
    if box is None:
        return [t for t in base_pyramid]
    area = (box[1] - box[0]) * (box[3] - box[2])
    if area > max_fraction * changed.numel():
        return None
    x = stylemap.to(dtype=prepared.dtype, memory_format=CL)
    size = tuple(x.shape[-2:])
    levels = []
    for step, base in zip(prepared.resizer, base_pyramid):
        out_box, out_size = _step_out_box(step, box, size)  # type: ignore[arg-type]
        if isinstance(step, UpConv):
            in_box = (out_box[0] // 2, -(-out_box[1] // 2), out_box[2] // 2, -(-out_box[3] // 2))
            halo = 2
        else:
            in_box, halo = out_box, 2
        in_box = grow(in_box, halo, size)  # type: ignore[arg-type]
        sub = x[..., in_box[0]:in_box[1], in_box[2]:in_box[3]]
        out = step(sub)
        scale = 2 if isinstance(step, UpConv) else 1
        oy, ox = in_box[0] * scale, in_box[2] * scale
        level = base.clone()
        level[..., out_box[0]:out_box[1], out_box[2]:out_box[3]] = out[
            ..., out_box[0] - oy:out_box[1] - oy, out_box[2] - ox:out_box[3] - ox
        ].to(base.dtype)
        levels.append(level)
        x, box, size = level.to(prepared.dtype), out_box, out_size
    return levels


# --------------------------------------------------------------------------- gamma/beta patches


@dataclass
class ModPatch:
    """How gamma/beta of one styled layer differ from the base's: only inside ``box``.

    Either ``dense`` (the box's maps, computed whole), or the base's box with
    the cells of ``copy_mask`` taken from ``source`` (a cached image's maps,
    held by reference) and the listed ``cells`` set to ``values``. Written into the base's maps only
    inside :func:`synthesize_patched`, so no box-sized intermediate maps are made.
    """

    box: Box
    dense: tuple[torch.Tensor, torch.Tensor] | None = None
    source: tuple[torch.Tensor, torch.Tensor] | None = None
    copy_mask: torch.Tensor | None = None  # (1, 1, bh, bw) bool
    cells: torch.Tensor | None = None  # (n, 2) box-relative (y, x)
    values: tuple[torch.Tensor, torch.Tensor] | None = None
    computed_cells: int = 0  # cells whose gamma/beta were convolved (the rest were copied)

    def nbytes(self) -> int:
        own = [*(self.dense or ()), *(self.values or ())]
        return sum(t.numel() * t.element_size() for t in own)

    def write(self, views: Sequence[torch.Tensor]) -> None:
        """Write the patched box into ``views`` (the base maps' box, in place)."""
        y0, y1, x0, x1 = self.box
        for i, view in enumerate(views):
            if self.dense is not None:
                view.copy_(self.dense[i])
                continue
            if self.source is not None:
                torch.where(self.copy_mask, self.source[i][..., y0:y1, x0:x1], view, out=view)
            if self.cells is not None:
                view[0].permute(1, 2, 0).index_put_((self.cells[:, 0], self.cells[:, 1]), self.values[i])


def synthesize_patched(
    decoder: PreparedDecoder,
    base_mods: Sequence[Modulation],
    patches: Sequence[ModPatch | None],
    t: float = 1.0,
    normalize: Normalize | None = None,
) -> torch.Tensor:
    """The synthesis with each layer's maps the base's with its patch written in (``t`` < 1: lerped towards it).

    ``normalize``: see ``PreparedDecoder.synthesize`` (a frozen-statistics render, ``smapgan.fast.local``).

    Writing a box into the cached maps and copying the saved box back costs a
    box, where a patched copy would cost two full maps per layer. The maps are
    changed only while their layer runs and restored bit for bit before this
    returns, even on an error; the caller holds the renderer's lock.
    """

    @contextlib.contextmanager
    def patched(base: Modulation, patch: ModPatch | None) -> Iterator[Modulation]:
        if patch is None or t == 0.0:
            yield base
            return
        y0, y1, x0, x1 = patch.box
        views = [full[..., y0:y1, x0:x1] for full in base]
        saved = [v.clone(memory_format=CL) for v in views]
        try:
            patch.write(views)
            if t != 1.0:
                for view, old in zip(views, saved):
                    torch.lerp(old, view, t, out=view)
            yield base
        finally:
            for view, old in zip(views, saved):
                view.copy_(old)

    def layers() -> Iterator[Modulation]:
        for mod, patch in zip(base_mods, patches):
            with patched(mod, patch) as maps:
                yield maps

    gen = layers()
    try:
        return decoder.synthesize(gen, normalize)
    finally:
        gen.close()  # restores the last layer's maps


def sparse_modulation(step: StyledStep, new: torch.Tensor, cells: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """gamma and beta (n, C') at the listed (y, x) cells of ``new`` only: an im2col of just those cells.

    A conv over a window spends its work on every cell of the window; the rim
    of a mask is a thin set of cells, so gathering their 3x3 neighbourhoods and
    doing one GEMM per map does only the work the rim needs.
    """
    cdtype = step.dtype
    c = new.shape[1]
    y0, x0 = (int(v) for v in cells.min(dim=0).values)
    y1, x1 = (int(v) + 1 for v in cells.max(dim=0).values)
    sub = crop_with_halo(new, (y0, y1, x0, x1), 1).to(dtype=cdtype, memory_format=CL)  # (1, C, h+2, w+2)
    ww = sub.shape[-1]
    flat = sub[0].permute(1, 2, 0).reshape(-1, c)  # ((h+2)*(w+2), C): a view of channels-last memory
    taps = torch.tensor([dy * ww + dx for dy in range(3) for dx in range(3)])
    (wg, ag, gamma_by_channel), (wb, ab, beta_by_channel) = (
        gemm_weight(w, len(cells)) for w in (step.gamma_weight, step.beta_weight))
    starts = (cells[:, 0] - y0) * ww + (cells[:, 1] - x0)  # window top-left of each cell, in ``flat``
    gammas, betas = [], []
    for chunk in starts.split(SPARSE_CHUNK):
        taken = flat.index_select(0, (chunk[:, None] + taps[None, :]).reshape(-1)).view(len(chunk), 9, c)
        by_tap = taken.view(len(chunk), 9 * c)
        by_channel = taken.transpose(1, 2).reshape(len(chunk), 9 * c) if gamma_by_channel or beta_by_channel else None
        gammas.append(torch.addmm(step.gamma_bias, by_channel if gamma_by_channel else by_tap, wg.t(), alpha=ag))
        betas.append(torch.addmm(step.beta_bias, by_channel if beta_by_channel else by_tap, wb.t(), alpha=ab))
    if len(gammas) == 1:  # (one chunk: no copy)
        return gammas[0], betas[0]
    return torch.cat(gammas), torch.cat(betas)


def gemm_weight(weight: Folded, rows: int) -> tuple[torch.Tensor, float, bool]:
    """A 3x3 conv weight as the (C', 9*C) matrix of a GEMM over ``rows`` gathered neighbourhoods: (matrix, alpha,
    whether its columns are channel-major, (c, ky, kx), rather than tap-major, (ky, kx, c)).

    A kept weight is channels-last: its memory is already the tap-major matrix the gathered rows form. A weight
    folded on use costs a pass over it per call; with fewer rows than it has, putting the rows in the
    parameter's own channel-major order costs less, and its scale becomes the GEMM's alpha.
    """
    raw = weight.unfolded_matrix() if rows < weight.shape[0] else None
    if raw is not None:
        return raw[0], raw[1], True
    w = weight.get()
    return w.permute(0, 2, 3, 1).reshape(w.shape[0], -1), 1.0, False


def modulation_patch(
    step: StyledStep,
    new: torch.Tensor,
    base: torch.Tensor,
    base_mod: tuple[torch.Tensor, torch.Tensor],
    others: Sequence[tuple[torch.Tensor, MapsAt]] = (),
    changed: torch.Tensor | None = None,
) -> ModPatch | None:
    """gamma/beta of ``new`` as a patch over ``base``'s (None when the level did not change).

    ``others``: (level, maps_at) of cached pyramids the edit may have copied
    from; ``maps_at(need)`` gives that image's full-size (gamma, beta), made at
    least on the (H,W) cells of ``need`` (see ``lazy_maps``). A cell whose whole
    3x3 neighbourhood equals such a level takes its maps as they are; a cell
    whose neighbourhood is unchanged keeps the base's; the rest of the changed
    neighbourhood is computed, cell by cell when it is thin or its box small, by
    a conv over its box when it is not.
    """
    if changed is None:
        changed = changed_cells(new, base)
    h, w = changed.shape
    region = dilate(changed, 1)
    box = bbox(region)
    if box is None:
        return None
    y0, y1, x0, x1 = box
    bh, bw = y1 - y0, x1 - x0
    dtype = base_mod[0].dtype
    done = ~region[y0:y1, x0:x1]  # cells whose gamma/beta are final
    patch = ModPatch(box)
    # Copied even in small boxes: a cell taken whole from another image must get that image's maps
    # bit for bit (a full mask gives the reference's own render), not a recomputation that rounds apart.
    if others:
        # The box grown by one, so that every box cell sees its whole neighbourhood.
        gy0, gy1, gx0, gx1 = grow(box, 1, (h, w))
        iy, ix = y0 - gy0, x0 - gx0
        best = None
        for level, maps_at in others:
            if level.shape != new.shape:
                continue
            same = ~(new[..., gy0:gy1, gx0:gx1] != level[..., gy0:gy1, gx0:gx1]).any(dim=1)[0]
            ok = erode(same)[iy:iy + bh, ix:ix + bw] & ~done
            count = int(ok.sum())
            if count and (best is None or count > best[0]):
                best = (count, ok, maps_at)
        # Copy when what is left is thin enough for the sparse path: a box convolved densely anyway would
        # make (lazily) the other image's maps for nothing. A small box is gathered whatever is left: copying
        # saves cells there too, but only where the other image's maps are made (making its tiles costs more).
        if best is not None:
            _, ok, maps_at = best
            need = torch.zeros(h, w, dtype=torch.bool)
            need[y0:y1, x0:x1] = ok
            source = None
            if int((~(done | ok)).sum()) <= SPARSE_FRACTION * bh * bw:
                source = maps_at(need)
            elif bh * bw <= GATHER_BOX_CELLS:
                source = maps_at(need, make=False)
            if source is not None:
                patch.source, patch.copy_mask = source, ok[None, None]
                done = done | ok
    cells = (~done).nonzero()
    patch.computed_cells = len(cells)
    if patch.computed_cells > SPARSE_FRACTION * bh * bw and bh * bw > GATHER_BOX_CELLS:
        window = crop_with_halo(new, box, 1).to(dtype=step.dtype, memory_format=CL)
        g, b = step.modulation(window, padding=0)
        patch.dense = (g.to(dtype).contiguous(memory_format=CL), b.to(dtype).contiguous(memory_format=CL))
        patch.source = patch.copy_mask = None
        patch.computed_cells = bh * bw
    elif patch.computed_cells:
        g, b = sparse_modulation(step, new, cells + torch.tensor([y0, x0]))
        patch.cells = cells
        patch.values = (g.to(dtype), b.to(dtype))
    return patch
