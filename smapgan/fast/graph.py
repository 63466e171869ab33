"""A differentiable twin of :class:`~smapgan.fast.prepared.PreparedDecoder`, for optimising codes.

:func:`smapgan.latent.invert.refine` back-propagates through the decoder to the
stylemap (or pyramid) a hundred times per image, with the weights frozen; the
fast renderer hands it this decoder (``FastRenderer.gradient_decoder``). The
prepared decoder's folded, channels-last weights make that 1.2-1.6x cheaper
than the model's modules on a CPU, but its in-place activations and residual
sums would overwrite what autograd needs; :class:`GradDecoder` runs the same
folded weights out of place. Values and gradients match the model's within
float tolerance (tests/test_invert.py).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..networks.decoder import Decoder
from .prepared import CL, PlainConv, PreparedDecoder, UpConv, layer_norm_affine, supports


def _conv(step: PlainConv | UpConv, x: torch.Tensor) -> torch.Tensor:
    if isinstance(step, UpConv):
        y = F.conv_transpose2d(x, step.weight.get(), stride=2)
        y = F.conv2d(y, step.blur, step.bias, padding=1, groups=y.shape[1])
    else:
        y = F.conv2d(x, step.weight.get(), step.bias, stride=step.stride, padding=step.padding)
    return F.leaky_relu(y, 0.2) if step.activate else y


class GradDecoder:
    """``expand`` and ``synthesize`` with autograd to the input (weights are constants), float32 channels-last."""

    def __init__(self, decoder: Decoder) -> None:
        if not supports(decoder):
            raise ValueError("only LayerNorm decoders can be prepared")
        self.prepared = PreparedDecoder(decoder, torch.float32, keep_weights=True)

    def expand(self, stylemap: torch.Tensor) -> list[torch.Tensor]:
        x = stylemap.float().contiguous(memory_format=CL)
        levels = []
        for step in self.prepared.resizer:
            x = _conv(step, x)
            levels.append(x)
        return levels

    def synthesize(self, pyramid: Sequence[torch.Tensor]) -> torch.Tensor:
        p = self.prepared
        levels = [level.float().contiguous(memory_format=CL) for level in pyramid]
        mods = iter([p.steps[i].modulation(level) for i, level in enumerate(levels)])
        gamma, beta = next(mods)
        x = p.input.expand(gamma.shape[0], -1, -1, -1)
        x = _conv(p.steps[0].conv, layer_norm_affine(x, gamma, beta))
        for b, skip in enumerate(p.skips):
            h = _conv(p.steps[2 * b + 1].conv, layer_norm_affine(x, *next(mods)))
            h = _conv(p.steps[2 * b + 2].conv, layer_norm_affine(h, *next(mods)))
            s = F.conv2d(x, skip.weight.get())
            s = F.conv_transpose2d(s, skip.blur, stride=2, padding=1, groups=s.shape[1])
            x = h + s
        return _conv(p.steps[-1].conv, layer_norm_affine(x, *next(mods))).contiguous()
