"""Editing primitives: pure functions on stylemaps, pyramids and masks.

No UI, no I/O, no model: every op composes these. Masks are float tensors
(N,1,H,W) in [0,1] where 1 means "take the reference"; they may be given at
image resolution (or any multiple of the target) and are pooled down to each
stylemap/pyramid resolution.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
import torch.nn.functional as F

Pooling = Literal["max", "avg"]


def pool_mask(
    mask: torch.Tensor,
    size: int | tuple[int, int],
    pooling: Pooling = "max",
    threshold: float | None = None,
) -> torch.Tensor:
    """Resample a mask to ``size`` (h, w).

    ``max``: a cell is selected where any of its pixels is (the release's
    semantics; soft values keep their maximum). ``avg``: the fraction of the
    cell covered, a soft weight. ``threshold`` binarizes the result (the
    official demo uses average pooling thresholded at 0.5).
    """
    if mask.ndim == 3:
        mask = mask.unsqueeze(1)
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"mask must have shape (N,1,H,W), got {tuple(mask.shape)}")
    h, w = (size, size) if isinstance(size, int) else size
    mask = mask.float()
    if mask.shape[-2:] != (h, w):
        if mask.shape[-2] % h or mask.shape[-1] % w:
            # Not an integer ratio: resample to the next multiple first (nearest keeps hard edges hard).
            ky, kx = -(-mask.shape[-2] // h), -(-mask.shape[-1] // w)
            mask = F.interpolate(mask, size=(h * ky, w * kx), mode="nearest")
        kh, kw = mask.shape[-2] // h, mask.shape[-1] // w
        if pooling == "max":
            mask = F.max_pool2d(mask, (kh, kw))
        elif pooling == "avg":
            mask = F.avg_pool2d(mask, (kh, kw))
        else:
            raise ValueError(f"pooling must be 'max' or 'avg', got {pooling!r}")
    if threshold is not None:
        mask = (mask > threshold).float()
    return mask


def blend(original: torch.Tensor, reference: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``original + weight * (reference - original)``, broadcasting the weight.

    ``torch.lerp`` is exact at both ends: weight 0 gives the original and
    weight 1 the reference bit for bit, which the invariants of the ops rely on.
    """
    return torch.lerp(original, reference, weight.to(original.dtype).expand_as(original))


def blend_stylemap(
    original: torch.Tensor,
    reference: torch.Tensor,
    mask: torch.Tensor,
    pooling: Pooling = "max",
    strength: float = 1.0,
    threshold: float | None = None,
) -> torch.Tensor:
    """Blend two stylemaps (N,C,L,L) under a mask: the "w" space of the paper."""
    m = pool_mask(mask, original.shape[-2:], pooling, threshold).to(original.dtype) * strength
    return blend(original, reference, m)


def blend_pyramid(
    original: Sequence[torch.Tensor],
    reference: Sequence[torch.Tensor],
    mask: torch.Tensor,
    pooling: Pooling = "max",
    strength: float = 1.0,
    threshold: float | None = None,
) -> list[torch.Tensor]:
    """Blend two pyramids level by level, the mask pooled to each level: the "w+" space."""
    if len(original) != len(reference):
        raise ValueError("pyramids must have the same number of levels")
    return [blend_stylemap(o, r, mask, pooling, strength, threshold) for o, r in zip(original, reference)]


def lerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Linear interpolation ``(1 - t) * a + t * b`` (exact at t = 0 and t = 1)."""
    if isinstance(t, (int, float)):
        if t == 0:
            return a.clone()
        if t == 1:
            return b.clone()
    return torch.lerp(a, b, t if isinstance(t, torch.Tensor) else float(t))


def lerp_pyramid(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor], t: float) -> list[torch.Tensor]:
    return [lerp(x, y, t) for x, y in zip(a, b)]


def translate(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Shift the last two dims by whole cells, filling with zeros (nothing wraps around)."""
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    if abs(dy) >= h or abs(dx) >= w:
        return out
    src_y = slice(max(0, -dy), h - max(0, dy))
    dst_y = slice(max(0, dy), h - max(0, -dy))
    src_x = slice(max(0, -dx), w - max(0, dx))
    dst_x = slice(max(0, dx), w - max(0, -dx))
    out[..., dst_y, dst_x] = x[..., src_y, src_x]
    return out


def cell_offset(offset_pixels: tuple[int, int], image_size: int, resolution: int) -> tuple[int, int]:
    """A pixel offset (dy, dx) as whole cells at ``resolution`` (truncated toward zero, like the release)."""
    ratio = image_size // resolution
    return int(offset_pixels[0] / ratio), int(offset_pixels[1] / ratio)


def transplant(
    original: torch.Tensor,
    reference: torch.Tensor,
    mask: torch.Tensor,
    offset: tuple[int, int],
    image_size: int,
    pooling: Pooling = "max",
    strength: float = 1.0,
) -> torch.Tensor:
    """Unaligned transplant on one level: the reference's masked cells moved by ``offset`` pixels.

    The mask selects the region on the reference; its cells land at the same
    place shifted by ``offset`` (dy, dx) in the original. Zero offset equals
    :func:`blend_stylemap` with the same mask.
    """
    m = pool_mask(mask, original.shape[-2:], pooling).to(original.dtype)
    dy, dx = cell_offset(offset, image_size, original.shape[-1])
    return blend(original, translate(reference, dy, dx), translate(m, dy, dx) * strength)


def transplant_pyramid(
    original: Sequence[torch.Tensor],
    reference: Sequence[torch.Tensor],
    mask: torch.Tensor,
    offset: tuple[int, int],
    image_size: int,
    pooling: Pooling = "max",
    strength: float = 1.0,
) -> list[torch.Tensor]:
    """:func:`transplant` applied at every pyramid level (offset scaled to each level)."""
    return [transplant(o, r, mask, offset, image_size, pooling, strength) for o, r in zip(original, reference)]


def apply_direction(
    stylemap: torch.Tensor,
    direction: torch.Tensor,
    strength: float,
    mask: torch.Tensor | None = None,
    pooling: Pooling = "max",
) -> torch.Tensor:
    """Semantic edit ``w + strength * n``; with a mask, n is zeroed outside it (local edit)."""
    n = direction.reshape(1, *stylemap.shape[1:]).to(stylemap)
    if mask is not None:
        n = n * pool_mask(mask, stylemap.shape[-2:], pooling).to(stylemap)
    if strength == 0:
        return stylemap.clone()
    return stylemap + strength * n


def style_mix(
    content: Sequence[torch.Tensor], style: Sequence[torch.Tensor], levels: Sequence[int]
) -> list[torch.Tensor]:
    """Take the listed pyramid levels from ``style``, the others from ``content``.

    :func:`style_mix_levels` says which levels each of the two modes takes.
    """
    chosen = set(levels)
    return [s if i in chosen else c for i, (c, s) in enumerate(zip(content, style))]


StyleMixMode = Literal["coarse", "fine"]


def style_mix_levels(resolutions: Sequence[int], mode: StyleMixMode) -> list[int]:
    """The pyramid levels the second image gives in a style mix, from each level's side in cells.

    Measured on the bundled model (scripts/evaluate_prior.py --style-mix): the levels at the
    image's own resolution carry the layout (silhouette, where the eyes and mouth are: they
    feed the full-resolution convs and ``to_rgb`` directly), the coarser ones the colours.
    ``coarse`` takes the second image's levels below the image resolution: the first image's
    layout in the second's colours. ``fine`` takes every level finer than the stylemap: the
    second image's layout in the first's colours. (The release's rule of "the first two
    levels" is the other way round in this sense, and on a 64 px model with a 16x16 stylemap
    it moved the second image's layout, not its colours.)
    """
    if not resolutions:
        return []
    top, bottom = max(resolutions), min(resolutions)
    if mode == "coarse":
        levels = [i for i, r in enumerate(resolutions) if r < top]
    elif mode == "fine":
        levels = [i for i, r in enumerate(resolutions) if r > bottom]
    else:
        raise ValueError(f"mode must be 'coarse' or 'fine', got {mode!r}")
    return levels or list(range(len(resolutions)))


def feather(mask: torch.Tensor, pixels: float) -> torch.Tensor:
    """A soft version of a brushed mask: Gaussian-blurred (sigma = ``pixels / 2``), never below the mask.

    ``pixels`` is the feather width: the weight falls from 1 at the mask's edge to
    about 0.02 ``pixels`` further out (two sigmas). The mask's inside stays exactly 1
    (the blur is combined with the original by a maximum). ``pixels <= 0`` returns
    the mask itself, so callers that switch to soft pooling only when feathering
    keep today's results bit for bit. Pool the result with ``pooling="avg"`` to
    get fractional blend weights per pyramid level.
    """
    if pixels <= 0:
        return mask
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"mask must have shape (N,1,H,W), got {tuple(mask.shape)}")
    sigma = float(pixels) / 2
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=mask.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(mask.dtype if mask.is_floating_point() else torch.float32)
    m = mask.float() if not mask.is_floating_point() else mask
    blurred = m
    for dim in (2, 3):  # separable: rows, then columns (zero padding: nothing leaks in from outside the image)
        shape = (1, 1, -1, 1) if dim == 2 else (1, 1, 1, -1)
        pad = (0, 0, radius, radius) if dim == 2 else (radius, radius, 0, 0)
        blurred = F.conv2d(F.pad(blurred, pad), kernel.view(shape))
    return torch.maximum(blurred.clamp(0, 1), m)
