"""The first edit of a new pair and the next one, through the live app beside the op in-process and the floor.

The release 256/8x8 layout with random weights (every parameter perturbed; ``--model DIR`` serves a
saved model instead, e.g. the bundled one) is saved to a folder and served by ``python app.py --model
DIR`` in a subprocess. One ``gradio_client.Client`` then, in each round, uploads a pair of images never
seen before (new pixels: nothing cached) and asks for a local transplant under a brushed square of 25%
of the image (w+, frames 0): "first"; then moves the brush and asks again at once: "next"; then, once
the server is quiet (a person looked at the result), moves it again: "later". Each call is
what a person's browser or script meets: three uploads, the queue, the op, the result's PNG written by
Gradio and downloaded.

In the same rounds, alternating with the app, the same two edits of another new pair through the op
in this process (``Op.run`` from the same files, no HTTP): with the app's renderer (its idle worker
completing the maps after each render) and with a renderer without that worker. Before each timed
call the other side is quiet (the server's CPU time stops growing; ``wait_idle`` here).

The float32 floor is counted with ``torch.utils.flop_counter.FlopCounterMode``: a first transplant
cannot do less than encode both images, expand both stylemaps and synthesize one image with all its
gamma/beta maps; the next edit no less than the synthesis without the maps. Both at this machine's
SGEMM rate, measured in the same run. Medians of ``--rounds``; CPU, threads and load printed.

    python bench/app_first_edit.py [--rounds 3] [--threads 2] [--model DIR] [--profile DIR]

``--profile DIR`` attaches ``py-spy record`` (``pip install py-spy``) to the server for the timed rounds
and writes its collapsed stacks, per thread (busy samples only), to ``DIR/app.txt`` (the timings of
that run include py-spy's sampling).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from app_latency import client_tls, free_port, wait_for
from cpu_edit import build_model, test_images
from first_edit import sgemm_gflops
from machine import cpu_name
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def save_pair(folder: Path, seed: int, size: int) -> tuple[Path, Path]:
    """A new pair of smooth random images as PNG files (pixels never seen before)."""
    from smapgan.intake import images as imageio

    pair = torch.nn.functional.interpolate(test_images(2, seed), size=(size, size), mode="bilinear")
    paths = []
    for i, name in enumerate(("original", "reference")):
        path = folder / f"{name}-{seed}.png"
        imageio.tensor_to_image(pair[i:i + 1]).save(path)
        paths.append(path)
    return paths[0], paths[1]


def brush_layer(folder: Path, size: int, y: int, x: int, name: str) -> Path:
    """A brush layer like the editor's: an opaque square of a quarter of the image at (y, x) (fractions)."""
    layer = np.zeros((size, size, 4), np.uint8)
    side = size // 2
    top, left = int(y * size), int(x * size)
    layer[top:top + side, left:left + side] = (255, 42, 109, 255)
    path = folder / f"{name}.png"
    Image.fromarray(layer).save(path)
    return path


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process and its threads so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_quiet(pid: int, timeout: float = 120.0, idle_rate: float = 0.0) -> None:
    """Until the process has used under 2% of a core beyond ``idle_rate`` (its CPU seconds per second when
    idle: Gradio's queue loop polls every millisecond) for half a second (its idle worker is done)."""
    deadline = time.time() + timeout
    before = process_cpu_s(pid)
    while time.time() < deadline:
        time.sleep(0.5)
        now = process_cpu_s(pid)
        if now - before < 0.01 + 0.5 * idle_rate:
            return
        before = now


def floors(model: Any) -> dict[str, float]:
    """FLOPs (FlopCounterMode) of what a first transplant and a next edit cannot avoid, batch 1."""
    from torch.utils.flop_counter import FlopCounterMode

    size = model.config.size
    flags = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)  # the counter's module hooks want no autograd graph
    try:
        x = torch.zeros(1, 3, size, size)
        with FlopCounterMode(display=False) as enc:
            s = model.encode(x)
        with FlopCounterMode(display=False) as exp:
            pyramid = model.expand(s)
        with FlopCounterMode(display=False) as syn:
            model.synthesize(pyramid)
        with FlopCounterMode(display=False) as maps:
            for layer, level in zip(model.generator.decoder.styled_layers(), pyramid):
                layer.conv.modulation(level)
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
    e, r, y, m = (float(c.get_total_flops()) for c in (enc, exp, syn, maps))
    return {"encode": e, "expand": r, "synthesize": y, "maps": m,
            "first": 2 * e + 2 * r + y, "next": y - m}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", help="a saved model folder (default: the release 256/8x8 layout, random weights)")
    parser.add_argument("--profile", help="run the server under py-spy and write its stacks to this folder")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from gradio_client import Client, handle_file

    from smapgan import StyleMapGAN
    from smapgan.app.builder import default_renderer
    from smapgan.fast import FastRenderer
    from smapgan.ops import OpContext, PictureSource, discover

    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.model:
            folder, label = Path(args.model), args.model
        else:
            folder, label = tmp / "release", "release 256/8x8 layout, random weights"
            build_model().save_pretrained(folder)
        model = StyleMapGAN.from_pretrained(folder).eval()
        size = model.config.size
        flops = floors(model)
        transplant = discover(paths=[])["local_transplant"]
        renderers = {"in-process, app renderer": default_renderer(model), "in-process, no idle worker": FastRenderer(model)}
        layers = {"first": brush_layer(tmp, size, 0.25, 0.25, "first"), "next": brush_layer(tmp, size, 0.375, 0.125, "next"),
                  "later": brush_layer(tmp, size, 0.125, 0.375, "later")}

        port = free_port()
        cmd = [sys.executable, str(ROOT / "app.py"), "--model", str(folder), "--port", str(port)]
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), GRADIO_ANALYTICS_ENABLED="False")
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        times: dict[str, list[float]] = {}

        def timed(name: str, fn: Callable[[], Any]) -> Any:
            t0 = time.perf_counter()
            out = fn()
            times.setdefault(name, []).append(time.perf_counter() - t0)
            return out

        try:
            url = f"http://127.0.0.1:{port}"
            wait_for(url, proc, timeout=600)
            server = proc.pid
            client = Client(url, verbose=False, ssl_verify=client_tls("shared-tls"))

            def app_edit(original: Path, reference: Path, layer: Path) -> Any:
                payload = dict(original=handle_file(str(original)), frames=0, space="w+", strength=1.0, pooling="max",
                               references_1={"background": handle_file(str(reference)),
                                             "layers": [handle_file(str(layer))], "composite": None})
                return client.predict(api_name="/local_transplant", **payload)

            def op_edit(renderer: Any, original: Path, reference: Path, layer: Path) -> Any:
                ctx = OpContext(model, renderer)
                return transplant.run(ctx, original=PictureSource(str(original)),
                                      references=[PictureSource(str(reference), layers=(str(layer),))],
                                      space="w+", strength=1.0, pooling="max", frames=0)["image"]

            # warm-up of both sides (oneDNN primitives, first allocations, Gradio's first request)
            pair = save_pair(tmp, 99, size)
            app_edit(*pair, layers["first"])
            app_edit(*pair, layers["next"])
            wait_quiet(server)
            with torch.inference_mode():
                for renderer in renderers.values():
                    op_edit(renderer, *pair, layers["first"])
                    op_edit(renderer, *pair, layers["next"])
                    renderer.wait_idle()
            gflops = sgemm_gflops()
            spy = None
            if args.profile:  # attached after the warm-up: the timed rounds only
                Path(args.profile).mkdir(parents=True, exist_ok=True)
                spy = subprocess.Popen([shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
                                        "record", "--pid", str(server), "--format", "raw", "--threads",
                                        "--rate", "100", "-o", str(Path(args.profile) / "app.txt")],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(2)
            for r in range(args.rounds):
                pair = save_pair(tmp, 1000 + 10 * r, size)
                timed("first/live app", lambda: app_edit(*pair, layers["first"]))
                timed("next/live app", lambda: app_edit(*pair, layers["next"]))
                wait_quiet(server)  # the person looks at the result: the server's idle work is done
                timed("later/live app", lambda: app_edit(*pair, layers["later"]))
                wait_quiet(server)
                with torch.inference_mode():
                    for i, (name, renderer) in enumerate(renderers.items()):
                        pair = save_pair(tmp, 1000 + 10 * r + 1 + i, size)
                        timed(f"first/{name}", lambda: op_edit(renderer, *pair, layers["first"]))
                        timed(f"next/{name}", lambda: op_edit(renderer, *pair, layers["next"]))
                        t0 = time.perf_counter()
                        renderer.wait_idle()  # the person looks at the result
                        times.setdefault(f"idle/{name}", []).append(time.perf_counter() - t0)
                        timed(f"later/{name}", lambda: op_edit(renderer, *pair, layers["later"]))
                        renderer.wait_idle()
            client.close()
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
        finally:
            proc.terminate()
            proc.wait(timeout=60)

    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs; {args.threads} threads; torch {torch.__version__}; "
          f"python {platform.python_version()}; load average {load0:.2f} at start, {os.getloadavg()[0]:.2f} at end")
    print(f"model: {label}, {size} px; a new pair each round, 25% brushed square, w+, frames 0; medians of "
          f"{args.rounds} rounds, app and in-process alternating; SGEMM {gflops:.0f} GFLOP/s in this run")
    floor = {k: flops[k] / gflops / 1e9 for k in ("first", "next")}
    print(f"float32 floor (FlopCounterMode): first {flops['first'] / 1e9:.0f} GFLOP = {floor['first']:.2f} s "
          f"(encode {flops['encode'] / 1e9:.1f} x2, expand {flops['expand'] / 1e9:.1f} x2, synthesize "
          f"{flops['synthesize'] / 1e9:.1f}); next {flops['next'] / 1e9:.0f} GFLOP = {floor['next']:.2f} s "
          f"(the synthesis without its {flops['maps'] / 1e9:.0f} GFLOP of gamma/beta maps)\n")
    print("| measure | live app | in-process, app renderer | in-process, no idle worker | app / in-process (no idle) "
          "| app / floor | float32 floor |")
    print("|---|---|---|---|---|---|---|")
    floor["later"] = floor["next"]
    for edit, title in (("first", "first transplant of a new pair"), ("next", "next edit (mask moved, at once)"),
                        ("later", "an edit after the person looked (mask moved again, the server idle)")):
        app, ours, plain = (med[f"{edit}/{n}"] for n in ("live app", *renderers))
        print(f"| {title} | {app:.2f} s | {ours:.2f} s | {plain:.2f} s | {app / plain:.2f} | "
              f"{app / floor[edit]:.2f}x | {floor[edit]:.2f} s |")
    print(f"\nthe app renderer's idle worker after the next edit: {med['idle/in-process, app renderer']:.2f} s of work")
    if args.profile:
        print(f"server stacks (py-spy, collapsed): {Path(args.profile) / 'app.txt'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
