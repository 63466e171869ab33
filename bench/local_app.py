"""The next edit through the live app: the local preview's and the exact render's arrival (issue 30, item 5).

Starts ``python app.py`` (the bundled model, or ``--release``: the 256/8x8 release layout with random
weights, saved to a temporary folder) on a loopback port and drives it with one ``gradio_client.Client``
(one TLS context, as ``bench/app_latency.py`` recommends). A pair is uploaded and edited once (the first
edit: exact, and the base's features recorded); then, per round, the square mask moves and the next edit
is sent twice, alternating the order: with ``preview=True`` (what the page's Run sends: the time to the
first image, the local preview, and to the last, the exact render) and without (the API's default: the
exact render alone). The same sequence runs in this process through ``Op.stream`` with the app's renderer
(``default_renderer``), so that the HTTP share is a ratio. Medians over ``--rounds``.

    python bench/local_app.py [--release] [--rounds 7] [--threads 2] [--areas 0.06,0.25]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from app_latency import ROOT, client_tls, free_port, wait_for
from machine import cpu_name
from PIL import Image

EXAMPLES = ROOT / "smapgan" / "assets" / "examples"
ORIGINAL, REFERENCE = EXAMPLES / "neutral_face.png", EXAMPLES / "heart_eyes.png"


def square_layer(size: int, fraction: float, step: int, folder: Path) -> Path:
    """A brush layer (RGBA, ``size`` px) with a square of ``fraction`` of the area, at position ``step`` of 4."""
    side = round(fraction ** 0.5 * size)
    y = (size - side) * (step % 4) // 4
    x = (size - side) - y
    layer = np.zeros((size, size, 4), np.uint8)
    layer[y:y + side, x:x + side] = (255, 42, 109, 160)
    path = folder / f"square-{fraction}-{step}.png"
    Image.fromarray(layer).save(path)
    return path


def timed_stream(updates: Any, has_image: Callable[[Any], bool]) -> tuple[float, float, int]:
    """(seconds to the first update with an image, seconds to the end, images seen) of an update stream."""
    t0 = time.perf_counter()
    first, images = None, 0
    for update in updates:
        if has_image(update):
            images += 1
            if first is None:
                first = time.perf_counter() - t0
    return (first if first is not None else float("nan")), time.perf_counter() - t0, images


def over_http(url: str, size: int, areas: list[float], rounds: int, folder: Path) -> dict[str, Any]:
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, ssl_verify=client_tls("shared-tls"))

    def call(layer: Path, preview: bool) -> tuple[float, float, int]:
        payload = dict(
            original=handle_file(str(ORIGINAL)), frames=0, space="w+", strength=1.0, pooling="max",
            references_1={"background": handle_file(str(REFERENCE)), "layers": [handle_file(str(layer))],
                          "composite": None},
        )
        job = client.submit(api_name="/local_transplant", preview=preview, **payload)
        return timed_stream(job, lambda u: u is not None and (isinstance(u, str) or bool(u and u[0])))

    results = rounds_by_area(call, size, areas, rounds, folder)
    client.close()
    return results


def rounds_by_area(
    call: Callable[[Path, bool], tuple[float, float, int]], size: int, areas: list[float], rounds: int, folder: Path
) -> dict[str, Any]:
    """For each mask area: a first edit of the pair (exact, its features recorded), then ``rounds`` next
    edits with and without the preview, alternating which goes first; ``call(layer, preview)`` gives
    (seconds to the first image, seconds to the last, images shown)."""
    results: dict[str, Any] = {}
    for area in areas:
        call(square_layer(size, area, 0, folder), True)
        rows: dict[str, list[float]] = {"preview first": [], "preview exact": [], "exact": [], "images": []}
        for r in range(1, rounds + 1):
            layer = square_layer(size, area, r, folder)
            for preview in ((True, False) if r % 2 else (False, True)):
                first, last, images = call(layer, preview)
                if preview:
                    rows["preview first"].append(first)
                    rows["preview exact"].append(last)
                    rows["images"].append(images)
                else:
                    rows["exact"].append(last)
        results[f"{area:.0%}"] = rows
    return results


def in_process(model_arg: str | None, size: int, areas: list[float], rounds: int, folder: Path) -> dict[str, Any]:
    from smapgan.app.builder import default_renderer
    from smapgan.app.launcher import load_model
    from smapgan.ops import OpContext, discover

    model = load_model(model_arg)
    op = discover()["local_transplant"]
    renderer = default_renderer(model)

    def call(layer: Path, preview: bool) -> tuple[float, float, int]:
        ctx = OpContext(model, renderer, previews=preview)
        states = op.stream(ctx, original=ctx.picture(str(ORIGINAL)),
                           references=[ctx.picture(str(REFERENCE), str(layer))], space="w+", frames=0)
        return timed_stream(states, lambda s: "image" in s)

    return rounds_by_area(call, size, areas, rounds, folder)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--release", action="store_true", help="the 256/8x8 release layout, random weights")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--areas", default="0.06,0.25")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    areas = [float(a) for a in args.areas.split(",")]
    print(f"CPU: {cpu_name()}; torch {torch.__version__}; {args.threads} threads; load at start {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model_arg = None
        if args.release:
            from cpu_edit import build_model

            model_arg = str(folder / "release")
            build_model().save_pretrained(model_arg)
        size = Image.open(REFERENCE).size[0]
        port = free_port()
        cmd = [sys.executable, str(ROOT / "app.py"), "--port", str(port)]
        cmd += ["--model", model_arg] if model_arg else []
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), GRADIO_ANALYTICS_ENABLED="False")
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(f"http://127.0.0.1:{port}", proc)
            http = over_http(f"http://127.0.0.1:{port}", size, areas, args.rounds, folder)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        local = in_process(model_arg, size, areas, args.rounds, folder)
    name = "release 256/8x8, random weights" if args.release else "bundled model"
    print(f"\n[{name}] next edit, w+ local transplant, medians of {args.rounds} (seconds)")
    print(f"{'mask':>5} {'where':>11} {'preview':>8} {'then exact':>10} {'exact alone':>11} {'images':>6}")
    for key in http:
        for where, rows in (("in-process", local[key]), ("HTTP", http[key])):
            med = {k: statistics.median(v) for k, v in rows.items()}
            print(f"{key:>5} {where:>11} {med['preview first']:>8.3f} {med['preview exact']:>10.3f} "
                  f"{med['exact']:>11.3f} {med['images']:>6.0f}")
        ratio = {k: statistics.median(http[key][k]) / statistics.median(local[key][k])
                 for k in ("preview first", "preview exact", "exact")}
        print(f"{key:>5} {'HTTP/in-pr.':>11} {ratio['preview first']:>7.2f}x {ratio['preview exact']:>9.2f}x "
              f"{ratio['exact']:>10.2f}x")
    print(f"\nload at end {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
