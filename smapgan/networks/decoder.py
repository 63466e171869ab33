"""Decoder: the stylemap resizer (pyramid) and the spatially modulated synthesis network.

StyleMapGAN's "modulated" conv does not modulate weights: it normalizes its
input, applies a spatially varying affine ``x * gamma(s) + beta(s)`` computed by
two 3x3 convs from the pyramid level ``s`` at the feature's resolution, and then
one ordinary (shared) conv. ``modulation`` and ``forward_modulated`` are split so
that fast paths can cache or patch gamma/beta without re-deriving the network.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import StyleMapGANConfig
from .layers import SQRT2, Blur, ConvLayer, EqualConv2d, FusedLeakyReLU, upsample_blur_pad


class ModulatedConv2d(nn.Module):
    """Normalize, spatial affine from the stylemap level, then a shared conv (optionally upsampling)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_channels: int,
        normalize_mode: str,
        upsample: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.upsample = upsample
        self.normalize_mode = normalize_mode
        if upsample:
            self.blur = Blur(upsample_blur_pad(kernel_size), gain=4.0)
        self.scale = 1 / math.sqrt(in_channels * kernel_size**2)
        # Stored with a leading 1 as in the release (it repeated it per sample; we don't).
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        if normalize_mode == "InstanceNorm2d":
            self.norm = nn.InstanceNorm2d(in_channels, affine=False)
        elif normalize_mode == "BatchNorm2d":
            self.norm = nn.BatchNorm2d(in_channels, affine=False)
        self.gamma = EqualConv2d(style_channels, in_channels, 3, padding=1, bias_init=1.0)
        self.beta = EqualConv2d(style_channels, in_channels, 3, padding=1, bias_init=0.0)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalize_mode == "LayerNorm":
            return F.layer_norm(x, x.shape[1:], eps=1e-5)
        return self.norm(x)

    def modulation(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """gamma and beta maps at the input feature's resolution."""
        return self.gamma(style), self.beta(style)

    def conv(self, x: torch.Tensor) -> torch.Tensor:
        """The shared conv applied after the affine (a plain batched conv)."""
        weight = self.weight[0] * self.scale
        if self.upsample:
            out = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
            return self.blur(out)
        return F.conv2d(x, weight, padding=self.kernel_size // 2)

    def forward_modulated(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.addcmul(beta, self.normalize(x), gamma))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.modulation(style)
        return self.forward_modulated(x, gamma, beta)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, {self.kernel_size}, upsample={self.upsample}"


class StyledConv(nn.Module):
    """ModulatedConv2d followed by FusedLeakyReLU (keys ``conv.*``, ``activate.bias``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_channels: int,
        normalize_mode: str,
        upsample: bool = False,
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, kernel_size, style_channels, normalize_mode, upsample)
        self.activate = FusedLeakyReLU(out_channels)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.activate(self.conv(x, style))

    def forward_modulated(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return self.activate(self.conv.forward_modulated(x, gamma, beta))


class StyledResBlock(nn.Module):
    """Upsampling residual block: two styled convs and a 1x1 upsampling skip, summed / sqrt(2)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        style_channels: tuple[int, int],
        normalize_mode: str,
    ) -> None:
        super().__init__()
        self.conv1 = StyledConv(in_channels, out_channels, 3, style_channels[0], normalize_mode, upsample=True)
        self.conv2 = StyledConv(out_channels, out_channels, 3, style_channels[1], normalize_mode)
        self.skip = ConvLayer(in_channels, out_channels, 1, upsample=True, activate=False, bias=False)

    def forward(self, x: torch.Tensor, styles: Sequence[torch.Tensor]) -> torch.Tensor:
        out = self.conv2(self.conv1(x, styles[0]), styles[1])
        return (out + self.skip(x)) / SQRT2


class ConstantInput(nn.Module):
    """The learned L x L input of the synthesis network (key ``input``)."""

    def __init__(self, channels: int, side: int) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, side, side))

    def forward(self, batch: int) -> torch.Tensor:
        return self.input.expand(batch, -1, -1, -1)


class Decoder(nn.Module):
    """Stylemap -> pyramid (``convs_latent``) -> image (``conv1``, ``convs``, ``to_rgb``)."""

    def __init__(self, config: StyleMapGANConfig) -> None:
        super().__init__()
        self.config = config
        ch = config.channels
        side = config.latent_spatial_size
        c = config.latent_channel_size

        def level_channels(resolution: int) -> int:
            return c if config.small_generator else ch(resolution)

        # The stylemap resizer: two convs at L, then (upsample, conv) per doubling.
        self.convs_latent = nn.ModuleList(
            [
                ConvLayer(c, level_channels(side), 3),
                ConvLayer(level_channels(side), level_channels(side), 3),
            ]
        )
        res = side
        while res < config.size:
            self.convs_latent.append(ConvLayer(level_channels(res), level_channels(2 * res), 3, upsample=True))
            self.convs_latent.append(ConvLayer(level_channels(2 * res), level_channels(2 * res), 3))
            res *= 2
        self.level_channels = [level_channels(config.level_resolution(i)) for i in range(config.num_levels)]

        norm = config.normalize_mode
        self.input = ConstantInput(ch(side), side)
        self.conv1 = StyledConv(ch(side), ch(side), 3, self.level_channels[0], norm)
        self.convs = nn.ModuleList()
        in_ch = ch(side)
        res = side
        for i in range(config.num_upsamplings):
            res *= 2
            styles = (self.level_channels[2 * i + 1], self.level_channels[2 * i + 2])
            self.convs.append(StyledResBlock(in_ch, ch(res), styles, norm))
            in_ch = ch(res)
        self.to_rgb = StyledConv(in_ch, 3, 1, self.level_channels[-1], norm)

    @property
    def num_levels(self) -> int:
        return len(self.convs_latent)

    def expand(self, stylemap: torch.Tensor) -> list[torch.Tensor]:
        """The w+ pyramid: one tensor per styled layer, at that layer's input resolution."""
        levels = []
        x = stylemap
        for layer in self.convs_latent:
            x = layer(x)
            levels.append(x)
        return levels

    def styled_layers(self) -> list[StyledConv]:
        """Styled convs in pyramid-level order (level i modulates layer i)."""
        layers = [self.conv1]
        for block in self.convs:
            layers.extend([block.conv1, block.conv2])
        layers.append(self.to_rgb)
        return layers

    def synthesize(self, pyramid: Sequence[torch.Tensor]) -> torch.Tensor:
        """Image from a (possibly edited) pyramid. Unclamped, like the release."""
        if len(pyramid) != self.num_levels:
            raise ValueError(f"expected a pyramid of {self.num_levels} levels, got {len(pyramid)}")
        x = self.input(pyramid[0].shape[0])
        x = self.conv1(x, pyramid[0])
        for i, block in enumerate(self.convs):
            x = block(x, (pyramid[2 * i + 1], pyramid[2 * i + 2]))
        return self.to_rgb(x, pyramid[-1])

    def forward(self, stylemap: torch.Tensor) -> torch.Tensor:
        return self.synthesize(self.expand(stylemap))
