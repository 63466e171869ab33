"""A public Space under hostile use, second round (issue 29): the cost of decoding, of refinement,
of clients that leave, of forged addresses, of sessions and of slow connections, over HTTP.

In the style of ``tests/test_reliability_hostile.py`` (whose :class:`Api` client this reuses):
each attack runs through raw HTTP against the app as ``python app.py`` configures it, on
127.0.0.1, with other clients on other loopback addresses. The combined test (round one's attacks
and these, with a well-behaved client) is ``slow``.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.reliability import EXAMPLES, live_app, many_chunks_png, many_scans_jpeg, serving_model_dir
from tests.test_reliability_hostile import Api, api, app  # noqa: F401  (fixtures: the live app)

NEUTRAL = EXAMPLES / "neutral_face.png"


def refine_args(api: Api, original: dict, steps: int = 200) -> list:
    return api.args("reconstruct", original=original, inversion="refined", refine_steps=steps, mode="exact")


def join(api: Api, app, name: str, data: list, session: str) -> httpx.Response:
    """Join the queue as a browser tab does (the session states filled by the server)."""
    index = next(i for i, fn in app.fns.items() if fn.api_name == name)
    states = sum(1 for b in app.fns[index].inputs if getattr(b, "skip_api", False))
    body = {"data": [None] * 2 + data + [None] * (states - 2), "fn_index": index, "session_hash": session,
            "event_data": None, "trigger_id": None}
    return api.http.post(f"{api.url}/gradio_api/queue/join", json=body)


# --------------------------------------------------------------------------- 1: decoding cost
@pytest.mark.parametrize("name, make, message", [
    ("scans.jpg", lambda: many_scans_jpeg(6000, 200), "more than 32 JPEG scans"),
    ("chunks.png", lambda: many_chunks_png(2000, 1_000_000), "more than 20000 PNG chunks"),
])
def test_1_decoding_cost_is_refused_before_decoding(api, name, make, message):
    """A 36 MP progressive JPEG with one tiny scan repeated (each repeat a pass over every pixel),
    a PNG in a million empty IDAT chunks: refused from their headers, in well under a second."""
    payload = api.upload(name, make())
    event, text, took = api.call("reconstruct", api.args("reconstruct", original=payload, mode="exact"))
    assert event == "error" and message in text and name in text, (event, text[:300])
    assert took < 1.5, f"refused after {took:.2f} s"


# --------------------------------------------------------------------------- 2: refinement budget
def leave(client: Api, event_ids: list[str]) -> None:
    """Open and close each call's event stream: the client has gone."""
    for event_id in event_ids:
        with client.http.stream("GET", f"{client.url}/gradio_api/call/reconstruct/{event_id}", timeout=5):
            pass


def test_2_refinement_is_priced_per_address_and_cannot_starve_encoder_edits(app, api, tiny_model_dir, monkeypatch):
    """Two addresses keep their refinement budget full (the tiny model's budgets set to 2.5 jobs at
    once, 3.5 started per minute): the jobs past it get 429 naming the budget, and a third address's
    encoder-only edit of the same op is answered at once, in its own lane."""
    from smapgan import StyleMapGAN
    from smapgan.intake import limits
    from smapgan.latent import invert

    step = getattr(invert, "step_gflop", lambda model: 1.0)  # (main before issue 29 has none: fails below)
    job = 200 * step(StyleMapGAN.from_pretrained(tiny_model_dir))
    monkeypatch.setattr(limits, "MAX_CLIENT_REFINE_GFLOP", 2.5 * job, raising=False)
    monkeypatch.setattr(limits, "MAX_CLIENT_REFINE_GFLOP_PER_MINUTE", 3.5 * job, raising=False)
    clients = [Api(app.local_url, source=a) for a in ("127.0.0.3", "127.0.0.4")]
    originals = [c.upload_file(NEUTRAL) for c in clients]
    accepted: dict[int, list[str]] = {0: [], 1: []}
    codes: dict[int, list[int]] = {0: [], 1: []}
    try:
        for i, client in enumerate(clients):
            for _ in range(4):
                answer = client.submit("reconstruct", refine_args(client, originals[i]))
                codes[i].append(answer.status_code)
                if answer.status_code == 200:
                    accepted[i].append(answer.json()["event_id"])
                else:
                    assert "too much refinement from your address" in answer.text and "GFLOP" in answer.text
        assert codes[0] == codes[1] == [200, 200, 429, 429], codes
        good = Api(app.local_url, source="127.0.0.2")
        event, text, took = good.call("reconstruct", good.args("reconstruct", original=good.upload_file(NEUTRAL),
                                                               mode="exact"), timeout=10)
        assert event == "complete" and took <= 5, (event, took)
        # Per minute: the address that left may start one more job (3 of 3.5 this minute), not two.
        leave(clients[0], accepted[0])
        accepted[0] = []
        time.sleep(1.0)
        again = []
        for _ in range(2):
            answer = clients[0].submit("reconstruct", refine_args(clients[0], originals[0]))
            again.append(answer.status_code)
            if answer.status_code == 200:
                accepted[0].append(answer.json()["event_id"])
        assert again == [200, 429] and "per minute" in answer.text, (again, answer.text)
    finally:
        for i, client in enumerate(clients):
            leave(client, accepted[i])


# --------------------------------------------------------------------------- 3: clients that leave
class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _cpu_over(seconds: float) -> float:
    """Cores this process used over ``seconds`` while the test thread sleeps: the server's work."""
    start_cpu, start = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    return (time.process_time() - start_cpu) / (time.perf_counter() - start)


@pytest.mark.slow
def test_3_work_stops_when_its_client_leaves(tmp_path, one_torch_thread, caplog, monkeypatch):
    """A tab queues three 200-step refinements and closes its event stream once the first runs:
    within a second or two the server is idle (the running one stopped between steps, the queued
    ones never start), the log has one line per departure and no traceback, and others are served."""
    for budget in ("MAX_CLIENT_REFINE_GFLOP", "MAX_CLIENT_REFINE_GFLOP_PER_MINUTE"):  # here: the departures alone
        monkeypatch.setattr(f"smapgan.intake.limits.{budget}", 1e12, raising=False)
    uvicorn_log = _Records()
    with live_app(serving_model_dir(tmp_path)) as app, caplog.at_level("WARNING", logger="smapgan.app.departures"):
        logging.getLogger("uvicorn.error").addHandler(uvicorn_log)  # (uvicorn configures its loggers at start)
        api = Api(app.local_url)
        original = api.upload_file(NEUTRAL)
        leaving = "leaving-tab"
        for _ in range(3):
            assert join(api, app, "reconstruct", refine_args(api, original), leaving).status_code == 200
        with api.http.stream("GET", f"{api.url}/gradio_api/queue/data", params={"session_hash": leaving}) as stream:
            for line in stream.iter_lines():
                if '"progress"' in line and "refining" in line:
                    break  # the first refinement runs: leave
        time.sleep(2.0)
        busy = _cpu_over(2.0)
        later = _cpu_over(3.0)  # the queued refinements have not started either
        # A /call client that leaves while its refinement runs.
        answer = api.submit("reconstruct", refine_args(api, original))
        with api.http.stream("GET", f"{api.url}/gradio_api/call/reconstruct/{answer.json()['event_id']}"):
            time.sleep(2.0)  # it starts at once (nothing else is queued) and runs: leave
        time.sleep(2.0)
        busy_call = _cpu_over(2.0)
        for session in (leaving, "never-seen"):  # a stream for a session that is gone: Gradio raises after responding
            with api.http.stream("GET", f"{api.url}/gradio_api/queue/data", params={"session_hash": session}) as s:
                next(s.iter_lines(), None)
            time.sleep(0.5)
        event, text, took = Api(app.local_url, source="127.0.0.2").call(
            "reconstruct", api.args("reconstruct", original=original, mode="exact"), timeout=30)
    logging.getLogger("uvicorn.error").removeHandler(uvicorn_log)
    print(f"cores busy after the client left: {busy:.2f} (then {later:.2f}; a /call client: {busy_call:.2f})")
    assert busy <= 0.15 and later <= 0.15 and busy_call <= 0.15, (busy, later, busy_call)
    assert event == "complete", text
    noise = [r.getMessage() for r in uvicorn_log.records if r.exc_info or "response already started" in r.getMessage()]
    assert not noise, noise[:3]
    assert "ended after its response started" in caplog.text  # one line each instead


# --------------------------------------------------------------------------- 4: X-Forwarded-For
def test_4_forwarded_for_is_believed_only_from_a_trusted_proxy(app, api, monkeypatch):
    """With SMAPGAN_TRUST_FORWARDED_FOR=1 and the proxy at 127.0.0.9: a client connecting directly
    from 127.0.0.3 with 24 made-up X-Forwarded-For values is one address (8 jobs, the rest 429);
    the proxy's own hops are told apart by the address it appends."""
    monkeypatch.setenv("SMAPGAN_TRUST_FORWARDED_FOR", "1")
    monkeypatch.setenv("SMAPGAN_TRUSTED_PROXIES", "127.0.0.9")
    direct, proxy = Api(app.local_url, source="127.0.0.3"), Api(app.local_url, source="127.0.0.9")
    original = direct.upload_file(NEUTRAL)
    body = json.dumps({"data": refine_args(direct, original, steps=200)})
    ids: list[tuple[Api, str]] = []

    def submit(client: Api, forwarded: str) -> int:
        answer = client.http.post(f"{client.url}/gradio_api/call/reconstruct", content=body,
                                  headers={"content-type": "application/json", "x-forwarded-for": forwarded})
        if answer.status_code == 200:
            ids.append((client, answer.json()["event_id"]))
        return answer.status_code

    monkeypatch.setattr("smapgan.intake.limits.MAX_CLIENT_REFINE_GFLOP", 1e12, raising=False)  # the job caps alone
    try:
        forged = [submit(direct, f"198.51.100.{i % 6}, 203.0.113.{i}") for i in range(24)]
        assert forged.count(200) == 8 and forged.count(429) == 16, forged
        hops = [submit(proxy, f"6.6.6.6, 192.0.2.{i % 2 + 1}") for i in range(8)]
        assert hops.count(200) == 8, hops  # two clients behind the proxy, four jobs each
    finally:
        for client, event_id in ids:  # leave: the jobs end (the departure test shows they stop)
            leave(client, [event_id])


# --------------------------------------------------------------------------- 6: read timeouts
def _trickle(sock: socket.socket, data: bytes, every: float, until: float) -> bytes:
    """Send ``data`` a byte every ``every`` seconds until the server answers or closes (or ``until``):
    what it answered (b"" for a close without an answer, b"open" when still open at ``until``)."""
    sock.settimeout(every)
    for byte in data:
        if time.monotonic() > until:
            return b"open"
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return b""
        try:
            answer = sock.recv(4096)
            while answer:  # the whole answer, up to the close
                more = sock.recv(4096)
                if not more:
                    break
                answer += more
            return answer  # an answer, or b"" when closed
        except socket.timeout:
            continue
        except OSError:
            return b""
    return b"open"


@pytest.mark.slow
def test_6_requests_that_trickle_are_dropped(app, api):
    """Slow headers (a byte every 2 s, or nothing at all) are closed after 10 s; an upload body that
    trickles (a byte a second) gets 408 after its 10 s grace; a normal client is served meanwhile."""
    host, port = api.url.split("//")[1].split(":")
    until = time.monotonic() + 25
    results: dict[str, bytes] = {}

    def headers(name: str) -> None:
        with socket.create_connection((host, int(port))) as sock:
            results[name] = _trickle(sock, b"GET /gradio_api/info HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100, 2.0, until)

    def silent() -> None:
        with socket.create_connection((host, int(port))) as sock:
            sock.settimeout(max(0.1, until - time.monotonic()))
            try:
                results["silent"] = sock.recv(4096)
            except socket.timeout:
                results["silent"] = b"open"

    def body() -> None:
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b"POST /gradio_api/upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                         b"boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\nContent-Disposition: form-data; "
                         b'name="files"; filename="slow.png"\r\n\r\n')
            results["body"] = _trickle(sock, b"\x00" * 100_000, 1.0, until)

    threads = [threading.Thread(target=f, args=a) for f, a in
               [(headers, ("headers1",)), (headers, ("headers2",)), (silent, ()), (body, ())]]
    for thread in threads:
        thread.start()
    served = [httpx.get(api.url + "/gradio_api/info", timeout=10).status_code for _ in range(3) if not time.sleep(2)]
    for thread in threads:
        thread.join(timeout=40)
    print({k: v[:40] for k, v in results.items()})
    assert served == [200] * 3
    assert results["headers1"] == results["headers2"] == results["silent"] == b"", results
    assert results["body"].startswith(b"HTTP/1.1 408") and b"bytes/s" in results["body"], results["body"][:300]


# --------------------------------------------------------------------------- 5: sessions
def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.slow
def test_5_sessions_are_bounded_and_expire(app, api, monkeypatch):
    """1000 one-shot sessions (each joins the queue once, as a new tab does): the server keeps at most
    MAX_SESSIONS (100) at once, drops them once idle (the idle time then set to 2 s), and its RSS
    comes back to within 10% of what it was before them."""
    reconstruct = next(i for i, fn in app.fns.items() if fn.api_name == "reconstruct")
    states = sum(1 for b in app.fns[reconstruct].inputs if getattr(b, "skip_api", False))

    def one_shot(session: str) -> None:
        data = [None] * (len(app.fns[reconstruct].inputs) - states + 2) + [None] * (states - 2)
        body = {"data": data, "fn_index": reconstruct, "session_hash": session, "event_data": None, "trigger_id": None}
        assert api.http.post(f"{api.url}/gradio_api/queue/join", json=body).status_code == 200
        with api.http.stream("GET", f"{api.url}/gradio_api/queue/data", params={"session_hash": session}) as s:
            for line in s.iter_lines():
                if "process_completed" in line:
                    break

    monkeypatch.setattr("smapgan.intake.limits.SESSION_IDLE_S", 2, raising=False)
    for i in range(50):  # the server's own first-use allocations, before the baseline
        one_shot(f"warm-{i}")
    time.sleep(4)
    baseline = _rss_mb()
    monkeypatch.setattr("smapgan.intake.limits.SESSION_IDLE_S", 600, raising=False)
    most = 0
    for i in range(1000):
        one_shot(f"once-{i}")
        if i % 100 == 99:
            most = max(most, len(app.state_holder.session_data))
    peak = _rss_mb()
    monkeypatch.setattr("smapgan.intake.limits.SESSION_IDLE_S", 2, raising=False)
    for _ in range(20):  # bounded wait for the expiry
        time.sleep(1)
        if len(app.state_holder.session_data) == 0:
            break
    time.sleep(1)
    after = _rss_mb()
    print(f"sessions held at most {most}, then {len(app.state_holder.session_data)}; "
          f"RSS {baseline:.0f} -> {peak:.0f} -> {after:.0f} MB")
    assert most <= 100
    assert len(app.state_holder.session_data) == 0
    assert after <= 1.1 * baseline, (baseline, peak, after)


# --------------------------------------------------------------------------- all at once (slow)
@pytest.mark.slow
def test_combined_attacks_of_both_rounds_leave_a_well_behaved_client_served(record_property):
    """``python app.py`` with the bundled model (behind a configured proxy at 127.0.0.1, so that every
    attacker's X-Forwarded-For is ignored) under round one's attacks and these at once: two addresses
    keeping the most refinement queued, a client that joins refinements and leaves, forged
    X-Forwarded-For floods, 50,000-scan JPEGs and million-chunk PNGs, one-shot sessions, 40 slow-header
    connections and 8 trickling uploads. A well-behaved client's encoder-only reconstructs must all
    succeed; p50/p95 and the server's peak RSS are printed and recorded (docs/limits.md)."""
    from tests.reliability import serve_under_attack
    from tests.test_reliability_hostile import OTHER_ADDRESS, round_one_attacks, served_app

    env = {"SMAPGAN_TRUST_FORWARDED_FOR": "1", "SMAPGAN_TRUSTED_PROXIES": "127.0.0.1"}
    with served_app(env=env) as (url, server):
        host, port = url.split("//")[1].split(":")
        stop = threading.Event()
        counts: dict[str, int] = {"refine_accepted": 0, "refine_refused": 0, "left": 0, "forged_refused": 0,
                                  "costly_refused": 0, "sessions": 0, "slow_closed": 0}

        def refine(source: str) -> None:
            client = Api(url, source=source)
            original = client.upload_file(NEUTRAL)
            while not stop.is_set():
                code = client.submit("reconstruct", refine_args(client, original)).status_code
                counts["refine_accepted" if code == 200 else "refine_refused"] += 1
                time.sleep(0.2 if code == 200 else 1.0)

        def leaver() -> None:
            client = Api(url, source="127.0.0.10")
            original = client.upload_file(NEUTRAL)
            while not stop.is_set():
                answer = client.submit("reconstruct", refine_args(client, original))
                if answer.status_code == 200:
                    with client.http.stream("GET", f"{url}/gradio_api/call/reconstruct/{answer.json()['event_id']}"):
                        time.sleep(1.0)
                    counts["left"] += 1
                else:
                    time.sleep(1.0)

        def forged() -> None:
            client = Api(url, source="127.0.0.11")
            original = client.upload_file(NEUTRAL)
            body = json.dumps({"data": client.args("reconstruct", original=original, mode="fast")})
            i = 0
            while not stop.is_set():
                i += 1
                answer = client.http.post(f"{url}/gradio_api/call/reconstruct", content=body, headers={
                    "content-type": "application/json", "x-forwarded-for": f"198.51.100.{i % 250}"})
                counts["forged_refused"] += answer.status_code == 429
                time.sleep(0.1)

        def costly() -> None:
            client = Api(url, source="127.0.0.12")
            files = [client.upload("scans.jpg", many_scans_jpeg(6000, 50_000)),
                     client.upload("chunks.png", many_chunks_png(2000, 4_000_000))]
            while not stop.is_set():
                for payload in files:
                    event, _, _ = client.call("reconstruct", client.args("reconstruct", original=payload, mode="fast"))
                    counts["costly_refused"] += event == "error"

        def sessions() -> None:  # one-shot tabs: each joins once (refused at once: no image) and is never seen again
            client = Api(url, source="127.0.0.13")
            config = httpx.get(url + "/config", timeout=30).json()
            index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "reconstruct")
            data = [None] * len(next(d for d in config["dependencies"] if d["id"] == index)["inputs"])
            i = 0
            while not stop.is_set():
                i += 1
                body = {"data": data, "fn_index": index, "session_hash": f"once-{i}", "event_data": None, "trigger_id": None}
                client.http.post(f"{url}/gradio_api/queue/join", json=body)
                with client.http.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": f"once-{i}"}) as s:
                    for line in s.iter_lines():
                        if "process_completed" in line:
                            break
                counts["sessions"] += 1
                time.sleep(0.05)

        def slow_connections() -> None:
            socks = []
            for i in range(48):
                sock = socket.create_connection((host, int(port)))
                if i < 40:
                    sock.sendall(b"GET /gradio_api/info HTTP/1.1\r\nHost: x\r\n")
                else:
                    sock.sendall(b"POST /gradio_api/upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                                 b"boundary=b\r\nContent-Length: 1000000\r\n\r\n--b\r\n")
                sock.settimeout(0.05)
                socks.append(sock)
            while not stop.is_set() and socks:
                for sock in list(socks):
                    try:
                        sock.sendall(b"a")
                        if sock.recv(1024) == b"":
                            raise OSError
                    except socket.timeout:
                        continue
                    except OSError:
                        pass
                    socks.remove(sock)
                    sock.close()
                    counts["slow_closed"] += 1
                time.sleep(2.0)
            for sock in socks:
                sock.close()

        attackers = [*round_one_attacks(url, stop, counts), lambda: refine("127.0.0.8"), lambda: refine("127.0.0.9"),
                     leaver, forged, costly, sessions, slow_connections]
        good = Api(url, source=OTHER_ADDRESS)
        figures, failures = serve_under_attack(good, server.pid, attackers, stop, settle_s=10, pause_s=1.0)
    figures.update(counts)
    print("combined attack figures (both rounds):", figures)
    for key, value in figures.items():
        record_property(key, value)
    assert not failures, failures[:3]
    assert counts["refine_refused"] > 0 and counts["costly_refused"] > 0 and counts["forged_refused"] > 0, counts
    assert counts["slow_closed"] == 48, counts
    # Bounded, not small: 1.9-2.4 GB with glibc's defaults, which keep freed memory in per-thread arenas
    # (1063 MB against 2146 MB with one arena and fixed thresholds, one run each: docs/limits.md).
    assert figures["peak_rss_mb"] <= 3 * 1024, f"peak RSS {figures['peak_rss_mb']} MB"
    assert figures["p95_s"] < 20, figures
