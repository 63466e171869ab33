"""Figures of per-image refinement (smapgan.latent.invert.refine), refined vs encoder only, side by side.

    python bench/refine.py --style 'DIR/*.png' --heldout 'DIR/*/*.png' [--model DIR] [--json out.json]

* speed: wall and process-CPU seconds of 100 steps of one image (2 and 1 threads),
  the fast differentiable decoder beside the model's modules; the CPU is shared, so
  the load average is printed with each figure (process-CPU time at 1 thread is the
  best guide to an idle machine);
* reconstruction PSNR of ``--style`` images (a style the model never saw) and of
  ``--heldout`` images (held-out emoji of the training styles), encoder vs refined;
* for each proximity weight of ``--proximity``: the PSNR gains, paper Table 4
  (w+ blend of fixed pairs of held-out images, same folder, under the four masks of
  ``smapgan.latent.metrics.local_editing_masks``: MSE_src on unmasked pixels vs the source,
  MSE_ref on masked pixels vs the reference) and the lerp midpoint (t = 0.5) of the
  same pairs scored by the model's discriminator (a realism proxy: higher is more
  realistic; FID_lerp needs far more images than a CPU bench can refine);
* ``--release``: the 256 px / 8x8 release configuration with random weights: seconds
  and FLOPs per refinement step;
* ``--paths``: refinement as a person meets it, in one run: ``smapgan edit reconstruct
  --refine-steps N`` (a subprocess; its time with N steps minus with 0, so that start-up,
  model load and decoding cancel), the app over HTTP (``python app.py``, ``/reconstruct``
  refined minus encoder only) and the same refinement in this process (``refine`` through
  the fast renderer's differentiable decoder, as ``OpContext`` runs it), each at 1 and 2
  threads, rounds alternating, beside the float32 floor: ``step_gflop`` (FlopCounterMode)
  x N at this machine's SGEMM rate measured in the same run. ``--paths-only`` skips the rest.

Every figure is measured on the model given (default: the bundled one); the lead
re-measures on a retrained model with the same command.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from smapgan import StyleMapGAN, StyleMapGANConfig  # noqa: E402
from smapgan.latent import editing
from smapgan.intake import images as imageio
from smapgan.defaults import default_model_path  # noqa: E402
from smapgan.fast import FastRenderer  # noqa: E402
from smapgan.latent.invert import DEFAULT_PROXIMITY, psnr, refine  # noqa: E402
from smapgan.latent.metrics import local_editing_figures, local_editing_masks  # noqa: E402


def load(files: list[str], size: int) -> torch.Tensor:
    return torch.cat([imageio.image_to_tensor(imageio.load_image(f, size)) for f in files])


def pairs_of(files: list[str], count: int, seed: int = 0) -> list[tuple[int, int]]:
    """Fixed (source, reference) index pairs of distinct images from the same folder (same emoji set)."""
    by_dir: dict[str, list[int]] = {}
    for i, f in enumerate(files):
        by_dir.setdefault(str(Path(f).parent), []).append(i)
    candidates = [(a, b) for group in by_dir.values() for a in group for b in group if a != b]
    candidates.sort()
    return random.Random(seed).sample(candidates, min(count, len(candidates)))


def load_avg() -> float:
    return os.getloadavg()[0]


def refine_batched(model: StyleMapGAN, x: torch.Tensor, batch: int, **kwargs: Any) -> torch.Tensor:
    return torch.cat([refine(model, x[i : i + batch], **kwargs) for i in range(0, len(x), batch)])


@torch.no_grad()
def decode(model: StyleMapGAN, s: torch.Tensor, batch: int = 16) -> torch.Tensor:
    return torch.cat([model.decode(s[i : i + batch]) for i in range(0, len(s), batch)])


def speed(model: StyleMapGAN, x: torch.Tensor, steps: int, threads: int, fast: bool) -> dict[str, float]:
    torch.set_num_threads(threads)
    decoder = FastRenderer(model).gradient_decoder() if fast else None
    refine(model, x, steps=2, decoder=decoder)  # warm up (allocator)
    wall, cpu = time.perf_counter(), time.process_time()
    refine(model, x, steps=steps, decoder=decoder)
    return {
        "threads": threads, "fast": fast, "steps": steps, "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu, "load": load_avg(),
    }


def step_flops(model: StyleMapGAN) -> float:
    """FLOPs of one refinement step in w (decoder forward + backward to the stylemap), batch 1."""
    from torch.utils.flop_counter import FlopCounterMode

    c, side, size = model.config.latent_channel_size, model.config.latent_spatial_size, model.config.size
    s = torch.zeros(1, c, side, side, requires_grad=True)
    params = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        with FlopCounterMode(display=False) as counter:
            y = model.decode(s)
            (y - torch.zeros(1, 3, size, size)).pow(2).mean().backward()
    finally:
        for p, flag in zip(model.parameters(), params):
            p.requires_grad_(flag)
    return float(counter.get_total_flops())


def lerp_realism(model: StyleMapGAN, s: torch.Tensor, pairs: list[tuple[int, int]]) -> float | None:
    """Mean discriminator logit of the lerp midpoints of ``pairs`` (None without a discriminator)."""
    if model.discriminator is None:
        return None
    a = s[[i for i, _ in pairs]]
    b = s[[j for _, j in pairs]]
    with torch.no_grad():
        mid = decode(model, editing.lerp(a, b, 0.5)).clamp(-1, 1)
        return float(model.discriminator(mid).mean())


def table4(model: StyleMapGAN, x: torch.Tensor, s: torch.Tensor | None, pairs: list[tuple[int, int]]) -> dict[str, float]:
    src, ref = [i for i, _ in pairs], [j for _, j in pairs]
    masks = list(local_editing_masks(model.config.size).values())
    codes = None if s is None else (s[src], s[ref])
    fig = local_editing_figures(model, x[src], x[ref], masks, "w+", stylemaps=codes)
    return {"mse_src": fig.mse_src, "mse_ref": fig.mse_ref}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    parser.add_argument("--style", help="glob of images in a style the model never saw")
    parser.add_argument("--heldout", help="glob of held-out images of the training styles (one folder per set)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument(
        "--proximity", default=f"{DEFAULT_PROXIMITY:g}",
        help="comma-separated weights to compare (default: the library's default; the README used 0,0.01,0.1,1)",
    )
    parser.add_argument("--pairs", type=int, default=12, help="Table 4 / lerp pairs of held-out images")
    parser.add_argument("--max-images", type=int, default=30, help="per glob")
    parser.add_argument("--batch", type=int, default=8, help="images refined together")
    parser.add_argument("--threads", type=int, default=2, help="for the speed rows (2: the target's machine)")
    parser.add_argument(
        "--quality-threads", type=int, default=1,
        help="for the quality figures (results do not depend on it; 1 wastes least on a shared CPU)",
    )
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--release", action="store_true", help="also time a step of the 256 px / 8x8 release config")
    parser.add_argument("--paths", action="store_true", help="CLI vs app vs in-process vs floor (see above)")
    parser.add_argument("--paths-only", action="store_true", help="only the --paths table")
    parser.add_argument("--rounds", type=int, default=3, help="--paths rounds (medians)")
    parser.add_argument("--json", help="write every figure here")
    args = parser.parse_args(argv)
    torch.set_flush_denormal(True)
    torch.set_num_threads(args.threads)
    model = StyleMapGAN.from_pretrained(args.model or default_model_path())
    size = model.config.size
    out: dict[str, Any] = {"model": str(args.model or "bundled"), "config": model.config.to_dict(), "steps": args.steps}
    print(f"model {out['model']}: {size} px, stylemap {model.config.latent_spatial_size}x"
          f"{model.config.latent_spatial_size}x{model.config.latent_channel_size}; {args.steps} steps")

    sets: dict[str, list[str]] = {}
    for name, pattern in (("style", args.style), ("heldout", args.heldout)):
        if pattern:
            found = sorted(glob.glob(pattern))
            stride = max(1, -(-len(found) // args.max_images))  # evenly spaced: every set of the glob is seen
            sets[name] = found[::stride][: args.max_images]
            if not sets[name]:
                parser.error(f"--{name} {pattern!r} matches no file")
    images = {name: load(files, size) for name, files in sets.items()}

    if args.paths or args.paths_only:
        out["paths"] = paths(args, model)
        if args.paths_only:
            if args.json:
                Path(args.json).write_text(json.dumps(out, indent=2))
            return 0

    if not args.no_speed:
        x = images["style"][:1] if "style" in images else load([str(ROOT / "smapgan/assets/examples/neutral_face.png")], size)
        rows = [speed(model, x, args.steps, t, f) for t in sorted({args.threads, 1}, reverse=True) for f in (True, False)]
        out["speed"] = rows
        print(f"\n{args.steps} refinement steps of one image (flops/step {step_flops(model) / 1e9:.2f} G):")
        print("| threads | decoder | wall s | process CPU s | load avg |\n|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['threads']} | {'fast (folded)' if r['fast'] else 'model modules'} | {r['wall_s']:.2f} | "
                  f"{r['cpu_s']:.2f} | {r['load']:.1f} |")
        out["flops_per_step"] = step_flops(model)

    torch.set_num_threads(args.quality_threads)
    with torch.no_grad():
        encoded = {name: torch.cat([model.encode(x[i : i + 16]) for i in range(0, len(x), 16)]) for name, x in images.items()}
    pairs = pairs_of(sets["heldout"], args.pairs) if "heldout" in sets else []
    base: dict[str, Any] = {}
    for name, x in images.items():
        base[f"psnr_{name}"] = float(psnr(decode(model, encoded[name]), x).mean())
    if pairs:
        base.update(table4(model, images["heldout"], None, pairs))
        base["lerp_d"] = lerp_realism(model, encoded["heldout"], pairs)
    out["encoder"] = base
    results = []
    for weight in [float(w) for w in args.proximity.split(",")] if images else []:
        row: dict[str, Any] = {"proximity": weight}
        start = time.perf_counter()
        refined = {
            name: refine_batched(model, x, args.batch, steps=args.steps, proximity=weight, init=None)
            for name, x in images.items()
        }
        row["seconds"] = time.perf_counter() - start
        for name, x in images.items():
            row[f"psnr_{name}"] = float(psnr(decode(model, refined[name]), x).mean())
            row[f"gain_{name}"] = row[f"psnr_{name}"] - base[f"psnr_{name}"]
            row[f"drift_{name}"] = float((refined[name] - encoded[name]).pow(2).mean() / encoded[name].pow(2).mean())
        if pairs:
            row.update(table4(model, images["heldout"], refined["heldout"], pairs))
            row["lerp_d"] = lerp_realism(model, refined["heldout"], pairs)
        results.append(row)
        print(f"  proximity {weight:g}: done in {row['seconds']:.0f} s", flush=True)
    out["refined"] = results

    if results:
        print_table(base, results, sets, pairs, args.steps)
    if args.release:
        release(args, out)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


def fmt(v: Any, spec: str = ".4f") -> str:
    return "-" if v is None else format(v, spec)


def print_table(base: dict[str, Any], results: list[dict[str, Any]], sets: dict[str, list[str]],
                pairs: list[tuple[int, int]], steps: int) -> None:
    print(f"\nRefined ({steps} steps, w space) vs encoder only; Table 4 on {len(pairs)} held-out pairs x 4 masks (w+):")
    print("| codes | PSNR style (n=%d) | PSNR held-out (n=%d) | MSE_src | MSE_ref | lerp D(mid) | code drift |"
          % (len(sets.get("style", [])), len(sets.get("heldout", []))))
    print("|---|---|---|---|---|---|---|")
    print(f"| encoder only | {fmt(base.get('psnr_style'), '.2f')} | {fmt(base.get('psnr_heldout'), '.2f')} | "
          f"{fmt(base.get('mse_src'))} | {fmt(base.get('mse_ref'))} | {fmt(base.get('lerp_d'), '.3f')} | 0 |")
    for r in results:
        gains = " ".join(f"({r[k]:+.2f} dB)" for k in ("gain_style",) if k in r)
        gains_h = " ".join(f"({r[k]:+.2f} dB)" for k in ("gain_heldout",) if k in r)
        drift = r.get("drift_heldout", r.get("drift_style"))
        print(f"| refined, proximity {r['proximity']:g} | {fmt(r.get('psnr_style'), '.2f')} {gains} | "
              f"{fmt(r.get('psnr_heldout'), '.2f')} {gains_h} | {fmt(r.get('mse_src'))} | {fmt(r.get('mse_ref'))} | "
              f"{fmt(r.get('lerp_d'), '.3f')} | {fmt(drift, '.3f')} |")


def release(args: argparse.Namespace, out: dict[str, Any]) -> None:
    """Seconds and FLOPs per refinement step of the 256 px / 8x8 release configuration (random weights)."""
    config = StyleMapGANConfig()  # 256 px, 8x8x64, the release's widths
    with torch.random.fork_rng():
        torch.manual_seed(0)
        big = StyleMapGAN(config, with_discriminator=False).eval()
    x = torch.rand(1, 3, config.size, config.size) * 2 - 1
    flops = step_flops(big)
    decoder = FastRenderer(big).gradient_decoder()
    refine(big, x, steps=1, decoder=decoder)
    rows = []
    for threads in sorted({args.threads, 1}, reverse=True):
        torch.set_num_threads(threads)
        timing = {}
        for steps in (1, 3):  # the difference cancels the encoder pass and the final evaluation
            wall, cpu = time.perf_counter(), time.process_time()
            refine(big, x, steps=steps, decoder=decoder)
            timing[steps] = (time.perf_counter() - wall, time.process_time() - cpu)
        rows.append({"threads": threads, "seconds_per_step": (timing[3][0] - timing[1][0]) / 2,
                     "cpu_s_per_step": (timing[3][1] - timing[1][1]) / 2, "load": load_avg()})
    out["release"] = {"flops_per_step": flops, "rows": rows}
    print(f"\nRelease 256 px / 8x8 (random weights): {flops / 1e9:.0f} GFLOP per step (decoder forward + "
          "backward to the stylemap)")
    for r in rows:
        print(f"  {r['threads']} threads: {r['seconds_per_step']:.2f} s/step wall, {r['cpu_s_per_step']:.2f} s "
              f"CPU (load {r['load']:.1f})")


def paths(args: argparse.Namespace, model: StyleMapGAN) -> dict[str, Any]:
    """Seconds of ``args.steps`` refinement steps of one new image: CLI, app and in-process, 1 and 2 threads."""
    import statistics
    import subprocess
    import tempfile

    sys.path.insert(0, str(ROOT / "bench"))
    from app_latency import client_tls, free_port, wait_for
    from first_edit import sgemm_gflops
    from machine import cpu_name

    from smapgan.latent.invert import step_gflop

    size = model.config.size
    source = args.model or default_model_path()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
    seeds = iter(range(10_000, 20_000))

    def new_image(folder: Path) -> Path:
        """An image never seen before (no refined code cached anywhere)."""
        g = torch.Generator().manual_seed(next(seeds))
        low = torch.rand(1, 3, 8, 8, generator=g) * 2 - 1
        x = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic").clamp(-1, 1)
        path = folder / f"image-{next(seeds)}.png"
        imageio.tensor_to_image(x).save(path)
        return path

    def cli(folder: Path, threads: int, steps: int) -> float:
        cmd = [sys.executable, "-m", "smapgan.cli", "edit", "reconstruct", "--model", str(source), "--original",
               str(new_image(folder)), "--out", str(folder / "out.png"), "--refine-steps", str(steps)]
        t0 = time.perf_counter()
        subprocess.run(cmd, env=dict(env, OMP_NUM_THREADS=str(threads)), check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t0

    def in_process(folder: Path, threads: int, steps: int) -> float:
        from smapgan.ops import OpContext, PictureSource, discover
        from smapgan.ops.inversion import Inversion

        torch.set_num_threads(threads)
        ctx = OpContext(model, renderer, inversion=Inversion(steps=steps))
        t0 = time.perf_counter()
        discover(paths=[])["reconstruct"].run(ctx, original=PictureSource(str(new_image(folder))))
        return time.perf_counter() - t0

    renderer = FastRenderer(model)
    gflop = step_gflop(model) * args.steps
    times: dict[str, list[float]] = {}
    servers = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        from gradio_client import Client, handle_file

        try:
            for threads in (1, 2):
                port = free_port()
                cmd = [sys.executable, str(ROOT / "app.py"), "--model", str(source), "--port", str(port)]
                proc = subprocess.Popen(cmd, env=dict(env, OMP_NUM_THREADS=str(threads)),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                servers[threads] = proc
                wait_for(f"http://127.0.0.1:{port}", proc, timeout=300)
                servers[threads] = (proc, Client(f"http://127.0.0.1:{port}", verbose=False,
                                                 ssl_verify=client_tls("shared-tls")))

            def app(folder: Path, threads: int, steps: int) -> float:
                client = servers[threads][1]
                choice = "refined" if steps else "encoder only"
                t0 = time.perf_counter()
                client.predict(original=handle_file(str(new_image(folder))), inversion=choice, refine_steps=steps,
                               api_name="/reconstruct")
                return time.perf_counter() - t0

            for fn in (cli, in_process, app):  # warm-up: oneDNN primitives, first allocations
                for threads in (1, 2):
                    fn(folder, threads, 2)
            gflops = {t: 0.0 for t in (1, 2)}
            for r in range(args.rounds):
                for threads in (1, 2):
                    torch.set_num_threads(threads)
                    gflops[threads] = max(gflops[threads], sgemm_gflops(0.7))
                    for name, fn in (("cli", cli), ("in-process", in_process), ("app", app)):
                        full, none = fn(folder, threads, args.steps), fn(folder, threads, 0)
                        times.setdefault(f"{name}/{threads}", []).append(full - none)
        finally:
            for proc, *_ in (v if isinstance(v, tuple) else (v,) for v in servers.values()):
                proc.terminate()
                proc.wait(timeout=60)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nRefinement as a person meets it: {args.steps} steps of one new {size} px image, seconds with N steps "
          f"minus with 0 (medians of {args.rounds} alternating rounds); {cpu_name()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, load {load_avg():.2f}")
    print(f"float32 floor: {gflop / args.steps:.1f} GFLOP/step (FlopCounterMode) x {args.steps} at the SGEMM rate "
          f"measured in this run ({gflops[1]:.0f} GFLOP/s at 1 thread, {gflops[2]:.0f} at 2)")
    print("| threads | CLI | app | in-process | CLI / in-process | app / in-process | in-process / floor | floor |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for threads in (1, 2):
        c, a, i = (med[f"{n}/{threads}"] for n in ("cli", "app", "in-process"))
        floor = gflop / gflops[threads]
        rows.append({"threads": threads, "cli_s": c, "app_s": a, "in_process_s": i, "floor_s": floor})
        print(f"| {threads} | {c:.2f} s | {a:.2f} s | {i:.2f} s | {c / i:.2f} | {a / i:.2f} | {i / floor:.2f}x | "
              f"{floor:.2f} s |")
    return {"rows": rows, "gflop": gflop, "sgemm": gflops, "load": load_avg()}


if __name__ == "__main__":
    sys.exit(main())
