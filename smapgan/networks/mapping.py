"""Mapping network: z -> stylemap (a learned MLP whose last layer emits C*L*L values)."""

from __future__ import annotations

from torch import nn

from .config import StyleMapGANConfig
from .layers import EqualLinear, PixelNorm


def build_mapping(config: StyleMapGANConfig) -> nn.Sequential:
    """PixelNorm then ``mapping_layer_num`` equalized linear layers (release key layout ``mapping_z.i``)."""
    c, side = config.latent_channel_size, config.latent_spatial_size
    layers: list[nn.Module] = [PixelNorm()]
    for i in range(config.mapping_layer_num):
        out_dim = c * side * side if i == config.mapping_layer_num - 1 else c
        layers.append(EqualLinear(c, out_dim, lr_mul=config.lr_mul, activation=True))
    return nn.Sequential(*layers)
