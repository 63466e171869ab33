"""CPU editing speed: smapgan's fast paths beside a naive baseline, at the release 256/8x8 config.

Builds ``StyleMapGANConfig(size=256, latent_spatial_size=8, latent_channel_size=64)`` with random
weights (every parameter perturbed), batch 1, and prints in one run, for each task of issue 5,
our figure beside the baseline's, the FLOPs executed and the GFLOP/s achieved, with the machine,
thread count, torch version and load average (the machine may be shared: every timed task of
ours and of the baseline is measured in interleaved rounds in one process and the median is
reported). The baseline is the straightforward path with the same weights: ``model.encode``,
``model.decode``, and ``model.synthesize`` of the edited pyramid (the pyramids of an
already-encoded pair given to it for free).

Animation and app-memory figures run in fresh subprocesses so that their peak RSS is their own.

    python bench/cpu_edit.py                 # everything (several minutes)
    python bench/cpu_edit.py --rounds 5 --skip-baseline-animation --app-edits 100
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

import torch
from machine import cpu_name

RELEASE = dict(size=256, latent_spatial_size=8, latent_channel_size=64)
SIZE = 256


# --------------------------------------------------------------------------- helpers


def cpu_flags() -> str:
    """The flags that decide the fast paths (smapgan.fast.precision reads them the same way)."""
    from smapgan.fast.precision import cpu_flags as flags

    found = flags()
    return ", ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in found) or "?"


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB."""
    cur = peak = 0.0
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    cur = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) / 1024
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return cur, peak


def build_model(seed: int = 0, config: dict[str, Any] | None = None):
    """``config``'s layout (default: the release's 256/8x8) with random weights, every parameter perturbed
    (biases and gains matter)."""
    from smapgan import StyleMapGAN, StyleMapGANConfig

    torch.manual_seed(seed)
    model = StyleMapGAN(StyleMapGANConfig(**(config or RELEASE)), with_discriminator=False).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return model


def test_images(n: int, seed: int = 0) -> torch.Tensor:
    """Smooth random images in [-1, 1] (low-frequency noise upsampled), a stand-in for photos."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 16, 16, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(low, size=(SIZE, SIZE), mode="bicubic", align_corners=False).clamp(-1, 1)


def square_mask(fraction: float) -> torch.Tensor:
    """A centered square covering ``fraction`` of the image, aligned to the 32-px stylemap cells."""
    side = int(round((fraction ** 0.5) * SIZE / 32)) * 32
    m = torch.zeros(1, 1, SIZE, SIZE)
    y0 = (SIZE - side) // 2 // 32 * 32
    m[..., y0:y0 + side, y0:y0 + side] = 1
    return m


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * float(torch.log10(torch.tensor(4.0 / mse)))


# --------------------------------------------------------------------------- timing part


def part_timing(args: argparse.Namespace) -> dict[str, Any]:
    from smapgan.latent import editing
    from smapgan.fast import FastRenderer
    from smapgan.fast.prepared import flops_decoder, flops_encoder
    from smapgan.render import Encoded

    model = build_model()
    x = test_images(2)
    mask = square_mask(0.25)
    small = square_mask(0.0625)
    fl = flops_decoder(model.generator.decoder)
    dec_flops = sum(fl.values())
    enc_flops = flops_encoder(model.encoder, SIZE)
    # Room for both images' maps in both modes, so that the "reference maps cached" rows can exist
    # (the default budget, 768 MB, holds two images' float32 maps, or bfloat16 ones, not both).
    renderer = FastRenderer(model, max_cache_bytes=1600 << 20)
    fast = renderer.with_mode("fast")

    with torch.no_grad():
        sa, sb = model.encode(x[:1]), model.encode(x[1:])
        ref_pa, ref_pb = model.expand(sa), model.expand(sb)
        # Our side of "an already-encoded pair" (the same stylemaps as the baseline's, as handles):
        # both pyramids cached, the original displayed.
        ha, hb = Encoded("a", sa), Encoded("b", sb)
        pa, pb = renderer.pyramid(ha), renderer.pyramid(hb)
        renderer.render(ha)
        fast.render(ha)
        exact_edit = model.synthesize(editing.blend_pyramid(ref_pa, ref_pb, mask))
        offset = (48, -64)
        exact_unaligned = model.synthesize(editing.transplant_pyramid(ref_pa, ref_pb, mask, offset, SIZE))
        s_w = editing.blend_stylemap(sa, sb, mask)
        exact_w = model.decode(s_w)

    def forget_reference_maps() -> None:
        entry = renderer.cache.get(hb.key)
        if entry is not None:
            entry.modulations.clear()
            entry.images.clear()

    def warm_reference() -> None:
        renderer.render(hb)
        fast.render(hb)

    def flops_of(fn: Callable[[], Any]) -> tuple[Any, float]:
        before = renderer.stats["modulation_flops"]
        out = fn()
        return out, renderer.stats["modulation_flops"] - before + fl["synthesis"]

    def forget_images() -> None:
        """Forget the cached codes and images, keeping the prepared networks (``clear_cache`` drops those too)."""
        renderer.codes.stylemaps.clear()
        renderer.cache.clear()

    tasks: dict[str, dict[str, Any]] = {}

    def task(name: str, fn: Callable[[], Any], setup: Callable[[], Any] | None = None,
             flops: float | None = None, check: Callable[[Any], dict] | None = None, dynamic: bool = False) -> None:
        tasks[name] = dict(fn=fn, setup=setup, flops=flops, check=check, dynamic=dynamic, times=[], result=None)

    task("encode/base", lambda: model.encode(x[:1]), flops=enc_flops)
    # (The renderer keeps each key's stylemap: clear it first, outside the timing, to time the encoder.)
    task("encode/ours", lambda: renderer.encode(x[:1]), setup=forget_images, flops=enc_flops,
         check=lambda y: {"max_err": float((y.stylemap - sa).abs().max())})
    task("encode+expand/base", lambda: model.expand(model.encode(x[1:])), flops=enc_flops + fl["resizer"])
    # An encoded image's gamma/beta maps are made with its pyramid (a per-image cache; float32 in exact
    # mode when they fit the budget, bfloat16 in fast mode).
    task("encode+expand/exact", lambda: renderer.pyramid(renderer.encode(x[1:])), setup=forget_images,
         flops=enc_flops + fl["resizer"] + fl["modulation"])
    task("encode+expand/fast", lambda: fast.pyramid(fast.encode(x[1:])), setup=forget_images,
         flops=enc_flops + fl["resizer"] + fl["modulation"])
    task("decode/base", lambda: model.decode(sb), flops=dec_flops)
    # A full decode of a stylemap not seen before: clear the cache first (outside the timing).
    task("decode/ours", lambda: renderer.decode(sb), setup=forget_images, flops=dec_flops,
         check=lambda y: {"max_err": float((y - model.decode(sb)).abs().max())})

    def restore_pair() -> None:
        renderer.pyramid(ha), renderer.pyramid(hb)
        for r in (renderer, fast):
            r.render(ha)

    base_edit_flops = fl["synthesis"] + fl["modulation"]
    task("edit25/base", lambda: model.synthesize(editing.blend_pyramid(ref_pa, ref_pb, mask)), flops=base_edit_flops)
    for mode, r in (("exact", renderer), ("fast", fast)):
        for ref_state, setup in (("cold", forget_reference_maps), ("warm", warm_reference)):
            def run(r=r) -> Any:
                return flops_of(lambda: r.render(editing.blend_pyramid(pa, pb, mask), base=ha))

            def setup_fn(setup=setup) -> None:
                restore_pair()
                setup()

            task(f"edit25/{mode}-{ref_state}", run, setup=setup_fn, dynamic=True,
                 check=(lambda y: {"max_err": float((y[0] - exact_edit).abs().max()),
                                   "psnr": psnr(y[0], exact_edit)}))
    task("edit6/base", lambda: model.synthesize(editing.blend_pyramid(ref_pa, ref_pb, small)), flops=base_edit_flops)
    task("edit6/exact-cold",
         lambda: flops_of(lambda: renderer.render(editing.blend_pyramid(pa, pb, small), base=ha)),
         setup=lambda: (restore_pair(), forget_reference_maps()), dynamic=True)
    task("unaligned25/base", lambda: model.synthesize(editing.transplant_pyramid(ref_pa, ref_pb, mask, offset, SIZE)),
         flops=base_edit_flops)
    task("unaligned25/exact",
         lambda: flops_of(lambda: renderer.render(editing.transplant_pyramid(pa, pb, mask, offset, SIZE), base=ha)),
         setup=restore_pair, dynamic=True,
         check=lambda y: {"max_err": float((y[0] - exact_unaligned).abs().max())})
    task("wblend25/base", lambda: model.decode(editing.blend_stylemap(sa, sb, mask)),
         flops=dec_flops)
    task("wblend25/exact",
         lambda: flops_of(lambda: renderer.render(renderer.expand(editing.blend_stylemap(sa, sb, mask), base=ha),
                                                  base=ha)),
         setup=lambda: (restore_pair(), forget_reference_maps()), dynamic=True,
         check=lambda y: {"max_err": float((y[0] - exact_w).abs().max())})

    with torch.no_grad():
        for name, t in tasks.items():  # warm-up (oneDNN primitives, first allocations)
            if t["setup"]:
                t["setup"]()
            t["fn"]()
        for _ in range(args.rounds):
            for name, t in tasks.items():
                if t["setup"]:
                    t["setup"]()
                t0 = time.perf_counter()
                out = t["fn"]()
                t["times"].append(time.perf_counter() - t0)
                if t["dynamic"]:
                    t["flops"] = out[1]
                t["result"] = out
        report = {}
        for name, t in tasks.items():
            entry = {"median_s": statistics.median(t["times"]), "min_s": min(t["times"]), "flops": t["flops"]}
            if t["check"]:
                entry.update(t["check"](t["result"]))
            report[name] = entry
    report["_flops"] = {"decode": dec_flops, "encode": enc_flops, **fl}
    report["_rss_mb"] = rss_mb()
    return report


# --------------------------------------------------------------------------- animation part


def part_animation(args: argparse.Namespace) -> dict[str, Any]:
    """16 frames from the original to a 25% w+ transplant; first frame, all frames, peak RSS."""
    from smapgan.latent import editing
    from smapgan.fast import FastRenderer

    model = build_model()
    x = test_images(2)
    mask = square_mask(0.25)
    ts = torch.linspace(0, 1, 16).tolist()
    with torch.no_grad():
        if args.which == "base":
            sa, sb = model.encode(x[:1]), model.encode(x[1:])
            pa, pb = model.expand(sa), model.expand(sb)  # "already encoded"
            edited = editing.blend_pyramid(pa, pb, mask, "avg", 1.0, 0.5)
            t0 = time.perf_counter()
            stamps = []
            for t in ts:  # streamed one by one (the official demo batches all 16: 13.6 GB)
                model.synthesize(editing.lerp_pyramid(pa, edited, t))
                stamps.append(time.perf_counter() - t0)
        else:
            mode, state = args.which.split("-")
            renderer = FastRenderer(model).with_mode(mode)
            ha, hb = renderer.encode(x[:1]), renderer.encode(x[1:])
            pa, pb = renderer.pyramid(ha), renderer.pyramid(hb)
            if state == "warm":
                renderer.render(ha)  # the original is on screen
            edited = editing.blend_pyramid(pa, pb, mask, "avg", 1.0, 0.5)
            t0 = time.perf_counter()
            stamps = []
            for _ in renderer.render_path(ha, edited, ts):
                stamps.append(time.perf_counter() - t0)
        total = time.perf_counter() - t0
    # The first frame is the original (t = 0); the second is the first that shows the edit.
    return {"first_s": stamps[0], "second_s": stamps[1], "all_s": total, "rss_mb": rss_mb()}


# --------------------------------------------------------------------------- app part


def part_app(args: argparse.Namespace) -> dict[str, Any]:
    """The app (Gradio blocks built) with the 256 model; ``--app-edits`` ops through the registry."""
    from smapgan.app import build_demo
    from smapgan.app.builder import default_renderer
    from smapgan.ops import OpContext, discover

    model = build_model()
    renderer = default_renderer(model)
    demo = build_demo(model, renderer=renderer)  # what the app process holds, kept until the end
    registry = discover()
    pics_src = test_images(6, seed=3)
    g = torch.Generator().manual_seed(0)
    rss_start = rss_mb()
    times = []
    failures = []
    with torch.no_grad():
        for i in range(args.app_edits):
            mode = "fast" if i % 3 == 2 else "exact"
            r = renderer.with_mode(mode) if mode in renderer.modes else renderer
            ctx = OpContext(model, r)
            a, b = torch.randperm(6, generator=g)[:2].tolist()
            y0, x0 = torch.randint(0, SIZE - 128, (2,), generator=g).tolist()
            mask = torch.zeros(1, 1, SIZE, SIZE)
            mask[..., y0:y0 + 128, x0:x0 + 128] = 1
            orig = ctx.picture(pics_src[a:a + 1])
            ref = ctx.picture(pics_src[b:b + 1], mask)
            kind = i % 10
            t0 = time.perf_counter()
            try:
                if kind in (0, 1, 2, 3, 4):
                    registry["local_transplant"].run(ctx, original=orig, references=[ref], space="w+",
                                                     strength=1.0, pooling="max", frames=8 if kind == 4 else 0)
                elif kind in (5, 6):
                    registry["local_transplant"].run(ctx, original=orig, references=[ref], space="w",
                                                     strength=1.0, pooling="demo", frames=0)
                elif kind == 7 and "unaligned_transplant" in registry:
                    registry["unaligned_transplant"].run(ctx, original=orig, reference=ref, placements="0.3,0.6")
                elif kind == 8 and "style_mix" in registry:
                    registry["style_mix"].run(ctx, content=orig, style=ctx.picture(pics_src[b:b + 1]), mix="coarse")
                else:
                    registry["reconstruct"].run(ctx, original=orig)
            except Exception as exc:  # report, keep measuring memory
                failures.append(f"{i}: {type(exc).__name__}: {exc}")
            times.append(time.perf_counter() - t0)
    rss_end = rss_mb()
    del demo
    return {"rss_start_mb": rss_start, "rss_end_mb": rss_end, "edits": args.app_edits,
            "median_edit_s": statistics.median(times), "failures": failures[:5], "n_failures": len(failures),
            "renderer": type(renderer).__name__}


# --------------------------------------------------------------------------- driver


def run_part(part: str, args: argparse.Namespace, which: str = "") -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--part", part, "--threads", str(args.threads), "--rounds", str(args.rounds),
           "--app-edits", str(args.app_edits)]
    if which:
        cmd += ["--which", which]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def fmt_s(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (median reported)")
    parser.add_argument("--app-edits", type=int, default=100)
    parser.add_argument("--skip-baseline-animation", action="store_true",
                        help="skip the naive 16-frame animation (about a minute)")
    parser.add_argument("--skip-app", action="store_true")
    parser.add_argument("--part", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--which", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.part:
        fn = {"timing": part_timing, "animation": part_animation, "app": part_app}[args.part]
        print(json.dumps(fn(args)))
        return 0

    load0 = os.getloadavg()
    print(f"machine: {cpu_name()} ({cpu_flags()}), {os.cpu_count()} CPUs; threads {args.threads}; "
          f"torch {torch.__version__}; python {platform.python_version()}")
    print(f"config: {RELEASE}, random weights, batch 1; load average at start {load0[0]:.2f}")
    print("timing: our tasks and the baseline's in interleaved rounds in one process, median of "
          f"{args.rounds} (the machine may be shared: compare the columns, not runs)\n")
    timing = run_part("timing", args)
    if "error" in timing:
        print("timing failed:", timing["error"])
        return 1
    anims = {}
    for which in ("exact-warm", "exact-cold", "fast-warm", "fast-cold"):
        anims[which] = run_part("animation", args, which)
    if not args.skip_baseline_animation:
        anims["base"] = run_part("animation", args, "base")
    app = None if args.skip_app else run_part("app", args)

    def row(task: str, target: str, base_key: str | None, ours_key: str, limit: float | None,
            extra: str = "") -> None:
        ours = timing[ours_key]
        base = timing.get(base_key) if base_key else None
        gfs = ours["flops"] / ours["median_s"] / 1e9 if ours.get("flops") else None
        bgfs = base["flops"] / base["median_s"] / 1e9 if base and base.get("flops") else None
        status = "" if limit is None else ("PASS" if ours["median_s"] <= limit else "FAIL")
        print(f"| {task} | {target} | {fmt_s(base['median_s']) if base else '-'}"
              f"{f' ({bgfs:.0f} GF/s)' if bgfs else ''} | {fmt_s(ours['median_s'])} | "
              f"{ours['flops'] / 1e9:.1f} G{f' ({gfs:.0f} GF/s)' if gfs else ''} | {extra} | {status} |")

    print("| task | target | baseline | ours (median) | ours: FLOPs executed (achieved) | accuracy | |")
    print("|---|---|---|---|---|---|---|")
    t = timing
    row("encode fp32 exact", "<= 0.6 s", "encode/base", "encode/ours", 0.6,
        f"max err {t['encode/ours']['max_err']:.1e}")
    row("decode fp32 exact (cold cache)", "<= 2.5 s", "decode/base", "decode/ours", 2.5,
        f"max err {t['decode/ours']['max_err']:.1e}")
    for key, label in (("exact-cold", "25% w+ edit, exact, reference maps evicted"),
                       ("exact-warm", "25% w+ edit, exact, reference maps cached (made when encoding)")):
        row(label, "<= 1.0 s", "edit25/base", f"edit25/{key}", 1.0,
            f"max err {t[f'edit25/{key}']['max_err']:.1e}")
    row("encode + expand, exact mode (its float32 maps made too)", "-", "encode+expand/base", "encode+expand/exact", None)
    row("encode + expand, fast mode (its bf16 maps made too)", "-", "encode+expand/base", "encode+expand/fast", None)
    for key, label in (("fast-cold", "25% w+ edit, fast (bf16), ref maps evicted"),
                       ("fast-warm", "25% w+ edit, fast (bf16), ref maps cached (made when encoding)")):
        row(label, "<= 0.5 s, >= 40 dB", "edit25/base", f"edit25/{key}", 0.5,
            f"PSNR {t[f'edit25/{key}']['psnr']:.1f} dB")
    row("6% w+ edit, exact, ref maps not cached", "-", "edit6/base", "edit6/exact-cold", None)
    row("25% unaligned transplant, exact", "-", "unaligned25/base", "unaligned25/exact", None,
        f"max err {t['unaligned25/exact']['max_err']:.1e}")
    row("25% w (stylemap) blend + expand, exact", "-", "wblend25/base", "wblend25/exact", None,
        f"max err {t['wblend25/exact']['max_err']:.1e}")

    print("\n16-frame animation (original -> 25% w+ transplant, demo pooling), streamed frame by frame:")
    print("| run | first frame (the original) | second frame (first edited) | all 16 | peak RSS | target |")
    print("|---|---|---|---|---|---|")
    for which, a in anims.items():
        if "error" in a:
            print(f"| {which} | error: {a['error']} | | | | |")
            continue
        ok = a["first_s"] <= 1.5 and a["all_s"] <= 20 and a["rss_mb"][1] <= 2048
        label = {"base": "baseline (model.synthesize per frame)", "exact-warm": "ours exact, original on screen",
                 "exact-cold": "ours exact, nothing rendered yet", "fast-warm": "ours fast, original on screen",
                 "fast-cold": "ours fast, nothing rendered yet"}[which]
        print(f"| {label} | {a['first_s']:.2f} s | {a['second_s']:.2f} s | {a['all_s']:.2f} s | {a['rss_mb'][1]:.0f} MB | "
              f"first <= 1.5 s, all <= 20 s, <= 2 GB: {'PASS' if ok else 'FAIL'} |")
    if app is not None:
        print("\napp process (Gradio blocks built, 256 model, default renderer), ops through the registry:")
        if "error" in app:
            print("  error:", app["error"])
        else:
            end = app["rss_end_mb"]
            print(f"  renderer {app['renderer']}; RSS before edits {app['rss_start_mb'][0]:.0f} MB; after "
                  f"{app['edits']} edits {end[0]:.0f} MB (peak {end[1]:.0f} MB); median op {app['median_edit_s']:.2f} s;"
                  f" failures {app['n_failures']} {app['failures']} -> target <= 2 GB: "
                  f"{'PASS' if end[0] <= 2048 else 'FAIL'}")
    load1 = os.getloadavg()
    fl = timing["_flops"]
    print(f"\nFLOPs per decode: {fl['decode'] / 1e9:.1f} G (resizer {fl['resizer'] / 1e9:.1f}, gamma/beta "
          f"{fl['modulation'] / 1e9:.1f}, synthesis {fl['synthesis'] / 1e9:.1f}); encode {fl['encode'] / 1e9:.1f} G")
    print(f"load average at end {load1[0]:.2f} (above {args.threads} means other work shared the cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
