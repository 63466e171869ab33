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
import platform
import time

import torch

VARIANTS = {
    "fp32": dict(),
    "channels_last": dict(channels_last=True),
    "bf16": dict(amp=True),
    "bf16+channels_last": dict(amp=True, channels_last=True),
    "compile": dict(compile=True),
    "compile+bf16": dict(compile=True, amp=True),
}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build_state(args: argparse.Namespace, variant: dict, device: torch.device):
    from smapgan.train.distributed import DistInfo
    from smapgan.train.loop import TrainState, make_optimizers
    from smapgan.train.options import TrainOptions
    from smapgan.train.trainer import load_initial_model, to_channels_last

    opts = TrainOptions(
        size=args.size,
        latent_spatial_size=args.latent_spatial_size,
        style_dim=args.style_dim,
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


def measure(args: argparse.Namespace, name: str, device: torch.device) -> tuple[float, float, int]:
    """img/s of the full recipe: timed plain iterations plus the lazy R1 step amortized over k."""
    from smapgan.train.loop import r1_step, train_iteration

    state, n_params = build_state(args, VARIANTS[name], device)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    x = x.to(device)
    if state.opts.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    for _ in range(args.warmup):  # step 0 runs R1 too, so its path is warm as well
        train_iteration(state, x)
    sync()
    warm_s = time.perf_counter() - t0
    state.step = 1  # timed iterations never hit the R1 step
    t0 = time.perf_counter()
    for _ in range(args.iters):
        train_iteration(state, x)
    sync()
    per_iter = (time.perf_counter() - t0) / args.iters
    t0 = time.perf_counter()
    r1_step(state, x)
    sync()
    per_iter += (time.perf_counter() - t0) / state.opts.d_reg_every
    return args.batch / per_iter, warm_s, n_params


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--latent-spatial-size", type=int, default=8)
    p.add_argument("--style-dim", type=int, default=32)
    p.add_argument("--channel-max", type=int, default=64)
    p.add_argument("--channel-base", type=int, default=16384)
    p.add_argument("--small-generator", action="store_true")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--iters", type=int, default=4, help="timed iterations per variant (R1 runs at step 0 of 16)")
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
    print(f"config: size {args.size}, stylemap {args.latent_spatial_size}x{args.latent_spatial_size}x{args.style_dim}, "
          f"channel_max {args.channel_max}, channel_base {args.channel_base}, small_generator {args.small_generator}, "
          f"batch {args.batch}, LPIPS off; {args.iters} timed iterations after {args.warmup} warm-up, "
          "R1 amortized over 16")
    results = []
    for name in names:
        try:
            ips, warm_s, n_params = measure(args, name, device)
            results.append((name, ips, warm_s, n_params, ""))
        except Exception as exc:  # e.g. compile without a C++ compiler: report, keep going
            results.append((name, float("nan"), float("nan"), 0, f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"))
        r = results[-1]
        print(f"  measured {r[0]}: {r[1]:.2f} img/s", flush=True)
    base = next((r[1] for r in results if r[0] == "fp32"), None)
    print()
    print(f"{'variant':<22}{'img/s':>9}{'vs fp32':>9}{'warm-up s':>11}  note")
    for name, ips, warm_s, n_params, note in results:
        rel = f"{ips / base:.2f}x" if base and ips == ips else "-"
        print(f"{name:<22}{ips:>9.2f}{rel:>9}{warm_s:>11.1f}  {note}")
    if results and results[0][3]:
        print(f"(G + E + D parameters: {results[0][3] / 1e6:.2f} M)")


if __name__ == "__main__":
    main()
