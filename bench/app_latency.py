"""Latency of one edit through the app's HTTP API, as a user's script sees it (issue 5).

Starts ``python app.py`` (the bundled default model unless ``--model``) in a subprocess on a free
loopback port, connects one ``gradio_client.Client`` and times ``--calls`` local-transplant
calls of an already-uploaded pair (the first ``--warmup`` calls are not counted: they encode the
pair and build the oneDNN primitives). Each call is a full round trip: the request joins the
queue, the server runs the op, the result PNG is written and downloaded by the client. Prints
p50/p95/min, the machine, threads and torch version.

Then the op alone, in this process without HTTP: ours (the app's renderer, the pair cached, as in
the app's session) beside a naive baseline (the reference renderer ``smapgan.render.Renderer``,
plain ``model.encode``/``model.decode``, nothing cached), so the HTTP share and what the caches
save are both visible. gradio_client's own cost depends on how it is set up: by default httpx
builds a TLS context for each of its requests, so the client setups are timed side by side.

    python bench/app_latency.py                 # bundled model, 40 calls per client setup
    python bench/app_latency.py --model DIR --calls 20
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from machine import cpu_name
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "smapgan" / "assets" / "examples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stroke_layer(size: int, folder: Path) -> Path:
    """A brush layer like the sketch pad's: a translucent band over the eyes (about 20% of the image)."""
    layer = np.zeros((size, size, 4), np.uint8)
    layer[int(size * 0.25):int(size * 0.5), int(size * 0.1):int(size * 0.9)] = (255, 42, 109, 160)
    path = folder / "stroke.png"
    Image.fromarray(layer).save(path)
    return path


def wait_for(url: str, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"app.py exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/config", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"app.py did not answer at {url} within {timeout:.0f} s")


# Per call, gradio_client 2.x makes: 3 uploads (original, reference, brush layer), queue/join,
# the SSE stream, and the download of the result.
REQUESTS = 6
CLIENT_LABELS = {
    "default": "Client(url)",
    "shared-tls": "Client(url, ssl_verify=ssl.create_default_context())",
    "no-verify": "Client(url, ssl_verify=False)",
}


def client_tls(setup: str) -> Any:
    """The ``ssl_verify`` argument of a client setup.

    httpx builds a TLS context (parsing certifi's CA bundle, ~20 ms on this CPU) for every
    request gradio_client makes, even to an http:// URL; handing it one context built once
    keeps certificate checks and removes that cost.
    """
    if setup == "default":
        return True
    if setup == "shared-tls":
        import ssl

        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    if setup == "no-verify":
        return False
    raise SystemExit(f"unknown client setup {setup!r} (choose from {', '.join(CLIENT_LABELS)})")


def tls_context_ms() -> float:
    import ssl

    import certifi

    t0 = time.perf_counter()
    for _ in range(10):
        ssl.create_default_context(cafile=certifi.where())
    return (time.perf_counter() - t0) * 100


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def in_process_ms(model_arg: str | None, original: Path, reference: Path, stroke: Path, calls: int,
                  naive: bool) -> list[float]:
    """The same op in this process, no HTTP: the app's renderer and its caches, or (``naive``)
    the reference renderer with nothing cached (every call encodes both images and decodes in full)."""
    from smapgan.app.builder import default_renderer
    from smapgan.app.launcher import load_model
    from smapgan.ops import OpContext, discover
    from smapgan.render import ReferenceRenderer

    model = load_model(model_arg)
    op = discover()["local_transplant"]
    renderer = default_renderer(model)
    times = []
    with torch.no_grad():
        for i in range(calls + 2):
            if naive:
                renderer = ReferenceRenderer(model)
            ctx = OpContext(model, renderer)
            t0 = time.perf_counter()
            op.run(ctx, original=ctx.picture(str(original)), references=[ctx.picture(str(reference), str(stroke))],
                   space="w+", strength=1.0, pooling="max", frames=0)
            if i >= 2:
                times.append((time.perf_counter() - t0) * 1e3)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="model folder or Hub id (default: the bundled model)")
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clients", default="default,shared-tls",
                        help="comma list of client setups to time: default (Client(url)), shared-tls "
                             "(Client(url, ssl_verify=<one ssl.SSLContext>)), no-verify (ssl_verify=False)")
    parser.add_argument("--original", default=str(EXAMPLES / "neutral_face.png"))
    parser.add_argument("--reference", default=str(EXAMPLES / "heart_eyes.png"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from gradio_client import Client, handle_file

    port = free_port()
    cmd = [sys.executable, str(ROOT / "app.py"), "--port", str(port)]
    if args.model:
        cmd += ["--model", args.model]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), GRADIO_ANALYTICS_ENABLED="False")
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        stroke = stroke_layer(Image.open(args.reference).size[0], Path(tmp))
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for(url, proc)
            payload = dict(
                original=handle_file(args.original), frames=0, space="w+", strength=1.0, pooling="max",
                references_1={"background": handle_file(args.reference), "layers": [handle_file(str(stroke))],
                              "composite": None},
            )
            for setup in args.clients.split(","):
                client = Client(url, verbose=False, ssl_verify=client_tls(setup))
                times = []
                for i in range(args.warmup + args.calls):
                    t0 = time.perf_counter()
                    result = client.predict(api_name="/local_transplant", **payload)
                    if i >= args.warmup:
                        times.append((time.perf_counter() - t0) * 1e3)
                results[setup] = times
                client.close()
            out = result[0] if isinstance(result, (tuple, list)) else result
            size = Image.open(out["path"] if isinstance(out, dict) else out).size
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        n = max(5, args.calls // 2)
        base = in_process_ms(args.model, Path(args.original), Path(args.reference), stroke, n, naive=True)
        ours = in_process_ms(args.model, Path(args.original), Path(args.reference), stroke, n, naive=False)

    b50 = percentile(base, 50)
    print(f"machine: {cpu_name()}, {os.cpu_count()} cpus, {args.threads} threads, torch {torch.__version__}, "
          f"python {platform.python_version()}, load {os.getloadavg()[0]:.2f}")
    print(f"model: {args.model or 'bundled default'}; output {size[0]}x{size[1]}; {args.calls} calls after "
          f"{args.warmup} warm-up; {REQUESTS} HTTP requests per call")
    print(f"tls context build (httpx does one per request unless given one): {tls_context_ms():.1f} ms")
    print("| client | p50 | p95 | min | target p50 <= 100 ms |")
    print("|---|---|---|---|---|")
    for setup, times in results.items():
        p50 = percentile(times, 50)
        print(f"| {CLIENT_LABELS[setup]} | {p50:.1f} ms | {percentile(times, 95):.1f} ms | {min(times):.1f} ms | "
              f"{'met' if p50 <= 100 else 'missed'} |")
    print(f"the op alone, in-process: ours (app renderer, pair cached) p50 {percentile(ours, 50):.1f} ms; "
          f"naive (reference renderer, nothing cached) p50 {b50:.1f} ms ({b50 / percentile(ours, 50):.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
