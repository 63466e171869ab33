"""Which parts of the fast mode run in bfloat16 on this CPU: measured, not assumed.

bfloat16 halves the memory traffic and, where the CPU has native bf16 dot
products (AVX512-BF16, AMX), doubles oneDNN's convolution throughput; where it
has not, oneDNN emulates them and bf16 is *slower* than float32 (seen on an
Intel Xeon without AVX512-BF16: encode+maps 2.81 s vs 2.08 s). So the fast mode
asks the CPU: without native bf16 every part stays float32 (the mode then
equals exact, and the app hides its toggle); with it, each part's largest
convolution is timed in both dtypes on the shapes the model runs, and the part
takes bf16 only where it is clearly faster.

Parts: the encoder, and the decoder's gamma/beta maps plus synthesis (one dtype:
the fused LayerNorm takes the maps as they are). The stylemap resizer always
runs in float32: in bf16 its rounding compounds over its layers (37 dB against
exact on the release layout with random weights, under the fast mode's 40 dB
bound), where the encoder in bf16 keeps 42 dB and the decoder 44 dB.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..model import StyleMapGAN

# A part takes bf16 when its convolution runs at least this much faster (noise and the casts between
# parts eat smaller gains).
MIN_SPEEDUP = 1.2
# Timed convolutions are cropped to this side, so that measuring costs milliseconds, not a decode.
MEASURE_SIDE = 32


@dataclass(frozen=True)
class Precision:
    """The dtype of each part of a render; ``speedups``: what was measured (part -> bf16 speed-up)."""

    encoder: torch.dtype = torch.float32
    decoder: torch.dtype = torch.float32
    speedups: tuple[tuple[str, float], ...] = ()

    @property
    def code_tag(self) -> str:
        """Suffix of the keys of codes this precision encodes ("" for float32: the exact codes)."""
        return "" if self.encoder == torch.float32 else "|bf16-encoder"

    @property
    def is_exact(self) -> bool:
        return self.encoder == torch.float32 and self.decoder == torch.float32


EXACT = Precision()


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``; empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_native_bf16() -> bool:
    """Does this CPU compute bfloat16 dot products natively (x86 AVX512-BF16 or AMX-BF16)?"""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def _conv_weights(module: torch.nn.Module) -> list[torch.Tensor]:
    """The (out, in, k, k) weights of ``module``'s convolutions, widest and narrowest (the shapes to time)."""
    weights = []
    for name, p in module.named_parameters():
        if name.endswith("weight") and p.ndim in (4, 5):  # a styled conv keeps (1, out, in, k, k)
            w = p.detach()[0] if p.ndim == 5 else p.detach()
            if w.shape[-1] > 1:
                weights.append(w)
    if not weights:
        raise ValueError("no convolution to measure")
    weights.sort(key=lambda w: w.shape[0] * w.shape[1])
    return [weights[0], weights[-1]] if len(weights) > 1 else weights


def _time(fn: Callable[[], torch.Tensor], repeats: int = 3) -> float:
    fn()  # oneDNN builds its primitive on the first call
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@functools.lru_cache(maxsize=64)  # a cache (per process, by shape): the CPU does not change under us
def bf16_speedup(out_c: int, in_c: int, k: int, side: int = MEASURE_SIDE) -> float:
    """float32 time / bfloat16 time of a channels-last convolution of this shape."""
    timings = {}
    with torch.inference_mode():
        for dtype in (torch.float32, torch.bfloat16):
            g = torch.Generator().manual_seed(0)
            x = torch.randn(1, in_c, side, side, generator=g).to(dtype).contiguous(memory_format=torch.channels_last)
            w = torch.randn(out_c, in_c, k, k, generator=g).to(dtype).contiguous(memory_format=torch.channels_last)
            timings[dtype] = _time(lambda x=x, w=w: F.conv2d(x, w, padding=k // 2))
    return timings[torch.float32] / max(timings[torch.bfloat16], 1e-9)


def choose_fast(model: StyleMapGAN, native_bf16: bool | None = None) -> Precision:
    """The fast mode's precision for ``model`` on this CPU (see the module's docstring)."""
    if native_bf16 is None:
        native_bf16 = cpu_has_native_bf16()
    if not native_bf16 or model.device.type != "cpu":
        return EXACT
    parts = {"decoder": model.generator.decoder}
    if model.encoder is not None:
        parts["encoder"] = model.encoder
    speedups = {}
    for name, module in parts.items():  # the geometric mean over its widest and narrowest convolution
        ratios = [bf16_speedup(w.shape[0], w.shape[1], w.shape[-1]) for w in _conv_weights(module)]
        speedups[name] = round(float(torch.tensor(ratios).log().mean().exp()), 2)
    pick = {name: torch.bfloat16 if s >= MIN_SPEEDUP else torch.float32 for name, s in speedups.items()}
    return Precision(pick.get("encoder", torch.float32), pick["decoder"], tuple(sorted(speedups.items())))
