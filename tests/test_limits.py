"""Limits and parameter checks of issue 13 that need no server: the spec's parsing (shared by the app,
the API and the CLI), the fair-queue key, the body limit and the editor's blob store."""

from __future__ import annotations

import time

import pytest

from smapgan.intake import limits
from smapgan.ops import OpError
from smapgan.ops.spec import parse_input


@pytest.mark.parametrize(
    "op_name, name, value, message",
    [
        ("random", "seed", float("inf"), "seed must be a finite number"),
        ("random", "seed", "1e999", "seed must be a finite number"),
        ("random", "seed", "9" * 5000, "seed is 5000 characters long; the limit is 2000"),
        ("random", "seed", [1, 2], "seed"),
        ("random", "seed", {"a": 1}, "seed"),
        ("unaligned_transplant", "box", 5, "box: a box is x0,y0,x1,y1, got 5"),
        ("unaligned_transplant", "box", [1, "x", 2, 3], "box"),
        ("unaligned_transplant", "placements", 5, "placements: expected points"),
        ("unaligned_transplant", "placements", "0.5,0.45;" * 10_000, "the limit is 2000"),
        ("unaligned_transplant", "placements", "0.5,0.45;" * 33, "33 points; the limit is 32"),
        ("unaligned_transplant", "placements", [[0.5, 0.5]] * 33, "33 points; the limit is 32"),
        ("unaligned_transplant", "placements", [[0.5]], "each point is x,y"),
        ("unaligned_transplant", "placements", [5], "placements"),
        ("unaligned_transplant", "space", ["w"], "space must be one of"),
        ("unaligned_transplant", "strength", float("nan"), "strength must be in"),
    ],
)
def test_malformed_settings_are_op_errors(registry, op_name, name, value, message):
    item = registry[op_name].input(name)
    start = time.perf_counter()
    with pytest.raises(OpError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_input(item, value)
    assert time.perf_counter() - start < 0.1


def test_most_placements_allowed_parse(registry):
    item = registry["unaligned_transplant"].input("placements")
    assert len(parse_input(item, "; ".join(["0.5,0.45"] * limits.MAX_POINTS))) == limits.MAX_POINTS


def test_cli_reports_a_malformed_setting_in_one_line(tiny_model_dir, tmp_path, capsys):
    from smapgan.cli import main

    code = main(["edit", "random", "--model", str(tiny_model_dir), "--set", "seed=1e999", "--out", str(tmp_path / "r.png")])
    err = capsys.readouterr().err
    assert code == 2 and "seed must be a finite number" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_client_key_trusts_only_the_proxy_appended_address(monkeypatch):
    from smapgan.app import gate

    class Request:
        headers = {"x-forwarded-for": "6.6.6.6, 1.2.3.4"}

        class client:
            host = "10.0.0.1"

    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setenv(gate.TRUST_FORWARDED_ENV, "0")
    assert gate.client_key(Request()) == "10.0.0.1"
    monkeypatch.setenv(gate.TRUST_FORWARDED_ENV, "1")
    assert gate.client_key(Request()) == "10.0.0.1"  # 10.0.0.1 is no trusted proxy (default: loopback)
    monkeypatch.setenv(gate.TRUSTED_PROXIES_ENV, "10.0.0.0/24")
    assert gate.client_key(Request()) == "1.2.3.4"  # not the client-supplied 6.6.6.6
    Request.headers = {"x-forwarded-for": "6.6.6.6, 1.2.3.4, 10.0.0.7"}  # two proxies of ours: the hop before them
    assert gate.client_key(Request()) == "1.2.3.4"
    Request.headers = {"x-forwarded-for": "2001:db8:1:2:aaaa::1"}
    assert gate.client_key(Request()) == "2001:db8:1:2::/64"  # a whole IPv6 /64 is one client
    monkeypatch.delenv(gate.TRUSTED_PROXIES_ENV)
    monkeypatch.delenv(gate.TRUST_FORWARDED_ENV)
    monkeypatch.setenv("SPACE_ID", "someone/space")  # on a Space: its proxy connects from a private network
    Request.headers = {"x-forwarded-for": "6.6.6.6, 1.2.3.4"}
    assert gate.client_key(Request()) == "1.2.3.4"
    Request.client.host = "8.8.8.8"  # a public peer is never a proxy
    assert gate.client_key(Request()) == "8.8.8.8"
    monkeypatch.setenv(gate.TRUSTED_PROXIES_ENV, "not-an-address")
    with pytest.raises(ValueError, match="SMAPGAN_TRUSTED_PROXIES"):
        gate.client_key(Request())


def test_body_limits_by_route():
    from smapgan.app.gate import body_limit_for

    assert body_limit_for("/gradio_api/call/lerp") == limits.MAX_REQUEST_BODY
    assert body_limit_for("/gradio_api/queue/join") == limits.MAX_REQUEST_BODY
    assert body_limit_for("/gradio_api/component_server") > limits.MAX_BLOB_BYTES
    assert body_limit_for("/gradio_api/upload") == limits.MAX_UPLOAD_BODY  # and Gradio's max_file_size per file
    assert body_limit_for("/gradio_api/upload_progress") is None


def test_blob_store_bounds_and_sessions():
    from smapgan.app.blobs import BlobLimitError, BlobStore

    store = BlobStore()
    with pytest.raises(BlobLimitError, match="layer index"):
        store.put("a", "x", "layer", 100_000_000, b"1")
    with pytest.raises(BlobLimitError, match="unknown canvas part"):
        store.put("a", "x", "thumbnail", None, b"1")
    store.put("a", "x", "background", None, b"bg")
    store.put("a", "x", "layer", 0, b"l0")
    assert store.take("b", "x") is None  # another session's id
    assert store.take("a", "x") == {"background": b"bg", "layers": [b"l0"], "composite": None}
    assert store.take("a", "x") is None  # consumed
    chunk = b"\0" * (limits.MAX_SESSION_BLOB_BYTES // 4)
    for i in range(4):
        store.put("a", f"id{i}", "background", None, chunk)
    with pytest.raises(BlobLimitError, match="would exceed"):
        store.put("a", "id5", "background", None, b"1" * 1024)
    store.put("b", "y", "background", None, b"ok")  # another session is unaffected
    for i in range(limits.MAX_SESSION_BLOBS):
        store.put("c", f"n{i}", "background", None, b"1")
    with pytest.raises(BlobLimitError, match="too many canvas parts"):
        store.put("c", "one-more", "background", None, b"1")


def test_body_limit_refuses_a_long_body_with_or_without_a_length():
    import asyncio

    from smapgan.app.gate import BodyLimit

    read = []

    async def app(scope, receive, send):  # reads the whole body, like a JSON route
        while True:
            message = await receive()
            read.append(len(message.get("body", b"")))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    def run(headers, chunks):
        sent = []
        queue = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

        async def receive():
            return queue.pop(0)

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/gradio_api/call/lerp", "headers": headers}
        asyncio.run(BodyLimit(app)(scope, receive, send))
        return sent[0]["status"]

    chunk = b"x" * (256 * 1024)
    assert run([(b"content-length", str(9 * 2**20).encode())], [chunk]) == 413 and not read  # not read at all
    assert run([], [chunk] * 40) == 413 and sum(read) <= limits.MAX_REQUEST_BODY + len(chunk)  # stopped early
    read.clear()
    assert run([], [chunk] * 2) == 200 and sum(read) == 2 * len(chunk)


def test_cli_refuses_more_references_than_the_spec_takes_before_reading_them(tiny_model_dir, tmp_path, capsys):
    from smapgan.cli import main

    missing = [arg for i in range(5) for arg in ("--reference", str(tmp_path / f"absent{i}.png"))]
    code = main(["edit", "local_transplant", "--model", str(tiny_model_dir), "--original", str(tmp_path / "o.png"),
                 *missing, "--out", str(tmp_path / "r.png")])
    err = capsys.readouterr().err
    assert code == 2 and "references takes at most 3 images, got 5" in err


def test_every_limit_is_documented():
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "limits.md").read_text()
    names = [n for n in vars(limits) if n.isupper()]
    assert len(names) >= 20
    missing = [n for n in names if f"`{n}`" not in doc]
    assert not missing, f"limits not named in docs/limits.md: {missing}"
