"""The GPU rows of the benchmarks, in one script for a machine with a CUDA GPU (issues 26 and 28).

At the release 256/8x8 layout with random weights, batch 1, on ``--device`` (default cuda):

* decode (``model.decode``) and encode (``model.encode``), float32, and bfloat16 autocast where the
  GPU has it (``torch.cuda.is_bf16_supported``);
* the first local transplant of a new pair (25% brushed square, w+, frames 0) and the next edit (the
  brush moved, at once), in-process through the op (``Op.run`` from PNG files, the renderer that
  ``smapgan.device`` picks for the device), float32;
* refinement (``refine`` through the renderer's differentiable decoder): seconds per step, and
  100 steps, float32 and bfloat16 autocast;
* the app's first and next transplant of a new pair over HTTP (``python app.py --device DEVICE``,
  ``gradio_client``) beside the in-process op of the same round.

Each figure is the median of ``--reps`` (the first call of each kind is a warm-up); CUDA work is
synchronized before each clock read. The table, with the GPU's name, torch and CUDA versions, goes
to stdout and to ``gpu_rows.md`` in ``--out`` (default ``$OUT``, else the current folder).

    python bench/gpu_rows.py [--device cuda] [--reps 5] [--out DIR]
    python bench/gpu_rows.py --device cpu --quick     # a smoke run on any machine (under a minute)

``--quick``: the narrow 64 px layout (``official/narrow64``'s widths), one rep, 3 refinement steps:
it checks that every row runs, its figures are not the 256 px ones.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable

import torch
from app_first_edit import brush_layer, save_pair
from app_latency import client_tls, free_port, wait_for
from cpu_edit import RELEASE, build_model
from machine import cpu_name

ROOT = Path(__file__).resolve().parent.parent
QUICK = dict(size=64, latent_spatial_size=8, latent_channel_size=16, channel_max=64, channel_base=1024)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name} ({props.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}"
    return f"{cpu_name()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100, help="refinement steps of the refinement row")
    parser.add_argument("--out", default=os.environ.get("OUT") or ".")
    parser.add_argument("--quick", action="store_true", help="smoke run: 64 px narrow layout, 1 rep, 3 steps")
    parser.add_argument("--no-app", action="store_true", help="skip the app rows")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.steps = 1, 3

    from smapgan.device import renderer_for_device, resolve_device
    from smapgan.latent.invert import refine
    from smapgan.ops import OpContext, PictureSource, discover

    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    model = build_model(config=QUICK if args.quick else RELEASE)
    size = model.config.size
    renderer = renderer_for_device(model, device)
    transplant = discover(paths=[])["local_transplant"]
    bf16 = torch.cuda.is_bf16_supported() if cuda else False
    precisions = [("float32", None)] + ([("bfloat16", torch.bfloat16)] if bf16 else [])

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    def autocast(dtype: torch.dtype | None) -> Any:
        return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()

    def timed(fn: Callable[[], Any], reps: int | None = None) -> float:
        fn()  # warm-up: kernels chosen, memory pooled
        sync()
        samples = []
        for _ in range(reps or args.reps):
            t0 = time.perf_counter()
            fn()
            sync()
            samples.append(time.perf_counter() - t0)
        return statistics.median(samples)

    rows: list[tuple[str, str, str]] = []  # (measure, value, note)
    x = (torch.rand(1, 3, size, size, device=device) * 2 - 1)
    with torch.inference_mode():
        s = model.encode(x)
        for name, dtype in precisions:
            with autocast(dtype):
                rows.append((f"decode, {name}", f"{timed(lambda: model.decode(s)) * 1e3:.1f} ms", "model.decode"))
                rows.append((f"encode, {name}", f"{timed(lambda: model.encode(x)) * 1e3:.1f} ms", "model.encode"))

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        layers = {"first": brush_layer(tmp, size, 0.25, 0.25, "first"), "next": brush_layer(tmp, size, 0.375, 0.125, "next")}
        seeds = iter(range(1000, 100_000))

        def op_edit(pair: tuple[Path, Path], layer: Path) -> Any:
            ctx = OpContext(model, renderer)
            out = transplant.run(ctx, original=PictureSource(str(pair[0])),
                                 references=[PictureSource(str(pair[1]), layers=(str(layer),))],
                                 space="w+", strength=1.0, pooling="max", frames=0)["image"]
            sync()
            return out

        def op_round() -> tuple[float, float]:
            pair = save_pair(tmp, next(seeds), size)  # a new pair: nothing cached
            t0 = time.perf_counter()
            op_edit(pair, layers["first"])
            t1 = time.perf_counter()
            op_edit(pair, layers["next"])
            return t1 - t0, time.perf_counter() - t1

        with torch.inference_mode():
            op_round()  # warm-up
            op_times = [op_round() for _ in range(args.reps)]

        # refinement: per step (N and 1 steps differ by N - 1 steps), float32 and bf16 autocast
        decoder = renderer.gradient_decoder()
        for name, dtype in precisions:
            with autocast(dtype):
                def run(steps: int) -> None:
                    refine(model, x, steps=steps, decoder=decoder, init=s)
                    sync()
                full = timed(lambda: run(args.steps), reps=max(1, args.reps // 2))
                one = timed(lambda: run(1), reps=max(1, args.reps // 2))
            per_step = (full - one) / max(1, args.steps - 1)
            rows.append((f"refinement, {name}", f"{per_step * 1e3:.1f} ms/step; {args.steps} steps {full:.2f} s",
                         "refine(decoder=renderer.gradient_decoder())"))

        app_times: list[tuple[float, float]] = []
        if not args.no_app:
            folder = tmp / "model"
            model.save_pretrained(folder)
            port = free_port()
            cmd = [sys.executable, str(ROOT / "app.py"), "--model", str(folder), "--device", args.device,
                   "--port", str(port)]
            env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            try:
                from gradio_client import Client, handle_file

                url = f"http://127.0.0.1:{port}"
                wait_for(url, proc, timeout=300)
                client = Client(url, verbose=False, ssl_verify=client_tls("shared-tls"))

                def app_edit(pair: tuple[Path, Path], layer: Path) -> None:
                    client.predict(api_name="/local_transplant", original=handle_file(str(pair[0])), frames=0,
                                   space="w+", strength=1.0, pooling="max",
                                   references_1={"background": handle_file(str(pair[1])),
                                                 "layers": [handle_file(str(layer))], "composite": None})

                def app_round() -> tuple[float, float]:
                    pair = save_pair(tmp, next(seeds), size)
                    t0 = time.perf_counter()
                    app_edit(pair, layers["first"])
                    t1 = time.perf_counter()
                    app_edit(pair, layers["next"])
                    return t1 - t0, time.perf_counter() - t1

                app_round()  # warm-up
                for _ in range(args.reps):  # alternating with the op in-process
                    app_times.append(app_round())
                    with torch.inference_mode():
                        op_times.append(op_round())
                client.close()
            finally:
                proc.terminate()
                proc.wait(timeout=60)

    for i, what in enumerate(("first transplant of a new pair", "next edit (brush moved, at once)")):
        op = statistics.median(t[i] for t in op_times)
        rows.append((f"{what}, in-process op, float32", f"{op * 1e3:.0f} ms", type(renderer).__name__))
        if app_times:
            app = statistics.median(t[i] for t in app_times)
            rows.append((f"{what}, live app (HTTP), float32", f"{app * 1e3:.0f} ms",
                         f"{app / op:.2f}x the in-process op; `app.py --device {args.device}`"))

    layout = "narrow 64 px layout (--quick smoke run)" if args.quick else "release 256/8x8 layout, random weights"
    lines = [
        f"## {device_name(device)}",
        "",
        f"{layout}, batch 1; medians of {args.reps}; torch {torch.__version__}, python {platform.python_version()}; "
        f"bf16 {'yes' if bf16 else 'no'} on this device; `python bench/gpu_rows.py --device {args.device}"
        f"{' --quick' if args.quick else ''}`",
        "",
        "| measure | time | note |",
        "|---|---|---|",
        *(f"| {m} | {v} | {n} |" for m, v, n in rows),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_rows.md").write_text(text)
    print(f"wrote {out / 'gpu_rows.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
