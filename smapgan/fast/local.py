"""The local render: an edit re-rendered only where it changes things, with the base image's LayerNorm statistics.

Each styled conv normalizes over the whole (C,H,W) of a sample, so an exact
edit moves every pixel a little and costs a whole synthesis (``docs/fast.md``).
With the base image's per-layer mean and variance held fixed ("frozen
statistics"), the normalization becomes an elementwise affine map and an
edit's effect stays inside the changed gamma/beta cells grown by each layer's
receptive field (3x3 convs, the upsampling conv and its blur, the residual
skip). The local render recomputes only that region, on top of the base's
recorded feature maps, and equals a full render with frozen statistics
(:func:`synthesize_frozen`) to float tolerance. It is an approximation of the
exact render, not the exact render: callers ask for it explicitly
(``Renderer.render_local``) and show the exact one when it is done.

Every window is computed by the same prepared conv as a full render, on an
input cropped from the (patched) cached maps and zero-extended beyond the
image, so border cells see the same zero padding as in a full render.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from .incremental import Box, ModPatch
from .prepared import CL, LN_EPS, Modulation, PlainConv, PreparedDecoder, SkipUp, UpConv, layer_norm_affine

Conv = PlainConv | UpConv | SkipUp


@dataclass(eq=False)
class BaseFeatures:
    """What a local render of edits of one image needs: each styled layer's input and its statistics.

    ``inputs[i]`` is the input of styled layer ``i`` (channels-last, the compute
    dtype); ``stats[i]`` its per-sample (mean, 1/sqrt(var + eps)), float32;
    ``image`` the base's image from the same synthesis.
    """

    inputs: list[torch.Tensor]
    stats: list[tuple[torch.Tensor, torch.Tensor]]
    image: torch.Tensor

    def nbytes(self) -> int:
        tensors = [*self.inputs, *(t for pair in self.stats for t in pair), self.image]
        return sum(t.numel() * t.element_size() for t in tensors)


def synthesize_recording(decoder: PreparedDecoder, mods: Sequence[Modulation]) -> BaseFeatures:
    """The exact synthesis (bit for bit ``decoder.synthesize``), keeping what a local render of edits needs."""
    inputs: list[torch.Tensor] = []
    stats: list[tuple[torch.Tensor, torch.Tensor]] = []

    def record(i: int, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x.float(), dim=(1, 2, 3), correction=0, keepdim=True)
        inputs.append(x.contiguous(memory_format=CL))
        stats.append((mean, torch.rsqrt(var + LN_EPS)))
        return layer_norm_affine(x, gamma, beta)

    image = decoder.synthesize(mods, normalize=record)
    return BaseFeatures(inputs, stats, image)


def frozen_affine(x: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor],
                  gamma: torch.Tensor, beta: torch.Tensor, in_place: bool = False) -> torch.Tensor:
    """``(x - mean) / std * gamma + beta`` with given statistics (in float32, returned in x's dtype).

    ``in_place``: ``x`` and ``beta`` are the caller's own float32 copies (a window), overwritten.
    """
    mean, rstd = stats
    if in_place and x.dtype == torch.float32 and beta.dtype == torch.float32:
        return beta.addcmul_(x.sub_(mean).mul_(rstd), gamma)
    y = torch.addcmul(beta.float(), (x.float() - mean) * rstd, gamma.float())
    return y.to(x.dtype).contiguous(memory_format=CL)


def frozen_normalize(base: BaseFeatures, i: int, x: torch.Tensor,
                     gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Styled layer ``i``'s normalization with the base's statistics (a ``prepared.Normalize`` once bound)."""
    return frozen_affine(x, base.stats[i], gamma, beta)


def synthesize_frozen(decoder: PreparedDecoder, mods: Sequence[Modulation], base: BaseFeatures) -> torch.Tensor:
    """A full synthesis that normalizes every styled layer with the base's statistics: what a local render equals."""
    return decoder.synthesize(mods, normalize=functools.partial(frozen_normalize, base))


# --------------------------------------------------------------------------- boxes


def union(a: Box | None, b: Box | None) -> Box | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def clip(box: Box, size: tuple[int, int]) -> Box:
    return max(0, box[0]), min(size[0], box[1]), max(0, box[2]), min(size[1], box[3])


def area(box: Box | None) -> int:
    return 0 if box is None else max(0, box[1] - box[0]) * max(0, box[3] - box[2])


def _doubles(conv: Conv) -> bool:
    return isinstance(conv, (UpConv, SkipUp))


def reach(conv: Conv, box: Box, out_size: tuple[int, int]) -> Box:
    """The output cells of ``conv`` that a change inside ``box`` of its input can move."""
    y0, y1, x0, x1 = box
    if _doubles(conv):
        # Transposed 3x3 stride 2 then a 4-tap blur (or the skip's 4-tap transposed blur):
        # input cell j reaches output cells 2j-2 .. 2j+3.
        return clip((2 * y0 - 2, 2 * y1 + 2, 2 * x0 - 2, 2 * x1 + 2), out_size)
    p = conv.padding
    return clip((y0 - p, y1 + p, x0 - p, x1 + p), out_size)


def window(conv: Conv, out: Box) -> Box:
    """The input cells (unclipped: beyond the image they are zeros) that output box ``out`` depends on."""
    y0, y1, x0, x1 = out
    if _doubles(conv):
        return y0 // 2 - 1, -(-y1 // 2) + 1, x0 // 2 - 1, -(-x1 // 2) + 1
    p = conv.padding
    return y0 - p, y1 + p, x0 - p, x1 + p


def window_flops(conv: Conv, out: Box | None) -> float:
    """FLOPs of computing ``out`` through its window (a full render: out = the whole map)."""
    if out is None:
        return 0.0
    cells = area(window(conv, out))
    per_cell = 2.0 * conv.weight.numel()  # per input cell: a plain conv's output equals its input size
    return cells * per_cell


def run(conv: Conv, inputs: torch.Tensor, win: Box, out: Box) -> torch.Tensor:
    """``conv`` over an input window, cropped to the output box."""
    y = conv(inputs)
    s = 2 if _doubles(conv) else 1
    oy, ox = s * win[0], s * win[2]
    return y[..., out[0] - oy:out[1] - oy, out[2] - ox:out[3] - ox]


# --------------------------------------------------------------------------- patched maps


@dataclass
class Patched:
    """A cached full-size map with new values inside ``box`` (None: the map as cached)."""

    base: torch.Tensor
    box: Box | None = None
    values: torch.Tensor | None = None

    def read(self, win: Box) -> tuple[torch.Tensor, Box]:
        """A copy of the cells of ``win`` that lie inside the map, and their (clipped) box."""
        c = clip(win, tuple(self.base.shape[-2:]))  # type: ignore[arg-type]
        out = self.base[..., c[0]:c[1], c[2]:c[3]].clone(memory_format=CL)
        if self.box is not None and self.values is not None:
            y0, y1 = max(c[0], self.box[0]), min(c[1], self.box[1])
            x0, x1 = max(c[2], self.box[2]), min(c[3], self.box[3])
            if y0 < y1 and x0 < x1:
                b = self.box
                new = self.values[..., y0 - b[0]:y1 - b[0], x0 - b[2]:x1 - b[2]]
                out[..., y0 - c[0]:y1 - c[0], x0 - c[2]:x1 - c[2]] = new
        return out, c

    def read_padded(self, win: Box) -> torch.Tensor:
        """The cells of ``win``, zeros beyond the map."""
        t, c = self.read(win)
        return _zero_extend(t, c, win)


def _zero_extend(t: torch.Tensor, inner: Box, win: Box) -> torch.Tensor:
    pads = (inner[2] - win[2], win[3] - inner[3], inner[0] - win[0], win[1] - inner[1])
    if any(pads):
        t = F.pad(t, pads)
    return t.contiguous(memory_format=CL)


def read_maps(base: Modulation, patch: ModPatch | None, win: Box) -> tuple[torch.Tensor, torch.Tensor, Box]:
    """The edit's (gamma, beta) over ``win`` clipped to the maps (copies), and that clipped box: the base's
    maps with the patch written in."""
    c = clip(win, tuple(base[0].shape[-2:]))  # type: ignore[arg-type]
    maps = [m[..., c[0]:c[1], c[2]:c[3]].clone(memory_format=CL) for m in base]
    if patch is not None:
        y0, y1, x0, x1 = patch.box
        if c[0] <= y0 and y1 <= c[1] and c[2] <= x0 and x1 <= c[3]:  # the patch lies inside: write it there
            patch.write([m[..., y0 - c[0]:y1 - c[0], x0 - c[2]:x1 - c[2]] for m in maps])
        elif y0 < c[1] and c[0] < y1 and x0 < c[3] and c[2] < x1:  # it overlaps (cut by a margin)
            boxes = [m[..., y0:y1, x0:x1].clone(memory_format=CL) for m in base]
            patch.write(boxes)
            maps = [Patched(m, patch.box, v).read(c)[0] for m, v in zip(base, boxes)]
    return maps[0], maps[1], c


# --------------------------------------------------------------------------- the local render


@dataclass
class LocalPlan:
    """Per styled layer, the box of its output that the edit changes (for a block's second layer: the box of
    the residual sum), and the cost of computing them as a fraction of a full synthesis' conv FLOPs."""

    outs: list[Box | None]
    cost: float


def footprint(sizes: Sequence[tuple[int, int]], mod_boxes: Sequence[Box | None],
              image_size: tuple[int, int]) -> Box | None:
    """Where the edit changes the finest pyramid level it changes, in image pixels (a brushed mask, in a w+ blend)."""
    for size, box in reversed(list(zip(sizes, mod_boxes))):
        if box is not None:
            sy, sx = image_size[0] / size[0], image_size[1] / size[1]
            return int(box[0] * sy), int(-(-box[1] * sy // 1)), int(box[2] * sx), int(-(-box[3] * sx // 1))
    return None


def _limit(box: Box | None, limit: Box | None, image_size: tuple[int, int], size: tuple[int, int]) -> Box | None:
    """``box`` cut to ``limit`` (image pixels) scaled to a map of ``size``; None when nothing is left."""
    if box is None or limit is None:
        return box
    sy, sx = size[0] / image_size[0], size[1] / image_size[1]
    lim = (int(limit[0] * sy), int(-(-limit[1] * sy // 1)), int(limit[2] * sx), int(-(-limit[3] * sx // 1)))
    cut = max(box[0], lim[0]), min(box[1], lim[1]), max(box[2], lim[2]), min(box[3], lim[3])
    return cut if cut[0] < cut[1] and cut[2] < cut[3] else None


def plan(decoder: PreparedDecoder, sizes: Sequence[tuple[int, int]], mod_boxes: Sequence[Box | None],
         margin: int | None = None) -> LocalPlan:
    """Where each layer changes, given where each layer's (gamma, beta) changed; ``sizes``: each layer's input size.

    ``margin`` (pixels): recompute no layer beyond the edit's :func:`footprint` grown by this much, keeping the
    base's values there (None: the whole receptive field, so that the result equals the frozen-statistics render).
    """
    steps, outs = decoder.steps, [None] * len(decoder.steps)
    local = full = 0.0
    image_size = sizes[-1]
    limit = None
    if margin is not None:
        foot = footprint(sizes, mod_boxes, image_size)
        limit = None if foot is None else (foot[0] - margin, foot[1] + margin, foot[2] - margin, foot[3] + margin)

    def cost(conv: Conv, out: Box | None, size: tuple[int, int]) -> None:
        nonlocal local, full
        local += window_flops(conv, out)
        full += window_flops(conv, (0, size[0], 0, size[1]))

    def styled(i: int, dirty: Box | None, out_size: tuple[int, int]) -> Box | None:
        d = union(dirty, mod_boxes[i])
        return None if d is None else _limit(reach(steps[i].conv, d, out_size), limit, image_size, out_size)

    x = styled(0, None, sizes[0])
    outs[0] = x
    cost(steps[0].conv, x, sizes[0])
    for b, skip in enumerate(decoder.skips):
        up, conv2, size = steps[2 * b + 1], steps[2 * b + 2], sizes[2 * b + 2]
        h = styled(2 * b + 1, x, size)
        out2 = styled(2 * b + 2, h, size)
        x_next = _limit(union(out2, None if x is None else reach(skip, x, size)), limit, image_size, size)
        outs[2 * b + 1], outs[2 * b + 2] = h, x_next
        cost(up.conv, h, size)
        cost(conv2.conv, x_next, size)
        cost(skip, x_next, size)
        x = x_next
    last = len(steps) - 1
    outs[last] = styled(last, x, sizes[last])
    cost(steps[last].conv, outs[last], sizes[last])
    return LocalPlan(outs, local / full if full else 1.0)


def render_local(
    decoder: PreparedDecoder,
    base_mods: Sequence[Modulation],
    patches: Sequence[ModPatch | None],
    base: BaseFeatures,
    max_cost: float = 1.0,
    margin: int | None = None,
    conv_dtype: torch.dtype | None = None,
) -> torch.Tensor | None:
    """The edit's image with the base's statistics, computed only where it differs from the base's image.

    ``base_mods``/``patches``: the base's maps and each layer's patch over them
    (``incremental.modulation_patch``). None when the region to compute costs
    more than ``max_cost`` of a full synthesis (a full render is then cheaper). ``margin``: see :func:`plan`.
    ``conv_dtype``: the dtype of the styled convs over the windows (default: the decoder's); the features,
    maps and normalization stay in the decoder's (bf16 windows of a float32 decoder: a cheaper preview).
    """
    steps = decoder.steps
    convs = [step.conv for step in decoder.steps_in(conv_dtype or decoder.dtype)]
    sizes = [tuple(m[0].shape[-2:]) for m in base_mods]
    work = plan(decoder, sizes, [None if p is None else p.box for p in patches], margin)  # type: ignore[arg-type]
    if work.cost > max_cost:
        return None
    outs = work.outs

    def normalized(i: int, x: Patched, win: Box) -> torch.Tensor:
        """Styled layer ``i``'s normalized, modulated input over ``win`` (zeros beyond the map)."""
        g, b, _ = read_maps(base_mods[i], patches[i], win)
        xs, inner = x.read(win)
        return _zero_extend(frozen_affine(xs, base.stats[i], g, b, in_place=True), inner, win)

    def styled(i: int, x: Patched, out: Box) -> torch.Tensor:
        conv = convs[i]
        win = window(conv, out)
        y = run(conv, normalized(i, x, win).to(conv.weight.dtype), win, out)
        return y.to(decoder.dtype)

    x = Patched(base.inputs[0])
    if outs[0] is not None:
        x = Patched(base.inputs[1], outs[0], styled(0, x, outs[0]))
    for b, skip in enumerate(decoder.skips):
        h = Patched(base.inputs[2 * b + 2])
        if outs[2 * b + 1] is not None:
            h = Patched(base.inputs[2 * b + 2], outs[2 * b + 1], styled(2 * b + 1, x, outs[2 * b + 1]))
        out = outs[2 * b + 2]
        nxt = 2 * b + 3
        if out is not None:
            win = window(skip, out)
            total = styled(2 * b + 2, h, out).add_(run(skip, x.read_padded(win), win, out))
            x = Patched(base.inputs[nxt], out, total)
        else:
            x = Patched(base.inputs[nxt])
    last = len(steps) - 1
    image = base.image.clone()
    if outs[last] is not None:
        y0, y1, x0, x1 = outs[last]
        image[..., y0:y1, x0:x1] = styled(last, x, outs[last]).float()
    return image
