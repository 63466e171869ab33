"""StyleGAN2's residual discriminator with a minibatch standard-deviation feature."""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import StyleMapGANConfig
from .layers import ConvLayer, EqualLinear, ResBlock


def minibatch_stddev(x: torch.Tensor, group_size: int = 4) -> torch.Tensor:
    """Append one feature map: the mean over channels and pixels of the std over a group.

    Like the release, samples ``i`` and ``i + k * N/group`` form a group. Where the
    batch is not divisible by the group size (the release would fail), the largest
    divisor of the batch not above it is used.
    """
    n, c, h, w = x.shape
    group = min(n, group_size)
    while n % group:
        group -= 1
    y = x.view(group, -1, 1, c, h, w)
    y = torch.sqrt(y.var(0, unbiased=False) + 1e-8)
    y = y.mean(dim=(2, 3, 4), keepdim=True).squeeze(2)  # (n/group, 1, 1, 1)
    y = y.repeat(group, 1, h, w)
    return torch.cat([x, y], dim=1)


class Discriminator(nn.Module):
    def __init__(self, config: StyleMapGANConfig) -> None:
        super().__init__()
        ch = config.channels
        layers: list[nn.Module] = [ConvLayer(3, ch(config.size), 1)]
        in_ch = ch(config.size)
        for log_res in range(int(math.log2(config.size)), 2, -1):
            out_ch = ch(2 ** (log_res - 1))
            layers.append(ResBlock(in_ch, out_ch))
            in_ch = out_ch
        self.convs = nn.Sequential(*layers)
        self.final_conv = ConvLayer(in_ch + 1, ch(4), 3)
        self.final_linear = nn.Sequential(
            EqualLinear(ch(4) * 4 * 4, ch(4), activation=True),
            EqualLinear(ch(4), 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = minibatch_stddev(self.convs(x))
        x = self.final_conv(x)
        return self.final_linear(x.flatten(1))
