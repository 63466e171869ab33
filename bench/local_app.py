"""The next edit through the live app: the local preview's and the exact render's arrival (issue 30, item 5).

Starts ``python app.py`` (the bundled model, or ``--release``: the 256/8x8 release layout with random
weights, saved to a temporary folder) on a loopback port and drives it with one ``gradio_client.Client``
(one TLS context, as ``bench/app_latency.py`` recommends), in two ways:

- ``HTTP, as the page``: what the app's page sends for a next edit (``bench/page_requests.py`` watches
  it in Chromium): the original, unchanged since the first edit, by the path of the file the server
  already holds (no upload); the reference canvas's background, brush layer and composite uploaded
  (the page's ImageEditor uploads all three at every Run, the unchanged background included; the page
  sends some of them two to four times at once, this client each once);
- ``HTTP, every file``: ``gradio_client``'s own way, every file uploaded at every call (the original,
  the background and the layer; no composite).

Beside them, in this process, the same op runs through ``Op.stream`` with the app's renderer
(``default_renderer``), given the same files (decoded by the op, as in the app), so that the HTTP share
is a ratio. A pair is edited once each way (the first edit: exact, and the base's features recorded);
then, per round, the square mask moves and the next edit is sent with ``preview=True`` (what the page's
Run sends: the time to the first image, the local preview, and to the last, the exact render) and
without (the API's default: the exact render alone), each way in turn (the order rotating by round),
each call after a pause (``--pause``, default 1 s: a person moves the mask; both renderers' idle
workers are done by then). Medians over ``--rounds``.

Wall times swing with other processes on a shared machine; each call's CPU time does not as much:
HTTP, the server's from the call until it is quiet again (less its idle polling) plus this process's
(the client's); in-process, this process's until the renderer's idle worker is done. Compare those with
``--threads 1`` (several threads spin while they wait, which counts as CPU time).

    python bench/local_app.py [--release] [--rounds 7] [--threads 2] [--areas 0.06,0.25] [--pause 1]
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
from app_first_edit import process_cpu_s, wait_quiet
from app_latency import ROOT, client_tls, free_port, wait_for
from machine import cpu_name
from PIL import Image

EXAMPLES = ROOT / "smapgan" / "assets" / "examples"
PAGE, EVERY = "HTTP, as page", "HTTP, every file"
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


Timing = tuple[float, float, int, float]
"""Seconds to the first image, seconds to the last, images shown, CPU seconds the call cost."""


def idle_cpu_rate(pid: int, seconds: float = 3.0) -> float:
    """CPU seconds per second the idle server uses (Gradio's queue loop polls every millisecond)."""
    before, t0 = process_cpu_s(pid), time.perf_counter()
    time.sleep(seconds)
    return (process_cpu_s(pid) - before) / (time.perf_counter() - t0)


def composite(background: Path, layer: Path, folder: Path) -> Path:
    """The canvas's composite as the page's ImageEditor uploads it: the brush layer painted over the background."""
    path = folder / f"composite-{layer.stem}.png"
    Image.alpha_composite(Image.open(background).convert("RGBA"), Image.open(layer).convert("RGBA")).save(path)
    return path


def over_http(
    url: str, server: int, as_page: bool
) -> tuple[Callable[[Path, bool], Timing], Callable[[], None], list[float]]:
    """``call(layer, preview)`` through the app at ``url`` (served by process ``server``), what closes
    its client, and the client's share of each call's CPU seconds (filled as calls are made).

    ``as_page``: send what the page sends (see the module's docstring): the original once uploaded, then
    named by the server's path, and the canvas's composite too. ``gradio_client`` uploads every file
    payload it is given, a file the server holds included; so the endpoint's upload step is told to pass
    the server's own files through (an attribute of this client's endpoint object, not of the library).

    Its CPU seconds: the server's from the call until it is quiet again (the idle work the edit began
    included), less its idle rate over that time, plus this process's (the client's)."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, ssl_verify=client_tls("shared-tls"))
    idle_rate = idle_cpu_rate(server)
    client_cpu: list[float] = []
    held: dict[str, dict[str, Any]] = {}  # a local file -> the payload its upload returned (the server's copy)
    print(f"the idle server's CPU use: {idle_rate:.3f} s per s")
    if as_page:
        endpoint = next(e for e in client.endpoints.values() if e.api_name == "/local_transplant")
        upload = endpoint._upload_file

        def upload_unless_held(payload: dict[str, Any], data_index: int) -> dict[str, Any]:
            if any(payload["path"] == h["path"] for h in held.values()):
                return payload  # the server's own file, named as the page names it
            sent = upload(payload, data_index)
            if payload["path"] == str(ORIGINAL):
                held[str(ORIGINAL)] = sent
            return sent

        endpoint._upload_file = upload_unless_held

    def call(layer: Path, preview: bool) -> Timing:
        canvas = {"background": handle_file(str(REFERENCE)), "layers": [handle_file(str(layer))], "composite": None}
        if as_page:
            canvas["composite"] = handle_file(str(composite(REFERENCE, layer, layer.parent)))
        # The original: uploaded by the first call (as by the page's first Run), then named by the server's path.
        original = held.get(str(ORIGINAL)) or handle_file(str(ORIGINAL))
        payload = dict(original=original, frames=0, space="w+", strength=1.0, pooling="max", references_1=canvas)
        cpu0, own0, t0 = process_cpu_s(server), time.process_time(), time.perf_counter()
        job = client.submit(api_name="/local_transplant", preview=preview, **payload)
        first, last, images = timed_stream(job, lambda u: u is not None and (isinstance(u, str) or bool(u and u[0])))
        own = time.process_time() - own0
        wait_quiet(server, idle_rate=idle_rate)
        cpu = process_cpu_s(server) - cpu0 - idle_rate * (time.perf_counter() - t0)
        client_cpu.append(own)
        return first, last, images, cpu + own

    return call, client.close, client_cpu


def in_process(model_arg: str | None) -> Callable[[Path, bool], Timing]:
    """``call(layer, preview)`` through ``Op.stream`` in this process, with the app's renderer; the files
    are decoded by the op, as the app's are. Its CPU seconds: this process's until the renderer's idle
    worker is done."""
    from smapgan.app.builder import default_renderer
    from smapgan.app.launcher import load_model
    from smapgan.ops import OpContext, PictureSource, discover

    model = load_model(model_arg)
    op = discover()["local_transplant"]
    renderer = default_renderer(model)

    def call(layer: Path, preview: bool) -> Timing:
        ctx = OpContext(model, renderer, previews=preview)
        cpu0 = time.process_time()
        states = op.stream(ctx, original=str(ORIGINAL), references=[PictureSource(str(REFERENCE), str(layer))],
                           space="w+", frames=0)
        first, last, images = timed_stream(states, lambda s: "image" in s)
        renderer.wait_idle(60)
        return first, last, images, time.process_time() - cpu0

    return call


def rounds_by_area(
    calls: dict[str, Callable[[Path, bool], Timing]], size: int, areas: list[float],
    rounds: int, pause: float, folder: Path,
) -> dict[str, dict[str, Any]]:
    """For each mask area and each way of calling (``calls``: name -> ``call(layer, preview)``, which gives
    its :data:`Timing`): a first edit of the pair (exact, its
    features recorded), then ``rounds`` next edits with and without the preview, rotating which way goes
    first and alternating which preview setting does, each call after ``pause`` seconds."""
    results: dict[str, dict[str, Any]] = {where: {} for where in calls}
    for area in areas:
        for call in calls.values():
            call(square_layer(size, area, 0, folder), True)
        rows = {where: {"preview first": [], "preview exact": [], "exact": [], "images": [], "preview cpu": [],
                        "exact cpu": []} for where in calls}
        for r in range(1, rounds + 1):
            layer = square_layer(size, area, r, folder)
            ways = list(calls.items())
            ways = ways[r % len(ways):] + ways[:r % len(ways)]
            for where, call in ways:
                for preview in ((True, False) if r % 2 else (False, True)):
                    time.sleep(pause)
                    first, last, images, cpu = call(layer, preview)
                    if preview:
                        rows[where]["preview first"].append(first)
                        rows[where]["preview exact"].append(last)
                        rows[where]["images"].append(images)
                        rows[where]["preview cpu"].append(cpu)
                    else:
                        rows[where]["exact"].append(last)
                        rows[where]["exact cpu"].append(cpu)
        for where in calls:
            results[where][f"{area:.0%}"] = rows[where]
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--release", action="store_true", help="the 256/8x8 release layout, random weights")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--areas", default="0.06,0.25")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds before each call")
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
            url = f"http://127.0.0.1:{port}"
            wait_for(url, proc)
            page, close_page, page_cpu = over_http(url, proc.pid, as_page=True)
            every, close_every, every_cpu = over_http(url, proc.pid, as_page=False)
            calls = {"in-process": in_process(model_arg), PAGE: page, EVERY: every}
            results = rounds_by_area(calls, size, areas, args.rounds, args.pause, folder)
            close_page()
            close_every()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    local = results["in-process"]
    name = "release 256/8x8, random weights" if args.release else "bundled model"
    print(f"\n[{name}] next edit, w+ local transplant, medians of {args.rounds} (seconds), the ways in turn, "
          f"each call after {args.pause:g} s")
    print(f"{PAGE}: the original by the server's path, the canvas's background, layer and composite uploaded; "
          f"{EVERY}: gradio_client's way, the original, background and layer uploaded")
    print("CPU s: the call's CPU time (HTTP: the server's, its idle rate subtracted, and the client's; both: "
          "the idle worker's work the edit began included)")
    print(f"{'mask':>5} {'where':>25} {'preview':>8} {'then exact':>10} {'exact alone':>11} {'images':>6} "
          f"{'CPU s, preview':>14} {'CPU s, exact':>12}")
    keys = ("preview first", "preview exact", "exact", "images", "preview cpu", "exact cpu")
    for key in local:
        for where in calls:
            med = [statistics.median(results[where][key][k]) for k in keys]
            print(f"{key:>5} {where:>25} {med[0]:>8.3f} {med[1]:>10.3f} {med[2]:>11.3f} {med[3]:>6.0f} "
                  f"{med[4]:>14.3f} {med[5]:>12.3f}")
        for where in (PAGE, EVERY):
            ratio = [statistics.median(results[where][key][k]) / statistics.median(local[key][k]) for k in keys]
            print(f"{key:>5} {where + ' / in-pr.':>25} {ratio[0]:>7.2f}x {ratio[1]:>9.2f}x {ratio[2]:>10.2f}x {'':>6} "
                  f"{ratio[4]:>13.2f}x {ratio[5]:>11.2f}x")
    print(f"of which the client's (gradio_client), median: {PAGE} {statistics.median(page_cpu):.3f} s, "
          f"{EVERY} {statistics.median(every_cpu):.3f} s")
    print(f"\nload at end {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
