"""Many users at once (issue 6.2): concurrent gradio_client clients on the served model.

Every client edits its own, distinct images with a mix of ops. There must be no errors, every
result must be the one its own inputs give (computed here, in the test process, with the
reference renderer), and each session's state on the server (its stylemap cache) must hold
only that client's images. Latencies (p50/p95, queue wait included) are printed and attached
to the test report as ``latency_p50_s`` / ``latency_p95_s``.

The full run (20 clients x 25 edits) is ``slow``; the default suite runs 4 clients x 4 edits.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import torch
from PIL import Image

from smapgan import StyleMapGAN
from smapgan.intake import images as imageio
from smapgan.ops import OpContext, discover
from smapgan.render import ReferenceRenderer
from tests.reliability import EXAMPLES, live_app, serving_model_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return serving_model_dir(tmp_path_factory.mktemp("serving"))


@pytest.fixture(scope="module")
def stroke(tmp_path_factory: pytest.TempPathFactory) -> str:
    layer = np.zeros((64, 64, 4), np.uint8)
    layer[12:34, 6:58] = (255, 42, 109, 160)
    path = tmp_path_factory.mktemp("stroke") / "stroke.png"
    Image.fromarray(layer).save(path)
    return str(path)


def edits_for(client: int, images: list[Path], stroke: str, direction: str | None) -> list[tuple[str, dict, dict]]:
    """The distinct edits of one client, on its own two images: (api name, API kwargs, op kwargs)."""
    from gradio_client import handle_file

    original, reference = images[2 * client], images[2 * client + 1]
    edits = [
        ("reconstruct", dict(original=handle_file(str(original))), dict(original=str(original))),
        (
            "local_transplant",
            dict(original=handle_file(str(original)), frames=0, space="w+", strength=1.0, pooling="max",
                 references_1={"background": handle_file(str(reference)), "layers": [handle_file(stroke)], "composite": None}),
            dict(original=str(original), references=[(str(reference), stroke)], frames=0, space="w+", strength=1.0,
                 pooling="max"),
        ),
        ("style_mix", dict(content=handle_file(str(original)), style=handle_file(str(reference)), mix="coarse"),
         dict(content=str(original), style=str(reference), mix="coarse")),
    ]
    if direction is not None:
        edits.append((
            "semantic_edit",
            dict(original={"background": handle_file(str(reference)), "layers": [], "composite": None},
                 direction=direction, strength=1.5),
            dict(original=str(reference), direction=direction, strength=1.5),
        ))
    return edits


def expected_image(model: StyleMapGAN, api: str, values: dict) -> np.ndarray:
    """The op's image computed in this process with the reference renderer."""
    ctx = OpContext(model, ReferenceRenderer(model))
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        if name == "references":
            kwargs[name] = [ctx.picture(image, mask) for image, mask in value]
        elif name in ("original", "content", "style"):
            kwargs[name] = ctx.picture(value)
        else:
            kwargs[name] = value
    found = discover(paths=[])[api]
    with torch.no_grad():
        image = found.run(ctx, **kwargs)[found.outputs[0].name]  # the first output, as the app shows it
    return np.asarray(imageio.tensor_to_image(image), dtype=np.int16)


def first_image(result: Any) -> np.ndarray:
    path = result[0] if isinstance(result, (tuple, list)) else result
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def session_prefixes(demo: Any) -> dict[str, str]:
    """Each live session's prefix for its refined codes, read from Gradio's per-session state on the server."""
    import gradio as gr

    state_ids = [i for i, b in demo.blocks.items() if isinstance(b, gr.State)]
    holder = demo.server_app.state_holder
    prefixes = {}
    for session, state in list(holder.session_data.items()):
        for i in state_ids:
            if i in state.state_data and isinstance(state.state_data[i], str):
                prefixes[session] = state.state_data[i]
    return prefixes


@contextlib.contextmanager
def forwarded_for_trusted() -> Iterator[None]:
    """The app trusts X-Forwarded-For (as behind a Space's proxy) while the block runs."""
    from smapgan.app.gate import TRUST_FORWARDED_ENV

    before = os.environ.get(TRUST_FORWARDED_ENV)
    os.environ[TRUST_FORWARDED_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ[TRUST_FORWARDED_ENV]
        else:
            os.environ[TRUST_FORWARDED_ENV] = before


def run_load(model_dir: Path, stroke: str, clients: int, edits_each: int) -> dict[str, Any]:
    from gradio_client import Client

    model = StyleMapGAN.from_pretrained(model_dir)
    direction = sorted(model.directions)[0] if model.directions else None
    images = sorted(EXAMPLES.glob("*.png"))
    assert len(images) >= 2 * clients, "each client needs two images of its own"
    plans = [edits_for(c, images, stroke, direction) for c in range(clients)]
    latencies: list[float] = []
    errors: list[str] = []
    wrong: list[str] = []
    sessions: list[str] = [""] * clients
    lock = threading.Lock()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the clients and the server share two (busy) cores here
    try:
        expected = [[expected_image(model, api, values) for api, _, values in plan] for plan in plans]
        with forwarded_for_trusted(), live_app(model_dir) as demo:
            start = threading.Barrier(clients)

            def user(c: int) -> None:
                # Each user from an address of its own, as on a public Space behind its proxy: the
                # fair queue caps jobs per address (smapgan.intake.limits.MAX_CLIENT_JOBS), not per server.
                client = Client(demo.local_url, verbose=False, headers={"X-Forwarded-For": f"10.0.0.{c + 1}"})
                sessions[c] = client.session_hash
                start.wait()
                for k in range(edits_each):
                    i = (k + c) % len(plans[c])
                    api, kwargs, _ = plans[c][i]
                    began = time.perf_counter()
                    try:
                        result = client.predict(**kwargs, api_name=f"/{api}")
                    except Exception as exc:  # every failure is counted, none stops the others
                        with lock:
                            errors.append(f"client {c} edit {k} ({api}): {type(exc).__name__}: {exc}")
                        continue
                    took = time.perf_counter() - began
                    diff = np.abs(first_image(result) - expected[c][i])
                    with lock:
                        latencies.append(took)
                        if diff.max() > 2:
                            wrong.append(f"client {c} edit {k} ({api}): max difference {diff.max()}")

            workers = [threading.Thread(target=user, args=(c,)) for c in range(clients)]
            began = time.perf_counter()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            wall = time.perf_counter() - began
            prefixes = session_prefixes(demo)
    finally:
        torch.set_num_threads(threads)

    # Each session keys the codes refined for it under a prefix of its own.
    leaks = [f"client {c}: no session state on the server" for c in range(clients) if not prefixes.get(sessions[c])]
    if len({prefixes.get(s) for s in sessions}) != clients:
        leaks.append("sessions share a prefix")
    return {"latencies": latencies, "errors": errors, "wrong": wrong, "leaks": leaks, "wall": wall,
            # The largest pixel difference between the results of the two most alike clients.
            "discriminative": min(float(np.abs(expected[a][0] - expected[b][0]).max())
                                  for a in range(clients) for b in range(a + 1, clients))}


@pytest.mark.parametrize(
    "clients, edits_each",
    [pytest.param(4, 4, id="4x4"), pytest.param(20, 25, id="20x25", marks=pytest.mark.slow)],
)
def test_concurrent_clients_get_their_own_results(model_dir, stroke, clients, edits_each, record_property):
    outcome = run_load(model_dir, stroke, clients, edits_each)
    latencies = sorted(outcome["latencies"])
    p50, p95 = float(np.percentile(latencies, 50)), float(np.percentile(latencies, 95))
    record_property("latency_p50_s", round(p50, 3))
    record_property("latency_p95_s", round(p95, 3))
    print(f"\n{clients} clients x {edits_each} edits on {model_dir.name}: {len(latencies)} ok in "
          f"{outcome['wall']:.1f} s, p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")
    assert outcome["errors"] == [], outcome["errors"][:5]
    assert len(latencies) == clients * edits_each
    assert outcome["wrong"] == [], outcome["wrong"][:5]
    assert outcome["discriminative"] > 4  # another client's result would fail the tolerance of 2
    assert outcome["leaks"] == [], outcome["leaks"]
