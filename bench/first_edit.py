"""The first result after an upload, and the next one: ours beside the straightforward path and the floor.

Release 256/8x8 config with random weights (every parameter perturbed), batch 1. Each round uses a
pair of images never seen before (new pixels: nothing cached), runs the op as the app does
(``local_transplant`` / ``lerp`` from the registry through an ``OpContext``), then moves the mask and
edits again ("next"). Beside it, in the same rounds, the straightforward path with the same weights:
``model.encode`` both images, ``model.expand`` both, blend, ``model.synthesize`` (for the next edit the
pyramids are given to it for free). The float32 floor is the FLOPs a first transplant cannot avoid
(two encodes, two resizers, one image's gamma/beta maps and its synthesis) at this machine's SGEMM
rate, measured in the same run. Medians of ``--rounds``; machine, threads and load printed.

    python bench/first_edit.py [--rounds 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Any, Callable

import torch
from cpu_edit import RELEASE, SIZE, build_model, cpu_flags, psnr, test_images
from machine import cpu_name


def sgemm_gflops(seconds: float = 1.5) -> float:
    """This machine's float32 matrix-multiply rate (GFLOP/s), at the threads set: the floor's yardstick."""
    n = 1536
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return best


def mask_at(y: int, x: int, side: int = 128) -> torch.Tensor:
    """A square of ``side`` px (25% of the image at 128) at (y, x)."""
    m = torch.zeros(1, 1, SIZE, SIZE)
    m[..., y:y + side, x:x + side] = 1
    return m


def main() -> int:
    from smapgan.latent import editing
    from smapgan.fast import FastRenderer
    from smapgan.fast.prepared import flops_decoder, flops_encoder
    from smapgan.ops import OpContext, discover

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = build_model()
    ops = discover(paths=[])
    transplant, lerp = ops["local_transplant"], ops["lerp"]
    renderer = FastRenderer(model)  # renders only what each call needs
    filled = FastRenderer(model, fill_when_idle=True)  # as in the app: idle time completes begun maps
    fl = flops_decoder(model.generator.decoder)
    enc = flops_encoder(model.encoder, SIZE)
    floor_flops = 2 * enc + 2 * fl["resizer"] + fl["modulation"] + fl["synthesis"]
    lerp_floor_flops = 2 * enc + fl["resizer"] + fl["modulation"] + fl["synthesis"]
    first_mask, next_mask = mask_at(64, 64), mask_at(96, 32)
    load0 = os.getloadavg()[0]
    gflops = sgemm_gflops()
    fast = renderer.with_mode("fast")
    precision = fast.precision  # measured here, outside the timings (the app measures it when it starts)
    filled.with_mode("fast").precision  # noqa: B018  (the same measurement, cached by shape)

    times: dict[str, list[float]] = {}
    checks: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        out = fn()
        times.setdefault(name, []).append(time.perf_counter() - t0)
        return out

    with torch.inference_mode():
        # warm-up (oneDNN primitives, first allocations) on a pair not used below
        warm = test_images(2, seed=99)
        for mode in ("exact", "fast"):
            ctx = OpContext(model, renderer.with_mode(mode))
            transplant.run(ctx, original=ctx.picture(warm[:1]), references=[ctx.picture(warm[1:], first_mask)],
                           space="w+", strength=1.0, pooling="max", frames=0)
        model.synthesize(model.expand(model.encode(warm[:1])))
        for r in range(args.rounds):
            for mode in ("exact", "fast"):
                x = test_images(2, seed=1000 + 10 * r + (mode == "fast"))  # a new pair: nothing cached
                ctx = OpContext(model, renderer.with_mode(mode))

                def edit(mask: torch.Tensor) -> torch.Tensor:
                    out = transplant.run(ctx, original=ctx.picture(x[:1]), references=[ctx.picture(x[1:], mask)],
                                         space="w+", strength=1.0, pooling="max", frames=0)
                    return out["image"]

                first = timed(f"first/{mode}", lambda: edit(first_mask))
                second = timed(f"next/{mode}", lambda: edit(next_mask))
                # the same in the app's renderer: a person looks at the first result before moving the mask
                x2 = test_images(2, seed=3000 + 10 * r + (mode == "fast"))
                fctx = OpContext(model, filled.with_mode(mode))
                filled.wait_idle()

                def fedit(mask: torch.Tensor) -> torch.Tensor:
                    return transplant.run(fctx, original=fctx.picture(x2[:1]), references=[fctx.picture(x2[1:], mask)],
                                          space="w+", strength=1.0, pooling="max", frames=0)["image"]

                timed(f"first-app/{mode}", lambda: fedit(first_mask))
                timed(f"idle/{mode}", filled.wait_idle)
                timed(f"next-app/{mode}", lambda: fedit(next_mask))
                # the straightforward path, same weights, same pixels
                def base_first() -> tuple[torch.Tensor, list, list]:
                    pa, pb = model.expand(model.encode(x[:1])), model.expand(model.encode(x[1:]))
                    return model.synthesize(editing.blend_pyramid(pa, pb, first_mask)), pa, pb

                want_first, pa, pb = timed(f"first/base-{mode}", base_first)
                want_next = timed(f"next/base-{mode}",
                                  lambda: model.synthesize(editing.blend_pyramid(pa, pb, next_mask)))
                if mode == "exact":
                    checks["first/exact err"] = max(checks.get("first/exact err", 0.0),
                                                    float((first - want_first).abs().max()))
                    checks["next/exact err"] = max(checks.get("next/exact err", 0.0),
                                                   float((second - want_next).abs().max()))
                else:
                    checks["first/fast psnr"] = min(checks.get("first/fast psnr", 99.0), psnr(first, want_first))
                    checks["next/fast psnr"] = min(checks.get("next/fast psnr", 99.0), psnr(second, want_next))
                # the first lerp frame of a new pair (the image at t = 0.5, before any frame of its path)
                y = test_images(2, seed=5000 + 10 * r + (mode == "fast"))
                lctx = OpContext(model, renderer.with_mode(mode))
                stream = getattr(lerp, "stream", None)
                kwargs = dict(first=lctx.picture(y[:1]), second=lctx.picture(y[1:]), frames=8, position=0.5)
                if stream is not None:
                    image = timed(f"lerp/{mode}", lambda: next(iter(stream(lctx, **kwargs)))["image"])
                else:  # ops that do not stream: the whole op
                    image = timed(f"lerp/{mode}", lambda: lerp.run(lctx, **kwargs)["image"])
                want = timed(f"lerp/base-{mode}", lambda: model.decode(
                    editing.lerp(model.encode(y[:1]), model.encode(y[1:]), 0.5)))
                key = "lerp/exact err" if mode == "exact" else "lerp/fast psnr"
                value = float((image - want).abs().max()) if mode == "exact" else psnr(image, want)
                checks[key] = max(checks.get(key, 0.0), value) if mode == "exact" else min(checks.get(key, 99.0), value)

    med = {k: statistics.median(v) for k, v in times.items()}
    floor = floor_flops / gflops / 1e9
    lerp_floor = lerp_floor_flops / gflops / 1e9
    print(f"machine: {cpu_name()} ({cpu_flags()}), {os.cpu_count()} CPUs; threads {args.threads}; torch "
          f"{torch.__version__}; python {platform.python_version()}; load average {load0:.2f} at start, "
          f"{os.getloadavg()[0]:.2f} at end")
    print(f"config {RELEASE}, random weights, batch 1; medians of {args.rounds} rounds, ours and the "
          f"straightforward path interleaved; SGEMM {gflops:.0f} GFLOP/s here")
    print(f"fast mode precision on this CPU: encoder {precision.encoder}, decoder {precision.decoder} "
          f"(measured bf16 speed-ups {dict(precision.speedups)}); resizer float32")
    print(f"float32 floor of a first transplant: {floor_flops / 1e9:.0f} GFLOP = {floor:.2f} s; "
          f"of a first lerp image: {lerp_floor_flops / 1e9:.0f} GFLOP = {lerp_floor:.2f} s\n")
    print("| measure | straightforward | ours | ours / straightforward | ours / float32 floor | check |")
    print("|---|---|---|---|---|---|")

    def row(label: str, ours: str, base: str, floor_s: float | None, check: str) -> None:
        o, b = med[ours], med[base]
        ratio = f"{o / floor_s:.2f}x" if floor_s else "-"
        print(f"| {label} | {b:.3f} s | {o:.3f} s | {o / b:.2f} | {ratio} | {check} |")

    row("first w+ transplant of a new pair (25% mask), exact", "first/exact", "first/base-exact", floor,
        f"max err {checks['first/exact err']:.1e}")
    row("same, fast", "first/fast", "first/base-fast", floor, f"PSNR {checks['first/fast psnr']:.1f} dB")
    row("first lerp image of a new pair (t = 0.5), exact", "lerp/exact", "lerp/base-exact", lerp_floor,
        f"max err {checks['lerp/exact err']:.1e}")
    row("same, fast", "lerp/fast", "lerp/base-fast", lerp_floor, f"PSNR {checks['lerp/fast psnr']:.1f} dB")
    synth_floor = (fl["synthesis"]) / gflops / 1e9
    row("next edit of the same pair (mask moved at once), exact", "next/exact", "next/base-exact", synth_floor,
        f"max err {checks['next/exact err']:.1e}")
    row("same, fast", "next/fast", "next/base-fast", synth_floor, f"PSNR {checks['next/fast psnr']:.1f} dB")
    row("app renderer: first transplant, exact", "first-app/exact", "first/base-exact", floor, "")
    row("app renderer: same, fast", "first-app/fast", "first/base-fast", floor, "")
    row("app renderer: next edit after the idle worker ran, exact", "next-app/exact", "next/base-exact",
        synth_floor, f"idle work {med['idle/exact']:.2f} s")
    row("app renderer: same, fast", "next-app/fast", "next/base-fast", synth_floor,
        f"idle work {med['idle/fast']:.2f} s")
    print(f"\n(next edit's floor: the synthesis alone, {fl['synthesis'] / 1e9:.0f} GFLOP = {synth_floor:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
