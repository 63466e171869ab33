"""Equalized-learning-rate building blocks (StyleGAN2 conventions; docs/release_facts.md §Building blocks).

Parameter names and container layouts mirror the official release so that its
state dicts load with ``strict=True``; e.g. a ``ConvLayer`` is an
``nn.Sequential`` whose indices (blur, conv, activation) are part of the keys.
Code that reads a layer's parts uses its named accessors (``conv``, ``blur``,
``activation``, ``bias``), never those indices.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)
BLUR_KERNEL = (1, 3, 3, 1)


def make_blur_kernel(taps: Sequence[float] = BLUR_KERNEL, gain: float = 1.0) -> torch.Tensor:
    """Separable FIR taps as a normalized 2-D kernel (outer product, sum = gain)."""
    k = torch.tensor(taps, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum() * gain


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``leaky_relu(x + bias, 0.2) * sqrt(2)``: StyleGAN2's gain-preserving activation."""
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.ndim - 2)))
    return F.leaky_relu(x, 0.2) * SQRT2


class FusedLeakyReLU(nn.Module):
    """Activation that owns the preceding layer's bias (key ``bias``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias)


class ScaledLeakyReLU(nn.Module):
    """Bias-free variant of :class:`FusedLeakyReLU`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, 0.2) * SQRT2


class PixelNorm(nn.Module):
    """Normalize each latent vector to unit RMS (first layer of the mapping network)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class Blur(nn.Module):
    """Depthwise FIR filter with explicit padding (key ``kernel``, a buffer)."""

    def __init__(self, pad: tuple[int, int], gain: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("kernel", make_blur_kernel(gain=gain))
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        x = F.pad(x, (self.pad[0], self.pad[1], self.pad[0], self.pad[1]))
        # The kernel is symmetric, so correlation equals the reference's convolution.
        weight = self.kernel.to(x.dtype)[None, None].expand(channels, 1, -1, -1)
        return F.conv2d(x, weight, groups=channels)


class _Equalized(nn.Module):
    """Equalized learning rate: the weight is stored as ``randn / lr_mul`` and used times
    ``lr_mul / sqrt(fan_in)`` (:attr:`scale`); the bias is used times ``lr_mul``."""

    def __init__(self, shape: tuple[int, ...], bias: bool, bias_init: float, lr_mul: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(shape).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((shape[0],), float(bias_init))) if bias else None
        self.scale = lr_mul / math.sqrt(math.prod(shape[1:]))
        self.lr_mul = lr_mul

    def scaled_bias(self) -> torch.Tensor | None:
        return self.bias * self.lr_mul if self.bias is not None else None


class EqualLinear(_Equalized):
    """Linear layer with runtime weight scaling ``lr_mul / sqrt(fan_in)``."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activation: bool = False,
    ) -> None:
        super().__init__((out_dim, in_dim), bias, bias_init, lr_mul)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.scaled_bias()
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]}, {self.weight.shape[0]}, lr_mul={self.lr_mul}"


class EqualConv2d(_Equalized):
    """Conv with runtime weight scaling; ``transpose=True`` makes it a stride-2 transposed conv.

    The weight is stored (out, in, k, k) in both cases, as in the release; the
    transposed conv uses its (in, out) transpose.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        transpose: bool = False,
    ) -> None:
        super().__init__((out_channels, in_channels, kernel_size, kernel_size), bias, bias_init, lr_mul)
        self.stride = stride
        self.padding = padding
        self.transpose = transpose

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.scaled_bias()
        weight = self.weight * self.scale
        if self.transpose:
            return F.conv_transpose2d(x, weight.transpose(0, 1), bias, stride=2, padding=self.padding)
        return F.conv2d(x, weight, bias, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        o, i, k, _ = self.weight.shape
        return f"{i}, {o}, {k}, stride={2 if self.transpose else self.stride}, transpose={self.transpose}"


def upsample_blur_pad(kernel_size: int, taps: int = len(BLUR_KERNEL)) -> tuple[int, int]:
    """Blur padding after a stride-2 transposed conv: (1,1) for 3x3, (2,2) for 1x1."""
    p = (taps - 2) - (kernel_size - 1)
    return (p + 1) // 2 + 1, p // 2 + 1


def downsample_blur_pad(kernel_size: int, taps: int = len(BLUR_KERNEL)) -> tuple[int, int]:
    """Blur padding before a stride-2 conv: (2,2) for 3x3, (1,1) for 1x1."""
    p = (taps - 2) + (kernel_size - 1)
    return (p + 1) // 2, p // 2


class ConvLayer(nn.Sequential):
    """Conv (optionally up/down-sampling with blur) followed by an optional activation.

    Layouts, as indexed in the release's keys:
    downsample ``[Blur, EqualConv2d, act]``; upsample ``[EqualConv2d(T), Blur, act]``;
    plain ``[EqualConv2d, act]``. With ``activate`` the bias lives in the activation.
    The parts are read by name (:attr:`conv`, :attr:`blur`, :attr:`activation`), which
    leaves the state-dict keys (the indices) as the release has them.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        upsample: bool = False,
        downsample: bool = False,
        bias: bool = True,
        activate: bool = True,
        lr_mul: float = 1.0,
    ) -> None:
        if upsample and downsample:
            raise ValueError("a ConvLayer cannot both upsample and downsample")
        parts: list[tuple[str, nn.Module]] = []
        conv_bias = bias and not activate
        if upsample:
            conv = EqualConv2d(in_channels, out_channels, kernel_size, bias=conv_bias, lr_mul=lr_mul, transpose=True)
            parts += [("conv", conv), ("blur", Blur(upsample_blur_pad(kernel_size), gain=4.0))]
        elif downsample:
            conv = EqualConv2d(in_channels, out_channels, kernel_size, stride=2, bias=conv_bias, lr_mul=lr_mul)
            parts += [("blur", Blur(downsample_blur_pad(kernel_size))), ("conv", conv)]
        else:
            padding = kernel_size // 2
            parts.append(("conv", EqualConv2d(in_channels, out_channels, kernel_size, padding=padding, bias=conv_bias,
                                              lr_mul=lr_mul)))
        if activate:
            parts.append(("activation", FusedLeakyReLU(out_channels) if bias else ScaledLeakyReLU()))
        super().__init__(*(module for _, module in parts))
        self.roles = tuple(role for role, _ in parts)  # a plain attribute: not in the state dict

    def _part(self, role: str) -> nn.Module | None:
        return self[self.roles.index(role)] if role in self.roles else None

    @property
    def conv(self) -> EqualConv2d:
        """The convolution (transposed when upsampling, stride 2 when downsampling)."""
        return self._part("conv")  # type: ignore[return-value]

    @property
    def blur(self) -> Blur | None:
        """The blur after an upsampling conv or before a downsampling one; None otherwise."""
        return self._part("blur")  # type: ignore[return-value]

    @property
    def activation(self) -> FusedLeakyReLU | ScaledLeakyReLU | None:
        return self._part("activation")  # type: ignore[return-value]

    @property
    def bias(self) -> torch.Tensor | None:
        """The layer's bias: the activation's when it has one (``activate``), else the conv's."""
        activation = self.activation
        return activation.bias if isinstance(activation, FusedLeakyReLU) else self.conv.bias


class ResBlock(nn.Module):
    """Downsampling residual block of the encoder and discriminator."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, downsample=True)
        self.skip = ConvLayer(in_channels, out_channels, 1, downsample=True, activate=False, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / SQRT2
