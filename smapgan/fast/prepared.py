"""Prepared networks: the decoder and encoder rewritten for fast CPU inference.

The model's modules are written to read like the paper; these are the same
computations with every constant folded in once (equalized-lr scales, the
``sqrt(2)`` gains of the activations and of the residual sums, the blur gains),
stored channels-last in the compute dtype, so that a forward pass is a chain of
oneDNN convolutions and a few in-place elementwise ops:

* LayerNorm and the spatial affine ``x * gamma + beta`` are one fused
  ``layer_norm`` call (its elementwise weight and bias are exactly the gamma and
  beta maps when the normalized shape is a whole sample);
* ``leaky_relu(z) * sqrt(2)`` becomes ``leaky_relu(sqrt(2) z)`` with the factor in
  the weights (the activation is positively homogeneous), applied in place;
* the residual ``(out + skip) / sqrt(2)`` moves its factor into both branches;
* the skip's zero-inserted 1x1 transposed conv + blur is a 1x1 conv at low
  resolution followed by a depthwise transposed blur (4x fewer blur taps);
* the encoder's skip blur is evaluated only at the stride-2 positions it keeps.

Only LayerNorm models are prepared (every release); :func:`supports` says so.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F

from ..networks.layers import SQRT2, Blur, ConvLayer, EqualConv2d, FusedLeakyReLU, ResBlock
from ..networks.decoder import Decoder, StyledConv
from ..networks.encoder import Encoder

CL = torch.channels_last
LN_EPS = 1e-5
Modulation = tuple[torch.Tensor, torch.Tensor]
# (styled layer index, its input, gamma, beta) -> the normalized, modulated input of its conv.
Normalize = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def supports(decoder: Decoder) -> bool:
    """Whether the decoder can be prepared (LayerNorm normalization)."""
    return decoder.config.normalize_mode == "LayerNorm"


def to_cl(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return x.to(dtype=dtype, memory_format=CL)


def _blur_kernel(blur: Blur, channels: int, factor: float, dtype: torch.dtype) -> torch.Tensor:
    """The blur as a depthwise conv weight (C,1,k,k), gain multiplied by ``factor``."""
    k = blur.kernel.detach().float() * factor
    return k[None, None].expand(channels, 1, -1, -1).to(dtype).contiguous(memory_format=CL)


class Folded:
    """A conv weight with its constant folded in: ``param * scale`` (optionally ``[0]``, transposed).

    Stored channels-last in the compute dtype (``keep``), or rebuilt from the
    parameter on every use, which costs one pass over the weight per call and
    saves keeping a second copy of the model (318 MB at 256 px in float32).
    """

    def __init__(self, param: torch.Tensor, scale: float, dtype: torch.dtype, keep: bool,
                 first: bool = False, transpose: bool = False) -> None:
        self.param, self.scale, self.dtype = param, scale, dtype
        self.first, self.transpose = first, transpose
        shape = param.shape[1:] if first else param.shape
        self.shape = torch.Size((shape[1], shape[0], *shape[2:])) if transpose else shape
        self._value = self._build() if keep else None

    def _source(self) -> torch.Tensor:
        w = self.param.detach()
        if self.first:
            w = w[0]
        return w.transpose(0, 1) if self.transpose else w

    @torch.no_grad()
    def _build(self) -> torch.Tensor:
        w = self._source()
        if w.dtype == self.dtype:
            out = torch.empty(self.shape, dtype=self.dtype, device=w.device, memory_format=CL)
            return torch.mul(w, self.scale, out=out)
        return (w.float() * self.scale).to(self.dtype).contiguous(memory_format=CL)

    def get(self) -> torch.Tensor:
        """The weight, channels-last like the activations (so oneDNN never reorders it twice)."""
        return self._value if self._value is not None else self._build()

    def unfolded_matrix(self) -> tuple[torch.Tensor, float] | None:
        """The parameter as an (out, in*k*k) matrix in its own (in, ky, kx) column order, and the scale it still
        needs; None where that is not a free view of it (a kept copy, a dtype change, a transposed or non-contiguous
        parameter). A GEMM takes the scale as its ``alpha``: no pass over the weight to fold it in."""
        w = self.param.detach()
        if self._value is not None or self.first or self.transpose or w.dtype != self.dtype or not w.is_contiguous():
            return None
        return w.view(w.shape[0], -1), self.scale

    def nbytes(self) -> int:
        return 0 if self._value is None else self._value.numel() * self._value.element_size()

    def kept_in(self, dtype: torch.dtype) -> "Folded":
        """The same weight folded and kept in ``dtype`` (built from the parameter, as a decoder of that dtype does)."""
        return Folded(self.param, self.scale, dtype, True, first=self.first, transpose=self.transpose)

    def numel(self) -> int:
        return self.shape.numel()


def _conv_weight(conv: EqualConv2d, factor: float, dtype: torch.dtype, keep: bool) -> Folded:
    return Folded(conv.weight, conv.scale * factor, dtype, keep, transpose=conv.transpose)


def _bias(bias: torch.Tensor | None, factor: float, dtype: torch.dtype, lr_mul: float = 1.0) -> torch.Tensor | None:
    return None if bias is None else (bias.detach().float() * (lr_mul * factor)).to(dtype).contiguous()


@dataclass
class PlainConv:
    """``leaky_relu(conv(x) + b)`` (or no activation) with folded constants."""

    weight: Folded
    bias: torch.Tensor | None
    padding: int = 0
    stride: int = 1
    activate: bool = True
    prefilter: torch.Tensor | None = None  # depthwise blur applied before (encoder downsampling)
    prefilter_pad: int = 0
    prefilter_stride: int = 1

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.prefilter is not None:
            x = F.conv2d(x, self.prefilter, padding=self.prefilter_pad, stride=self.prefilter_stride, groups=x.shape[1])
        y = F.conv2d(x, self.weight.get(), self.bias, stride=self.stride, padding=self.padding)
        return F.leaky_relu_(y, 0.2) if self.activate else y


@dataclass
class UpConv:
    """Stride-2 transposed conv, then the blur (with the bias) and ``leaky_relu``, constants folded."""

    weight: Folded  # (in, out, k, k)
    blur: torch.Tensor  # (out, 1, 4, 4)
    bias: torch.Tensor | None
    activate: bool = True

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv_transpose2d(x, self.weight.get(), stride=2)
        y = F.conv2d(y, self.blur, self.bias, padding=1, groups=y.shape[1])
        return F.leaky_relu_(y, 0.2) if self.activate else y


@dataclass
class SkipUp:
    """The residual skip: 1x1 conv at low resolution, then a depthwise transposed blur (= zero insertion + blur)."""

    weight: Folded  # (out, in, 1, 1)
    blur: torch.Tensor  # (out, 1, 4, 4)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.weight.get())
        n, c, h, w = y.shape
        if y.dtype != torch.bfloat16:
            return F.conv_transpose2d(y, self.blur, stride=2, padding=1, groups=c)
        # oneDNN's depthwise transposed conv is slow in bfloat16: insert the zeros, then blur.
        # Allocated channels-last directly: new_zeros(...).contiguous(CL) zero-fills and then copies 4x y.
        up = torch.empty((n, c, 2 * h + 3, 2 * w + 3), dtype=y.dtype, device=y.device, memory_format=CL).zero_()
        up[:, :, 2:2 * h + 1:2, 2:2 * w + 1:2] = y
        return F.conv2d(up, self.blur, groups=c)


def conv_in(conv: "PlainConv | UpConv", dtype: torch.dtype) -> "PlainConv | UpConv":
    """A copy of a prepared conv that computes in ``dtype`` (its weight kept in it; the input must be in it)."""
    tensors = {name: value.to(dtype) for name, value in vars(conv).items() if isinstance(value, torch.Tensor)}
    return dataclasses.replace(conv, weight=conv.weight.kept_in(dtype), **tensors)


def _resizer_step(layer: ConvLayer, dtype: torch.dtype, keep: bool) -> PlainConv | UpConv:
    conv, blur = layer.conv, layer.blur
    assert isinstance(layer.activation, FusedLeakyReLU)
    bias = _bias(layer.bias, SQRT2, dtype)
    if conv.transpose:
        assert blur is not None
        return UpConv(_conv_weight(conv, 1.0, dtype, keep), _blur_kernel(blur, conv.weight.shape[0], SQRT2, dtype), bias)
    return PlainConv(_conv_weight(conv, SQRT2, dtype, keep), bias, padding=conv.padding)


@dataclass
class StyledStep:
    """A styled conv: gamma/beta convs on its pyramid level, fused LayerNorm+affine, then its conv."""

    gamma_weight: Folded
    gamma_bias: torch.Tensor
    beta_weight: Folded
    beta_bias: torch.Tensor
    conv: PlainConv | UpConv

    @property
    def flops_per_cell(self) -> float:
        """FLOPs of gamma and beta at one cell (2 per multiply-add)."""
        return 2 * 2.0 * self.gamma_weight.numel()

    @property
    def dtype(self) -> torch.dtype:
        return self.gamma_weight.dtype

    def modulation(self, level: torch.Tensor, padding: int = 1) -> Modulation:
        """(gamma, beta) maps; ``padding=0`` computes only the interior of a window with a 1-cell halo."""
        gamma = F.conv2d(level, self.gamma_weight.get(), self.gamma_bias, padding=padding)
        beta = F.conv2d(level, self.beta_weight.get(), self.beta_bias, padding=padding)
        return gamma, beta

    def __call__(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return self.conv(layer_norm_affine(x, gamma, beta))


def layer_norm_affine(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """``layer_norm(x over C,H,W) * gamma + beta`` in one pass (channels-last in and out).

    In channels-last memory a sample is a contiguous (H,W,C) block, so the
    sample-wide LayerNorm with an elementwise (H,W,C) weight and bias is exactly
    the normalization followed by the spatial affine.
    """
    n = x.shape[0]
    x = x.contiguous(memory_format=CL)
    xp = x.permute(0, 2, 3, 1)
    shape = xp.shape[1:]
    gp = gamma.contiguous(memory_format=CL).permute(0, 2, 3, 1)
    bp = beta.contiguous(memory_format=CL).permute(0, 2, 3, 1)
    if gp.shape[0] == 1:
        out = F.layer_norm(xp, shape, gp[0], bp[0], LN_EPS)
    else:
        out = torch.stack([F.layer_norm(xp[i], shape, gp[i], bp[i], LN_EPS) for i in range(n)])
    return out.permute(0, 3, 1, 2)


def step_in(step: StyledStep, dtype: torch.dtype) -> StyledStep:
    """A copy of a styled step that computes in ``dtype`` (every weight kept in it; inputs must be in it)."""
    def cast(bias: torch.Tensor | None) -> torch.Tensor | None:
        return None if bias is None else bias.to(dtype)

    return StyledStep(step.gamma_weight.kept_in(dtype), cast(step.gamma_bias),  # type: ignore[arg-type]
                      step.beta_weight.kept_in(dtype), cast(step.beta_bias), conv_in(step.conv, dtype))  # type: ignore[arg-type]


def _styled_step(layer: StyledConv, dtype: torch.dtype, factor: float, keep: bool) -> StyledStep:
    """``factor`` multiplies the layer's output (sqrt(2) of the activation, 1/sqrt(2) of a residual sum)."""
    mod = layer.conv
    gamma, beta = mod.gamma, mod.beta
    # The synthesis convs run on every render in full: their folded weights (76 MB at 256 px) are always kept.
    w = Folded(mod.weight, mod.scale * factor, dtype, True, first=True, transpose=mod.upsample)
    bias = _bias(layer.activate.bias, factor, dtype)
    if mod.upsample:
        conv: PlainConv | UpConv = UpConv(w, _blur_kernel(mod.blur, mod.out_channels, 1.0, dtype), bias)
    else:
        conv = PlainConv(w, bias, padding=mod.kernel_size // 2)
    return StyledStep(
        _conv_weight(gamma, 1.0, dtype, keep), _bias(gamma.bias, 1.0, dtype, gamma.lr_mul),
        _conv_weight(beta, 1.0, dtype, keep), _bias(beta.bias, 1.0, dtype, beta.lr_mul), conv,
    )


class PreparedDecoder:
    """The decoder with folded constants in one dtype; pyramids and modulations are channels-last."""

    def __init__(self, decoder: Decoder, dtype: torch.dtype = torch.float32, keep_weights: bool = True) -> None:
        """``keep_weights=False`` folds the resizer and gamma/beta weights on use (see :class:`Folded`)."""
        if not supports(decoder):
            raise ValueError("only LayerNorm decoders can be prepared")
        self.dtype = dtype
        keep = keep_weights
        with torch.no_grad():
            self.resizer = [_resizer_step(layer, dtype, keep) for layer in decoder.convs_latent]
            self.input = to_cl(decoder.input.input.detach(), dtype)
            self.steps = [_styled_step(decoder.conv1, dtype, SQRT2, keep)]
            self.skips: list[SkipUp] = []
            for block in decoder.convs:
                # conv1 keeps its sqrt(2) (folded into its blur below); conv2 and the skip carry the residual's 1/sqrt(2).
                up = _styled_step(block.conv1, dtype, 1.0, keep)
                assert isinstance(up.conv, UpConv)
                up.conv.blur = up.conv.blur * SQRT2
                up.conv.bias = _bias(block.conv1.activate.bias, SQRT2, dtype)
                self.steps.append(up)
                self.steps.append(_styled_step(block.conv2, dtype, 1.0, keep))
                skip_conv, skip_blur = block.skip.conv, block.skip.blur
                w = Folded(skip_conv.weight, skip_conv.scale / SQRT2, dtype, True)  # (out, in, 1, 1)
                self.skips.append(SkipUp(w, _blur_kernel(skip_blur, w.shape[0], 1.0, dtype)))
            self.steps.append(_styled_step(decoder.to_rgb, dtype, SQRT2, keep))
        self._steps_in: dict[torch.dtype, list[StyledStep]] = {}

    def steps_in(self, dtype: torch.dtype) -> list[StyledStep]:
        """The styled steps computing in ``dtype``, their gamma/beta and synthesis weights kept in it (made on first
        use: the local preview's bf16 convolutions, ``smapgan.fast.local``); this decoder's own in its dtype."""
        if dtype == self.dtype:
            return self.steps
        if dtype not in self._steps_in:
            self._steps_in[dtype] = [step_in(step, dtype) for step in self.steps]
        return self._steps_in[dtype]

    def nbytes(self) -> int:
        """Bytes this holds beyond the model (kept weights, biases, blur kernels)."""
        total = 0
        kept_in_other_dtypes = [step for steps in self._steps_in.values() for step in steps]
        for obj in [*self.resizer, *self.steps, *self.skips, *kept_in_other_dtypes]:
            values = list(vars(obj).values())
            values += [v for x in values if isinstance(x, (PlainConv, UpConv)) for v in vars(x).values()]
            for value in values:
                if isinstance(value, torch.Tensor):
                    total += value.numel() * value.element_size()
                elif isinstance(value, Folded):
                    total += value.nbytes()
        return total

    # ---------------------------------------------------------------- pyramid
    def expand(self, stylemap: torch.Tensor) -> list[torch.Tensor]:
        """The w+ pyramid (channels-last, in this dtype)."""
        x = to_cl(stylemap, self.dtype)
        levels = []
        for step in self.resizer:
            x = step(x)
            levels.append(x)
        return levels

    # ------------------------------------------------------------- synthesis
    def modulation(self, i: int, level: torch.Tensor) -> Modulation:
        """gamma and beta of styled layer ``i`` from pyramid level ``i``."""
        return self.steps[i].modulation(to_cl(level, self.dtype))

    def modulations(self, pyramid: Sequence[torch.Tensor]) -> list[Modulation]:
        return [self.modulation(i, level) for i, level in enumerate(pyramid)]

    def synthesize(self, modulations: Iterable[Modulation], normalize: Normalize | None = None) -> torch.Tensor:
        """Image (N,3,S,S) float32 contiguous, from each styled layer's (gamma, beta).

        ``modulations`` is consumed in layer order, so a generator can build each
        layer's maps just before they are used and let them go right after.
        ``normalize(i, x, gamma, beta)`` replaces styled layer ``i``'s fused
        LayerNorm+affine (``smapgan.fast.local`` records or freezes its statistics).
        """
        mods = iter(modulations)

        def styled(i: int, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
            if normalize is None:
                return self.steps[i](x, gamma, beta)
            return self.steps[i].conv(normalize(i, x, gamma, beta))

        gamma, beta = next(mods)
        x = self.input.expand(gamma.shape[0], -1, -1, -1)
        x = styled(0, x, gamma, beta)
        for b, skip in enumerate(self.skips):
            h = styled(2 * b + 1, x, *next(mods))
            h = styled(2 * b + 2, h, *next(mods))
            x = h.add_(skip(x))
        image = styled(len(self.steps) - 1, x, *next(mods))
        return image.float().contiguous()

    def decode(self, stylemap: torch.Tensor) -> torch.Tensor:
        return self.synthesize(self.modulations(self.expand(stylemap)))


class PreparedEncoder:
    """The encoder with folded constants; the skip blur is evaluated only where the stride keeps it."""

    def __init__(self, encoder: Encoder, dtype: torch.dtype = torch.float32, keep_weights: bool = True) -> None:
        self.dtype = dtype
        self.keep = keep_weights
        with torch.no_grad():
            self.from_rgb = self._plain(encoder.from_rgb, SQRT2)
            self.blocks: list[tuple[PlainConv, PlainConv, PlainConv]] = []
            for block in encoder.convs:
                assert isinstance(block, ResBlock)
                conv1 = self._plain(block.conv1, SQRT2)
                conv2 = self._plain(block.conv2, 1.0)  # sqrt(2) of the activation / sqrt(2) of the sum
                skip = self._plain(block.skip, 1.0 / SQRT2)
                self.blocks.append((conv1, conv2, skip))
            self.final = self._plain(encoder.final_conv, SQRT2)

    def _plain(self, layer: ConvLayer, factor: float) -> PlainConv:
        dtype = self.dtype
        blur, conv = layer.blur, layer.conv
        bias = _bias(layer.bias, factor, dtype)
        step = PlainConv(_conv_weight(conv, factor, dtype, self.keep), bias, padding=conv.padding, stride=conv.stride,
                         activate=layer.activation is not None)
        if blur is not None:
            k = conv.weight.shape[-1]
            step.prefilter = _blur_kernel(blur, conv.weight.shape[1], 1.0, dtype)
            step.prefilter_pad = blur.pad[0]
            if k == 1:  # only every other blurred pixel is used by the stride-2 1x1 conv
                step.prefilter_stride, step.stride = 2, 1
        return step

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        x = self.from_rgb(to_cl(images, self.dtype))
        for conv1, conv2, skip in self.blocks:
            x = conv2(conv1(x)).add_(skip(x))
        return self.final(x).float().contiguous()


def flops_decoder(decoder: Decoder) -> dict[str, float]:
    """Multiply-add FLOPs (2 per MAC) of one decode at batch 1, by part: resizer, modulation, synthesis."""
    config = decoder.config
    side = config.latent_spatial_size
    parts = {"resizer": 0.0, "modulation": 0.0, "synthesis": 0.0}
    res = side
    for layer in decoder.convs_latent:
        conv = layer.conv
        o, i, k, _ = conv.weight.shape
        parts["resizer"] += 2.0 * res * res * o * i * k * k  # a transposed conv's MACs counted at its input
        if conv.transpose:
            res *= 2
    for idx, layer in enumerate(decoder.styled_layers()):
        mod = layer.conv
        res = config.level_resolution(idx)
        o, i, k, _ = mod.gamma.weight.shape
        parts["modulation"] += 2 * 2.0 * res * res * o * i * k * k
        parts["synthesis"] += 2.0 * res * res * mod.out_channels * mod.in_channels * mod.kernel_size**2
    for b, block in enumerate(decoder.convs):
        res = side * 2**b
        o, i = block.skip.conv.weight.shape[:2]
        parts["synthesis"] += 2.0 * res * res * o * i
    return parts


def flops_encoder(encoder: Encoder, size: int) -> float:
    """Multiply-add FLOPs of one encode at batch 1 (convs only)."""
    total = 0.0
    res = size
    total += 2.0 * res * res * math.prod(encoder.from_rgb.conv.weight.shape)
    for block in encoder.convs:
        total += 2.0 * res * res * math.prod(block.conv1.conv.weight.shape)
        res //= 2
        total += 2.0 * res * res * math.prod(block.conv2.conv.weight.shape)
        total += 2.0 * res * res * math.prod(block.skip.conv.weight.shape)
    total += 2.0 * res * res * math.prod(encoder.final_conv.conv.weight.shape)
    return total
