"""Training throughput (img/s) of one iteration of the recipe, with and without each speed option.

Runs every variant in one process on the same config and prints them side by side with the
machine, thread count and torch version. Random images stand in for data (loading is not
measured); LPIPS is off (its VGG weights are not needed).

    python bench/train_speed.py                      # 64 px, L 8, C 32, channel_max 64, batch 16
    python bench/train_speed.py --channel-max 128 --iters 3
    python bench/train_speed.py --variants fp32,bf16 --threads 2
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

import torch
from machine import cpu_name

VARIANTS = {
    "fp32": dict(),
    "channels_last": dict(channels_last=True),
    "bf16": dict(amp=True),
    "bf16+channels_last": dict(amp=True, channels_last=True),
    "compile": dict(compile=True),
    "compile+bf16": dict(compile=True, amp=True),
    "compile+bf16+channels_last": dict(compile=True, amp=True, channels_last=True),
}


def build_state(args: argparse.Namespace, variant: dict, device: torch.device):
    from smapgan.train.distributed import DistInfo
    from smapgan.train.loop import TrainState, make_optimizers
    from smapgan.train.options import TrainOptions
    from smapgan.train.trainer import load_initial_model, to_channels_last

    opts = TrainOptions(
        size=args.size,
        latent_spatial_size=args.latent_spatial_size,
        latent_channel_size=args.latent_channel_size,
        channel_max=args.channel_max,
        channel_base=args.channel_base,
        small_generator=args.small_generator,
        batch=args.batch,
        lambda_perceptual=0.0,
        seed=0,
        **variant,
    )
    model, opts = load_initial_model(opts)
    model = model.to(device)
    g, e, d = copy.deepcopy(model.generator), copy.deepcopy(model.encoder), model.discriminator
    if opts.channels_last:
        for m in (g, e, d, model.generator, model.encoder):
            to_channels_last(m)
    go, eo, do = make_optimizers(g, e, d, opts)
    state = TrainState(opts, g, e, d, model.generator, model.encoder, go, eo, do,
                       torch.Generator().manual_seed(0), DistInfo(device=device), args.batch)
    if opts.compile:
        state.g_fwd, state.e_fwd, state.d_fwd = torch.compile(g), torch.compile(e), torch.compile(d)
    n_params = sum(p.numel() for m in (g, e, d) for p in m.parameters())
    return state, n_params


def measure_all(args: argparse.Namespace, names: list[str], device: torch.device) -> dict[str, dict]:
    """img/s of the full recipe per variant: median of interleaved single iterations + amortized R1.

    Variants are timed round-robin (one iteration each per round) so that load from other
    processes on a shared machine spreads evenly over them instead of favouring one.
    """
    from smapgan.train.loop import r1_step, train_iteration

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    x = x.to(device)
    runs: dict[str, dict] = {}
    for name in names:
        try:
            state, n_params = build_state(args, VARIANTS[name], device)
            xv = x.contiguous(memory_format=torch.channels_last) if state.opts.channels_last else x
            t0 = time.perf_counter()
            for _ in range(args.warmup):  # step 0 runs R1 too, so its path is warm as well
                train_iteration(state, xv)
            sync()
            runs[name] = dict(state=state, x=xv, warm_s=time.perf_counter() - t0, n_params=n_params, times=[], note="")
        except Exception as exc:  # e.g. compile without a C++ compiler: report, keep going
            runs[name] = dict(note=f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}", times=[])
        print(f"  ready: {name} ({runs[name].get('warm_s', float('nan')):.1f} s warm-up) {runs[name]['note']}", flush=True)
    live = [n for n in names if "state" in runs[n]]
    for _ in range(args.iters):
        for name in live:
            run = runs[name]
            run["state"].step = 1  # plain iterations; R1 is timed apart below
            t0 = time.perf_counter()
            train_iteration(run["state"], run["x"])
            sync()
            run["times"].append(time.perf_counter() - t0)
    for name in live:
        run = runs[name]
        t0 = time.perf_counter()
        r1_step(run["state"], run["x"])
        sync()
        r1 = time.perf_counter() - t0
        per_iter = statistics.median(run["times"]) + r1 / run["state"].opts.d_reg_every
        run["img_s"] = args.batch / per_iter
        run["spread"] = (args.batch / max(run["times"]), args.batch / min(run["times"]))
    return runs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--latent-spatial-size", type=int, default=8)
    p.add_argument("--latent-channel-size", "--style-dim", type=int, default=32, help="stylemap channels C (--style-dim: old name)")
    p.add_argument("--channel-max", type=int, default=64)
    p.add_argument("--channel-base", type=int, default=16384)
    p.add_argument("--small-generator", action="store_true")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--iters", type=int, default=5, help="timed rounds (one iteration of each variant per round)")
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations (compile happens here)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ", ".join(VARIANTS))
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    for name in names:
        if name not in VARIANTS:
            p.error(f"unknown variant {name!r}")

    print(f"machine: {cpu_name()} ({os.cpu_count()} cpus), device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"config: size {args.size}, stylemap {args.latent_spatial_size}x{args.latent_spatial_size}x{args.latent_channel_size}, "
          f"channel_max {args.channel_max}, channel_base {args.channel_base}, small_generator {args.small_generator}, "
          f"batch {args.batch}, LPIPS off; {args.iters} interleaved rounds after {args.warmup} warm-up")
    runs = measure_all(args, names, device)
    base = runs.get("fp32", {}).get("img_s")
    print()
    print(f"{'variant':<28}{'img/s':>8}{'vs fp32':>9}{'range w/o R1':>16}{'warm-up s':>11}  note")
    for name in names:
        run = runs[name]
        if "img_s" not in run:
            print(f"{name:<28}{'-':>8}{'-':>9}{'-':>16}{'-':>11}  {run['note']}")
            continue
        rel = f"{run['img_s'] / base:.2f}x" if base else "-"
        lo, hi = run["spread"]
        print(f"{name:<28}{run['img_s']:>8.2f}{rel:>9}{f'{lo:.2f}-{hi:.2f}':>16}{run['warm_s']:>11.1f}  {run['note']}")
    n_params = next((r["n_params"] for r in runs.values() if r.get("n_params")), 0)
    print(f"(G + E + D parameters: {n_params / 1e6:.2f} M; img/s = batch / (median iteration + R1 step / 16))")


if __name__ == "__main__":
    main()
