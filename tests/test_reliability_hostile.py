"""A public Space under hostile use (issue 13): every attack of the issue, over HTTP, against a live app.

Rows A-H of the issue, each through raw HTTP (httpx) against ``python app.py``'s configuration on
127.0.0.1 (:func:`tests.reliability.live_app`). Every refusal must come back as one clear line,
well under a second (bounded here with generous margins for a busy 2-core machine), and a normal
edit must still work afterwards. A second client uses another loopback address (127.0.0.2) as
its source, as another user of a public Space would have another address.

The combined load test (the flood of D with the heavy requests of A, E and F, while a
well-behaved client edits) runs ``python app.py`` with the bundled model in a subprocess and is
``slow``.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from smapgan.intake import limits
from tests.reliability import EXAMPLES, bomb_png, live_app, serve_under_attack
from tests.test_headers import ico_pointing_at, tiff_pages

NEUTRAL, HEARTS = (EXAMPLES / f"{n}.png" for n in ("neutral_face", "heart_eyes"))
OTHER_ADDRESS = "127.0.0.2"  # another client's source address (all of 127/8 is loopback on Linux)


class Api:
    """Raw HTTP calls to a live app: upload files, call endpoints, join the queue."""

    def __init__(self, url: str, source: str | None = None) -> None:
        self.url = url.rstrip("/")
        transport = httpx.HTTPTransport(local_address=source) if source else None
        self.http = httpx.Client(timeout=60, transport=transport)

    def params(self, api: str) -> list[dict]:
        """The endpoint's public parameters, in order, as the app's API page lists them."""
        if not hasattr(self, "_info"):
            self._info = self.http.get(f"{self.url}/gradio_api/info").json()["named_endpoints"]
        return self._info["/" + api]["parameters"]

    def args(self, api: str, **values: Any) -> list:
        """Positional data for ``api`` from named values; the rest take the endpoint's defaults."""
        params = self.params(api)
        unknown = set(values) - {p["parameter_name"] for p in params}
        assert not unknown, f"{api} has no parameters {unknown}"
        return [values[p["parameter_name"]] if p["parameter_name"] in values else p["parameter_default"]
                for p in params]

    def body(self, api: str, **fragments: str) -> str:
        """A raw JSON body for ``api``: the named values as JSON text (malformed on purpose), the rest defaults."""
        parts = [fragments.get(p["parameter_name"], json.dumps(p["parameter_default"])) for p in self.params(api)]
        return '{"data": [' + ", ".join(parts) + "]}"

    def upload(self, name: str, data: bytes) -> dict:
        answer = self.http.post(f"{self.url}/gradio_api/upload", files={"files": (name, data, "application/octet-stream")})
        answer.raise_for_status()
        return {"path": answer.json()[0], "meta": {"_type": "gradio.FileData"}, "orig_name": name}

    def upload_file(self, path: Path) -> dict:
        return self.upload(path.name, path.read_bytes())

    def submit(self, api: str, data: list | str) -> httpx.Response:
        body = data if isinstance(data, str) else json.dumps({"data": data})
        return self.http.post(f"{self.url}/gradio_api/call/{api}", content=body,
                              headers={"content-type": "application/json"})

    def result(self, api: str, event_id: str, timeout: float = 60) -> tuple[str, str]:
        """("complete" | "error", the data line) of a submitted call."""
        with self.http.stream("GET", f"{self.url}/gradio_api/call/{api}/{event_id}", timeout=timeout) as answer:
            event = None
            for line in answer.iter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    return event, line.split(":", 1)[1].strip()
        raise AssertionError("the call's stream ended without a result")

    def call(self, api: str, data: list | str, timeout: float = 60) -> tuple[str, str, float]:
        start = time.perf_counter()
        answer = self.submit(api, data)
        if answer.status_code != 200:
            return f"http {answer.status_code}", answer.text, time.perf_counter() - start
        event, text = self.result(api, answer.json()["event_id"], timeout)
        return event, text, time.perf_counter() - start


@pytest.fixture(scope="module")
def app(tiny_model_dir: Path, one_torch_thread):
    with live_app(tiny_model_dir) as demo:
        yield demo


@pytest.fixture(scope="module")
def api(app) -> Api:
    return Api(app.local_url)


def refused_quickly(api: Api, name: str, data: list | str, pattern: str, within: float = 1.5) -> None:
    event, text, took = api.call(name, data)
    assert event in ("error", "http 413", "http 422", "http 429"), (event, text)
    assert pattern in text, text
    assert took < within, f"refused after {took:.2f} s"
    assert "Traceback" not in text and "failed:" not in text


def works(api: Api, payload: dict) -> None:
    event, text, _ = api.call("reconstruct", api.args("reconstruct", original=payload, mode="exact"))
    assert event == "complete", text


def editor(background: dict | None, layers: list[dict] = ()) -> dict:
    return {"background": background, "layers": list(layers), "composite": None}


# --------------------------------------------------------------------------- A: placements
def test_a_placements_are_bounded_before_any_work(api):
    neutral, hearts = api.upload_file(NEUTRAL), api.upload_file(HEARTS)
    args = lambda placements: api.args(  # noqa: E731
        "unaligned_transplant", original=neutral, reference=editor(hearts), box="0.1,0.2,0.9,0.55",
        placements=placements, space="w+", strength=1.0, mode="exact")
    refused_quickly(api, "unaligned_transplant", args("0.5,0.45;" * 10_000), "the limit is")
    refused_quickly(api, "unaligned_transplant", args("0.5,0.45;" * (limits.MAX_POINTS + 1)),
                    f"{limits.MAX_POINTS + 1} points; the limit is {limits.MAX_POINTS}")
    huge = json.dumps({"data": args("0.5,0.45;" * 1_000_000)})  # 9 MB: refused before it is parsed
    refused_quickly(api, "unaligned_transplant", huge, "the limit is")
    event, text, _ = api.call("unaligned_transplant", args("0.5,0.45; 0.3,0.3"))
    assert event == "complete", text


# --------------------------------------------------------------------------- B, C: containers
def test_b_a_long_tiff_chain_is_refused_without_walking_it(api):
    chain = api.upload("pages.tiff", tiff_pages(80_000))
    refused_quickly(api, "reconstruct", api.args("reconstruct", original=chain), f"more than {limits.MAX_FRAMES} frames or pages")
    works(api, api.upload_file(NEUTRAL))


def test_c_an_ico_around_a_huge_png_is_refused_unopened(api):
    ico = api.upload("icon.ico", ico_pointing_at(bomb_png(12000)))
    refused_quickly(api, "reconstruct", api.args("reconstruct", original=ico), "not an image in a format this app can read")
    works(api, api.upload_file(NEUTRAL))


# --------------------------------------------------------------------------- D: fair queue
def test_d_one_client_flooding_cannot_shut_others_out(api, app):
    """66 quick calls from one address: past its cap they get 429; another address is served."""
    neutral, hearts = api.upload_file(NEUTRAL), api.upload_file(HEARTS)
    lerp = lambda frames: api.args("lerp", first=neutral, second=hearts, frames=frames, mode="exact")  # noqa: E731
    answers = [api.submit("lerp", lerp(32)) for _ in range(66)]
    codes = [a.status_code for a in answers]
    assert codes.count(200) <= limits.MAX_CLIENT_JOBS and codes.count(429) >= 66 - limits.MAX_CLIENT_JOBS, codes
    answer = api.submit("lerp", lerp(2))
    assert answer.status_code == 429 and "too many requests from your address" in answer.text
    other = Api(app.local_url, source=OTHER_ADDRESS)
    event, text, took = other.call("reconstruct", other.args("reconstruct", original=other.upload_file(NEUTRAL)))
    assert event == "complete", text
    for answer in answers:  # the flood's accepted calls still complete (and are done before the next test)
        if answer.status_code == 200:
            assert api.result("lerp", answer.json()["event_id"])[0] == "complete"


def test_d_one_session_is_capped_before_its_address(app):
    """A browser tab or gradio_client session: its 5th job while 4 are queued or running gets 429."""
    client = Api(app.local_url, source="127.0.0.6")
    neutral, hearts = client.upload_file(NEUTRAL), client.upload_file(HEARTS)
    lerp = next(i for i, fn in app.fns.items() if fn.api_name == "lerp")
    session = "one-tab"
    data = [None, None, *client.args("lerp", first=neutral, second=hearts, frames=32, mode="exact"), None]
    assert len(data) == len(app.fns[lerp].inputs)  # the states (cache, session; inversion) are None
    body = {"data": data, "fn_index": lerp, "session_hash": session, "event_data": None, "trigger_id": None}
    answers = [client.http.post(f"{client.url}/gradio_api/queue/join", json=body) for _ in range(6)]
    codes = [a.status_code for a in answers]
    assert codes[: limits.MAX_SESSION_JOBS] == [200] * limits.MAX_SESSION_JOBS and 429 in codes, codes
    assert "too many requests from you" in next(a.text for a in answers if a.status_code == 429)
    extra = dict(body, data=[*data, "extra"], session_hash="another-tab")
    answer = client.http.post(f"{client.url}/gradio_api/queue/join", json=extra)
    public = len(client.params("lerp"))
    assert answer.status_code == 422 and f"takes at most {public} values, got {len(data) + 1}" in answer.text
    # Trailing inputs left out take their defaults (callers written before a setting was added).
    short = dict(body, data=[None, None, neutral, hearts, 2], session_hash="third-tab")
    answer = client.http.post(f"{client.url}/gradio_api/queue/join", json=short)
    assert answer.status_code == 200, answer.text
    done = 0
    with client.http.stream("GET", f"{client.url}/gradio_api/queue/data", params={"session_hash": session}) as s:
        for line in s.iter_lines():
            if line.startswith("data:") and '"process_completed"' in line:
                assert json.loads(line[5:])["success"], line
                done += 1
                if done == codes.count(200):
                    break


# --------------------------------------------------------------------------- E: layers
def test_e_editor_layers_and_pixels_are_bounded(api):
    grin = api.upload_file(EXAMPLES / "grinning.png")
    big = api.upload("big_layer.png", bomb_png(6000))  # 36 megapixels, a few KB
    edit = lambda value: api.args("semantic_edit", original=value, direction="demo", strength=1.5, mode="exact")  # noqa: E731
    refused_quickly(api, "semantic_edit", edit(editor(grin, [big] * 16)),
                    f"16 layers; the limit is {limits.MAX_LAYERS}")
    refused_quickly(api, "semantic_edit", edit(editor(grin, [big] * limits.MAX_LAYERS)),
                    "decoding budget", within=10)
    event, text, _ = api.call("semantic_edit", edit(editor(grin)))
    assert event == "complete", text


# --------------------------------------------------------------------------- F: private handlers
def test_f_no_handler_runs_outside_the_queue(app, api):
    """Every event that takes inputs goes through the queue (and its caps); the preview, called by
    fn_index through /queue/join with hostile files, refuses them at once."""
    import gradio as gr

    # Outside the queue only events whose inputs cannot carry a user's file: gr.Examples' loader (a row
    # index), Run's status steps and the frame preview (the session's own results and a number),
    # the inversion's stop button, the model switch (a name: it shows a model in memory, never loads
    # one). Their work is constant and small, whatever a client sends.
    carries_files = (gr.Image, gr.ImageEditor, gr.File, gr.Gallery, gr.ImageSlider, gr.Video, gr.Audio)
    unqueued = [fn.name for fn in app.fns.values() if not fn.queue and any(isinstance(b, carries_files) for b in fn.inputs)]
    assert not unqueued, f"events that decode files outside the queue: {unqueued}"
    for fn in app.fns.values():
        if not fn.queue:
            assert all(isinstance(b, (gr.State, gr.Slider, gr.Dataset, gr.Button, gr.Dropdown)) for b in fn.inputs), fn.name
    preview = next(i for i, fn in app.fns.items() if fn.inputs and isinstance(fn.inputs[0], gr.Image)
                   and any(t[1] == "upload" for t in fn.targets))
    files = [api.upload("icon.ico", ico_pointing_at(bomb_png(12000))), api.upload("pages.tiff", tiff_pages(40_000))]
    session = "hostile-preview"
    start = time.perf_counter()
    ids = []
    for i in range(6):
        answer = api.http.post(f"{api.url}/gradio_api/queue/join", json={
            "data": [files[i % 2]], "fn_index": preview, "session_hash": f"{session}-{i}", "event_data": None,
            "trigger_id": app.fns[preview].targets[0][0]})
        assert answer.status_code == 200, answer.text
        ids.append(answer.json()["event_id"])
    for i in range(6):
        with api.http.stream("GET", f"{api.url}/gradio_api/queue/data", params={"session_hash": f"{session}-{i}"}) as s:
            for line in s.iter_lines():
                if line.startswith("data:") and '"process_completed"' in line:
                    message = json.loads(line[5:])
                    # Refused either as an error or, in the browser's status line, as its message
                    # with no image shown.
                    assert not message["success"] or message["output"]["data"][0] is None, message
                    assert "not an image in a format" in line or "frames or pages" in line, line
                    break
    assert time.perf_counter() - start < 5


# --------------------------------------------------------------------------- G: editor blobs
def blob(api: Api, component: int, session: str, blob_id: str, kind: str, index: Any, data: bytes) -> httpx.Response:
    fields = {"type": kind, "index": str(index), "id": blob_id, "component_id": str(component), "session_hash": session,
              "fn_name": "accept_blobs"}
    return api.http.post(f"{api.url}/gradio_api/component_server", data=fields,
                         files={"blob": ("blob", data, "application/octet-stream")})


def test_g_editor_blobs_are_bounded_and_private(app, api):
    import gradio as gr

    component = next(i for i, b in app.blocks.items() if isinstance(b, gr.ImageEditor))
    small = io.BytesIO()
    Image.open(HEARTS).save(small, format="PNG")
    answer = blob(api, component, "attacker", "x", "layer", 100_000_000, b"\x00" * 4096)
    assert answer.status_code in (400, 413) and "layer index" in answer.text, answer.text
    ten = b"\x00" * (10 * 2**20)
    codes = [blob(api, component, "attacker", f"id{i}", "background", "null", ten).status_code for i in range(30)]
    assert codes.count(200) <= limits.MAX_SESSION_BLOB_BYTES // len(ten) and codes[-1] == 413, codes
    # A blob stored by one session is not usable by another's edit.
    assert blob(api, component, "owner", "shared", "background", "null", small.getvalue()).status_code == 200
    shared = {"id": "shared", "background": None, "layers": [], "composite": None}
    event, text, _ = api.call("semantic_edit", api.args("semantic_edit", original=shared, direction="demo", strength=1.5))
    assert event == "error" and "needs an image" in text, (event, text)


# --------------------------------------------------------------------------- H: parameters
@pytest.mark.parametrize(
    "name, data, message",
    [
        ("reconstruct", {"original": "{original}", "mode": '"turbo"'}, "mode must be one of"),
        ("random", {"seed": "1e999"}, "seed must be a finite number"),
        ("random", {"seed": '"' + "9" * 5000 + '"'}, "seed is 5000 characters long; the limit is 2000"),
        ("unaligned_transplant", {"original": "{original}", "reference": "{reference}", "box": "5"}, "box: a box is"),
        ("unaligned_transplant", {"original": "{original}", "reference": "{reference}", "placements": "5"},
         "placements: expected points"),
        ("reconstruct", None, "takes at most"),  # every parameter and one more
        ("random", {"seed": "[1, 2]"}, "seed"),
    ],
)
def test_h_malformed_parameters_are_clear_errors_not_plugin_bugs(api, caplog, name, data, message):
    original = json.dumps(api.upload_file(NEUTRAL))
    reference = json.dumps(editor(api.upload_file(HEARTS)))
    if data is None:
        body = json.dumps({"data": [*api.args(name, original=json.loads(original)), 3]})
    else:
        fragments = {k: v.replace("{original}", original).replace("{reference}", reference) for k, v in data.items()}
        body = api.body(name, **fragments)
    with caplog.at_level("ERROR", logger="smapgan.app.builder"):
        refused_quickly(api, name, body, message)
    assert not [r for r in caplog.records if "failed" in r.getMessage()], "a malformed input was logged as a plugin bug"


# --------------------------------------------------------------------------- all at once (slow)
@contextlib.contextmanager
def served_app(*extra: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """``python app.py`` (the bundled model) in a subprocess on a free loopback port: (url, process)."""
    import os

    from tests.reliability import free_port

    port = free_port()
    root = Path(__file__).resolve().parent.parent
    server = subprocess.Popen([sys.executable, "app.py", "--port", str(port), *extra], cwd=root,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(url + "/gradio_api/info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline and server.poll() is None, "the app did not start"
            time.sleep(0.5)
        yield url, server
    finally:
        server.terminate()
        server.wait(timeout=30)


def round_one_attacks(url: str, stop: threading.Event, counts: dict[str, int]) -> list[Callable[[], None]]:
    """The attackers of issue 13, each a loop until ``stop``, from its own address: the flood of D
    (66 lerp calls kept submitted), A (the most placements allowed, and a 9 MB string), E (editor
    values of 36-megapixel layers), F (40-megapixel and ICO previews through /queue/join) and G
    (10 MB canvas blobs from ever new sessions, absurd layer indices)."""
    config = httpx.get(url + "/config", timeout=30).json()
    images = {c["id"] for c in config["components"] if c.get("type") == "image"}
    preview = next(d["id"] for d in config["dependencies"]
                   if any(t[1] == "upload" and t[0] in images for t in d["targets"]))
    preview_target = next(d["targets"][0][0] for d in config["dependencies"] if d["id"] == preview)
    editor_id = next(c["id"] for c in config["components"] if c.get("type") == "imageeditor")
    for key in ("flood_submitted", "flood_refused", "heavy"):
        counts.setdefault(key, 0)

    def flood() -> None:
        client = Api(url, source="127.0.0.3")
        neutral, hearts = client.upload_file(NEUTRAL), client.upload_file(HEARTS)
        while not stop.is_set():
            for _ in range(66):
                code = client.submit("lerp", client.args("lerp", first=neutral, second=hearts, frames=32, mode="fast")).status_code
                counts["flood_submitted"] += 1
                counts["flood_refused"] += code == 429
            time.sleep(0.2)

    def heavy_a_e() -> None:
        client = Api(url, source="127.0.0.4")
        neutral, hearts = client.upload_file(NEUTRAL), client.upload_file(HEARTS)
        big = client.upload("layer.png", bomb_png(6000))
        most = "; ".join(["0.5,0.45"] * limits.MAX_POINTS)
        while not stop.is_set():
            client.call("unaligned_transplant", client.args(
                "unaligned_transplant", original=neutral, reference=editor(hearts), box="0.1,0.2,0.9,0.55",
                placements=most, mode="fast"))
            client.call("unaligned_transplant", json.dumps({"data": client.args(
                "unaligned_transplant", original=neutral, reference=editor(hearts), box="",
                placements="0.5,0.45;" * 1_000_000, mode="fast")}))
            client.call("semantic_edit", client.args(
                "semantic_edit", original=editor(neutral, [big] * limits.MAX_LAYERS), direction="", strength=1.5,
                mode="fast"))
            counts["heavy"] += 3

    def heavy_f() -> None:
        client = Api(url, source="127.0.0.5")
        large = client.upload("large.png", bomb_png(6300))  # 39.7 megapixels: allowed, decoded for the preview
        ico = client.upload("icon.ico", ico_pointing_at(bomb_png(12000)))
        i = 0
        while not stop.is_set():
            i += 1
            for j, payload in enumerate((large, ico, large)):
                client.http.post(f"{url}/gradio_api/queue/join", json={
                    "data": [payload], "fn_index": preview, "session_hash": f"f{i}-{j}", "event_data": None,
                    "trigger_id": preview_target})
            counts["heavy"] += 3
            time.sleep(1.0)

    def blobs_g() -> None:
        client = Api(url, source="127.0.0.7")
        ten = b"\0" * (10 * 2**20)
        i = 0
        while not stop.is_set():
            i += 1
            for j in range(6):  # past the session's 48 MiB: refused; many sessions: the oldest dropped
                blob(client, editor_id, f"g{i}", f"b{j}", "background", "null", ten)
            blob(client, editor_id, f"g{i}", "x", "layer", 100_000_000, b"\0" * 4096)
            counts["heavy"] += 7

    return [flood, heavy_a_e, heavy_f, blobs_g]


@pytest.mark.slow
def test_combined_attacks_leave_a_well_behaved_client_served(tmp_path, record_property):
    """``python app.py`` with the bundled model, under :func:`round_one_attacks` from four other
    addresses for about a minute. A well-behaved client's reconstructs (another address) must all
    succeed; its p50/p95 latency and the server's peak RSS are printed and recorded (docs/limits.md)."""
    with served_app() as (url, server):
        stop = threading.Event()
        counts: dict[str, int] = {}
        good = Api(url, source=OTHER_ADDRESS)
        figures, failures = serve_under_attack(good, server.pid, round_one_attacks(url, stop, counts), stop, settle_s=5)
    figures.update(counts)
    print("combined attack figures:", figures)
    for key, value in figures.items():
        record_property(key, value)
    assert not failures, failures[:3]
    assert counts["flood_submitted"] >= 60 and counts["flood_refused"] > 0
    assert figures["peak_rss_mb"] <= 2 * 1024, f"peak RSS {figures['peak_rss_mb']} MB"
    assert figures["p95_s"] < 20, figures
