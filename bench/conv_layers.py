"""Each convolution of a decode and an encode, at the rate it reaches against this CPU's SGEMM.

The fast renderer's float32 decode and encode (``PreparedDecoder``/``PreparedEncoder``, the release
256/8x8 layout, random weights, batch 1) are run once under a ``TorchFunctionMode`` that records
every ``conv2d``/``conv_transpose2d`` call with its tensors; each recorded call is then replayed
alone, under each candidate of issue 28, as columns:

* ``CL 2t``: as the renderer runs it (channels-last activations and weights, oneDNN), 2 threads;
* ``NCHW 2t``: the same call on contiguous (NCHW) tensors: the memory format between layers;
* ``CL 1t``: one thread, against the 1-thread SGEMM (per-core efficiency; 2 threads on 2 cores
  should double it);
* ``im2col 2t``: oneDNN switched off for the call (``torch.backends.mkldnn.flags(enabled=False)``):
  ATen's im2col + SGEMM, the other algorithm PyTorch has for these convolutions.

Each cell is the call's GFLOP/s (FLOPs from ``FlopCounterMode``) over the SGEMM rate measured in
the same run at that thread count; depthwise blurs (upsampling, skip and downsampling filters) have
few FLOPs and are shown in milliseconds. Rows are grouped by what the layer is; the last lines
give each whole pass (recorded calls summed, and the pass itself timed) per column.

    python bench/conv_layers.py [--reps 5] [--part decode|encode|both]

Run it on the CPU you want figures for: the oneDNN kernels (AVX-512, AVX512-BF16, AMX) and cache
sizes differ between CPUs, and so do the winners.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from cpu_edit import build_model, cpu_flags
from first_edit import sgemm_gflops
from machine import cpu_name
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

CONVS = {F.conv2d: "conv", F.conv_transpose2d: "convT"}


@dataclass
class Call:
    part: str
    fn: Callable[..., torch.Tensor]
    args: tuple
    kwargs: dict
    flops: float = 0.0

    @property
    def x(self) -> torch.Tensor:
        return self.args[0]

    @property
    def w(self) -> torch.Tensor:
        return self.args[1]

    @property
    def depthwise(self) -> bool:
        return self.kwargs.get("groups", 1) > 1

    def label(self) -> str:
        n, c, h, w = self.x.shape
        kind = CONVS[self.fn]
        if self.depthwise:
            what = "skip up-blur (depthwise convT)" if kind == "convT" else "blur (depthwise)"
            return f"{what} {c}ch {h}x{w}"
        out = self.w.shape[1] if kind == "convT" else self.w.shape[0]
        k = self.w.shape[-1]
        stride = self.kwargs.get("stride", 1)
        extra = " stride 2" if stride == 2 else ""
        return f"{kind} {c}->{out} {k}x{k}{extra} at {h}x{w}"

    def variant(self, layout: str) -> tuple[tuple, dict]:
        if layout == "cl":
            return self.args, self.kwargs
        args = tuple(a.contiguous() if isinstance(a, torch.Tensor) and a.ndim == 4 else a for a in self.args)
        return args, self.kwargs


class Recorder(TorchFunctionMode):
    """Records every convolution call (inputs cloned) made inside it."""

    def __init__(self, part: str) -> None:
        super().__init__()
        self.part = part
        self.calls: list[Call] = []

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in CONVS:
            # clone() keeps each tensor's strides (its memory format)
            kept = tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)
            self.calls.append(Call(self.part, func, kept, dict(kwargs)))
        return func(*args, **kwargs)


def time_call(fn: Callable[[], Any], reps: int) -> float:
    fn()
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


COLUMNS = [("CL 2t", "cl", 2, True), ("NCHW 2t", "nchw", 2, True), ("CL 1t", "cl", 1, True),
           ("im2col 2t", "cl", 2, False)]


def main() -> int:
    from smapgan.fast.prepared import PreparedDecoder, PreparedEncoder

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--part", choices=("decode", "encode", "both"), default="both")
    args = parser.parse_args()
    load0 = os.getloadavg()[0]
    model = build_model()
    decoder = PreparedDecoder(model.generator.decoder, torch.float32)
    encoder = PreparedEncoder(model.encoder, torch.float32)
    size = model.config.size
    stylemap = torch.randn(1, model.config.latent_channel_size, 8, 8)
    image = torch.rand(1, 3, size, size) * 2 - 1
    passes = {"decode": lambda: decoder.decode(stylemap), "encode": lambda: encoder.encode(image)}
    parts = ["decode", "encode"] if args.part == "both" else [args.part]

    calls: list[Call] = []
    with torch.inference_mode():
        for part in parts:
            rec = Recorder(part)
            with rec:
                passes[part]()
            calls += rec.calls
        for call in calls:
            with FlopCounterMode(display=False) as counter:
                call.fn(*call.args, **call.kwargs)
            call.flops = float(counter.get_total_flops())

        sgemm = {}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            sgemm[threads] = sgemm_gflops(1.0)
        seconds: dict[tuple[int, str], float] = {}
        whole: dict[tuple[str, str], float] = {}
        for name, layout, threads, onednn in COLUMNS:  # column by column: one setting at a time
            torch.set_num_threads(threads)
            with torch.backends.mkldnn.flags(enabled=onednn):
                for i, call in enumerate(calls):
                    a, kw = call.variant(layout)
                    seconds[i, name] = time_call(lambda: call.fn(*a, **kw), args.reps)
                if layout == "cl":
                    for part in parts:
                        whole[part, name] = time_call(passes[part], max(3, args.reps // 2))
        torch.set_num_threads(2)

    print(f"machine: {cpu_name()} ({cpu_flags()}), {os.cpu_count()} CPUs; torch {torch.__version__}; "
          f"python {platform.python_version()}; load {load0:.2f} at start, {os.getloadavg()[0]:.2f} at end")
    print(f"release 256/8x8 layout, random weights, batch 1, float32; medians of {args.reps}; SGEMM "
          f"{sgemm[1]:.0f} GFLOP/s at 1 thread, {sgemm[2]:.0f} at 2 (this run)")
    print("cells: share of SGEMM at the column's threads (depthwise blurs: ms)\n")
    names = [c[0] for c in COLUMNS]
    for part in parts:
        print(f"### {part}\n")
        print(f"| layer | calls | GFLOP | {' | '.join(names)} |")
        print("|---|---|---|" + "---|" * len(names))
        groups: dict[str, list[int]] = {}
        for i, call in enumerate(calls):
            if call.part == part:
                groups.setdefault(call.label(), []).append(i)
        totals = {n: 0.0 for n in names}
        for label, idx in groups.items():
            flops = sum(calls[i].flops for i in idx)
            cells = []
            for name, _, threads, _ in COLUMNS:
                t = sum(seconds[i, name] for i in idx)
                totals[name] += t
                if calls[idx[0]].depthwise:
                    cells.append(f"{t * 1e3:.1f} ms")
                else:
                    cells.append(f"{flops / t / 1e9 / sgemm[threads]:.2f}")
            print(f"| {label} | {len(idx)} | {flops / 1e9:.2f} | {' | '.join(cells)} |")
        flops = sum(c.flops for c in calls if c.part == part)
        print(f"| **all convs, summed** | | {flops / 1e9:.1f} | "
              + " | ".join(f"{totals[n]:.2f} s ({flops / totals[n] / 1e9 / sgemm[t]:.2f})"
                           for n, _, t, _ in COLUMNS) + " |")
        print(f"| **the whole {part}, timed** | | | "
              + " | ".join(f"{whole[part, n]:.2f} s ({flops / whole[part, n] / 1e9 / sgemm[t]:.2f})"
                           if (part, n) in whole else "-" for n, _, t, _ in COLUMNS) + " |\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
