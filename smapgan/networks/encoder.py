"""Encoder: image -> stylemap in one pass (StyleGAN2-style residual downsampling)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import StyleMapGANConfig
from .layers import ConvLayer, ResBlock


class Encoder(nn.Module):
    """``from_rgb`` 1x1, ResBlocks down to L, then a 3x3 conv to C channels.

    The final conv keeps its activation, as in the release: stylemaps come out
    leaky-ReLU'd.
    """

    def __init__(self, config: StyleMapGANConfig) -> None:
        super().__init__()
        ch = config.channels
        self.from_rgb = ConvLayer(3, ch(config.size), 1)
        self.convs = nn.ModuleList()
        in_ch = ch(config.size)
        for log_res in range(int(math.log2(config.size)), int(math.log2(config.latent_spatial_size)), -1):
            out_ch = ch(2 ** (log_res - 1))
            self.convs.append(ResBlock(in_ch, out_ch))
            in_ch = out_ch
        self.final_conv = ConvLayer(in_ch, config.latent_channel_size, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.from_rgb(x)
        for block in self.convs:
            x = block(x)
        return self.final_conv(x)
