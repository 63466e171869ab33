"""Generator: mapping network + decoder (the release's ``g_ema`` layout)."""

from __future__ import annotations

import torch
from torch import nn

from .config import StyleMapGANConfig
from .decoder import Decoder
from .mapping import build_mapping


class Generator(nn.Module):
    def __init__(self, config: StyleMapGANConfig) -> None:
        super().__init__()
        self.config = config
        self.mapping_z = build_mapping(config)
        self.decoder = Decoder(config)

    def map_flat(self, z: torch.Tensor) -> torch.Tensor:
        """Mapping output as the release keeps it, flat (N, C*L*L): truncation means live here."""
        return self.mapping_z(z)

    def map(self, z: torch.Tensor) -> torch.Tensor:
        """z (N, C) -> stylemap (N, C, L, L)."""
        side = self.config.latent_spatial_size
        return self.map_flat(z).view(z.shape[0], self.config.latent_channel_size, side, side)

    def forward(self, stylemap: torch.Tensor) -> torch.Tensor:
        """Stylemap -> image (unclamped)."""
        return self.decoder(stylemap)
