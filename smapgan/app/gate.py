"""What stands between the public network and Gradio's routes: request limits and a fair queue.

Gradio (6.x) offers a queue size (``max_size``), per-event ``concurrency_limit``/``concurrency_id``
and ``max_file_size``, and nothing else this app needs against hostile use. So this module adds
:class:`BodyLimit` (a body refused past its limit before it is read, one that trickles dropped),
:func:`install_fair_queue` (no session or client address holds more than its share of the queue;
refinement priced in GFLOP and run in a lane of its own), :func:`client_key` (the address those
caps count) and :func:`current_session` (whose canvas blobs a request may use). Each is tested in
``tests/test_reliability_hostile.py``; docs/limits.md lists the limits and what a deployer sets.

The Gradio internals this needs (the queue's ``push`` and its jobs, the request being served) are
reached through :mod:`.gradio_internals`, which says why for each; if a Gradio upgrade removes one,
:func:`install_fair_queue` raises at startup rather than serving without the caps.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import time
from collections import Counter, deque
from typing import Any, Awaitable, Callable

from ..intake import limits
from . import gradio_internals as internals

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

TRUST_FORWARDED_ENV = "SMAPGAN_TRUST_FORWARDED_FOR"
"""Set to 1 behind a proxy that sets X-Forwarded-For (a Hugging Face Space: set when SPACE_ID is)."""
TRUSTED_PROXIES_ENV = "SMAPGAN_TRUSTED_PROXIES"
"""Comma-separated addresses or networks of the proxies whose X-Forwarded-For entries are believed
(default: loopback; on a Space, loopback and the private networks its proxy connects from)."""
LOOPBACK = "127.0.0.0/8,::1/128"
PRIVATE = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"


def _trust_forwarded() -> bool:
    return os.environ.get(TRUST_FORWARDED_ENV, "1" if os.environ.get("SPACE_ID") else "0") == "1"


def trusted_proxies() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks of :data:`TRUSTED_PROXIES_ENV` (a malformed entry is a clear error at the first request)."""
    default = f"{LOOPBACK},{PRIVATE}" if os.environ.get("SPACE_ID") else LOOPBACK
    text = os.environ.get(TRUSTED_PROXIES_ENV, default)
    try:
        return [ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise ValueError(f"{TRUSTED_PROXIES_ENV}: {exc}") from None


def _is_trusted(address: str, proxies: list[Any]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_key(request: Any) -> str:
    """The client's address: the peer's or, when the peer is a trusted proxy, the address it saw.

    X-Forwarded-For is read only from a peer in :func:`trusted_proxies` (any client can write the
    header), and from the right: each trusted proxy appends the address it was connected from, so
    the first entry from the right that is not itself a trusted proxy is the client. Entries to its
    left were written by the client and could be anything.
    """
    client = getattr(request, "client", None)
    peer = getattr(client, "host", None) or "unknown"
    if _trust_forwarded():
        proxies = trusted_proxies()
        headers = getattr(request, "headers", None) or {}
        forwarded = [part.strip() for part in headers.get("x-forwarded-for", "").split(",") if part.strip()]
        if forwarded and _is_trusted(peer, proxies):
            for hop in reversed(forwarded):
                if not _is_trusted(hop, proxies):
                    return _network(hop)
            return _network(forwarded[0])
    return _network(peer)


def _network(address: str) -> str:
    """An IPv6 address as its /64 (one subscriber gets a whole /64 to pick addresses from)."""
    if ":" not in address:
        return address
    try:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    except ValueError:
        return address


# ------------------------------------------------------------------------------ body limit
_JSON_CALLS = ("/queue/join", "/call/", "/run/", "/api/")


def body_limit_for(path: str) -> int | None:
    """The largest body accepted on ``path`` (None: Gradio's own limit, e.g. file uploads)."""
    if path.endswith("/component_server") or path.endswith("/component_server/"):
        return limits.MAX_BLOB_BYTES + 64 * 1024  # one canvas blob and its form fields
    if path.rstrip("/").endswith("/upload"):
        return limits.MAX_UPLOAD_BODY  # each file is still held to MAX_BYTES by Gradio (max_file_size)
    if any(part in path for part in _JSON_CALLS):
        return limits.MAX_REQUEST_BODY
    return None


class BodyLimit:
    """ASGI middleware: refuse an over-long POST body with HTTP 413 before the app reads it (Gradio parses
    any body: a 9 MB placements string took 4 s and +250 MB before the op saw it), and drop a body that
    trickles (HTTP 408, connection closed: :data:`limits.MIN_BODY_RATE`)."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        limit = body_limit_for(scope.get("path", ""))
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if limit is not None and declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(send, 413, f"the request body is {int(declared)} bytes; the limit is {limit}")
            return
        # Count what arrives, stop reading past the limit (no or a false length), and drop a body
        # that trickles: after the grace period it must average MIN_BODY_RATE, and never pause longer.
        seen = 0
        refused: tuple[int, str] | None = None
        start = time.monotonic()
        complete = False

        async def counted() -> dict[str, Any]:
            nonlocal seen, refused, complete
            if complete:  # the body is in: later reads only wait for the client to disconnect
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), limits.BODY_GRACE_S)
            except asyncio.TimeoutError:
                refused = (408, f"the request body paused for over {limits.BODY_GRACE_S:.0f} s; send it at once")
                raise _Refused() from None
            if message["type"] == "http.request":
                complete = not message.get("more_body", False)
                seen += len(message.get("body", b""))
                elapsed = time.monotonic() - start
                if limit is not None and seen > limit:
                    refused = (413, f"the request body is over the limit of {limit} bytes")
                    raise _Refused()
                if message.get("more_body") and elapsed > limits.BODY_GRACE_S and seen < limits.MIN_BODY_RATE * elapsed:
                    refused = (408, f"the request body arrives at {seen / elapsed:.0f} bytes/s; "
                                    f"the least accepted is {limits.MIN_BODY_RATE} after {limits.BODY_GRACE_S:.0f} s")
                    raise _Refused()
            return message

        try:
            await self.app(scope, counted, send)
        except Exception:
            if refused is None:
                raise
            await _refuse(send, *refused, close=True)


class _Refused(Exception):
    pass


async def _refuse(send: Send, status: int, detail: str, close: bool = False) -> None:
    """Answer ``status`` with ``detail``; ``close``: and close the connection (a body left unread)."""
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    try:
        await send({"type": "http.response.start", "status": status,
                    "headers": headers + ([(b"connection", b"close")] if close else [])})
        await send({"type": "http.response.body", "body": body})
    except Exception:  # a response had already started: nothing more to say
        pass


def launch_kwargs() -> dict[str, Any]:
    """Keyword arguments for ``Blocks.launch`` that put :class:`BodyLimit` in front of the app (and, in
    front of it, :class:`.departures.QuietDepartures`)."""
    from starlette.middleware import Middleware

    from .departures import QuietDepartures

    middleware = [Middleware(QuietDepartures), Middleware(BodyLimit)]
    return {"max_file_size": limits.MAX_BYTES, "app_kwargs": {"middleware": middleware}}


# ------------------------------------------------------------------------------ fair queue
def complete_values(data: list[Any], inputs: list[Any]) -> list[Any] | None:
    """``data`` as one value per input of the event, or None when it has more values than the API takes.

    A client sends the public inputs only, in order (Gradio fills the session states itself only
    when *every* public input is sent); inputs it leaves out at the end take their component's
    default, so that a settings input added later (e.g. the inversion control) does not break
    callers written before it. Session states are always None here: Gradio fills them.
    """
    if len(data) == len(inputs):
        return list(data)
    public = [block for block in inputs if not internals.is_session_state(block)]
    if len(data) > len(public):
        return None
    given = iter(data)
    out: list[Any] = []
    for block in inputs:
        if internals.is_session_state(block):
            out.append(None)
            continue
        value = next(given, _MISSING)
        out.append(getattr(block, "value", None) if value is _MISSING else value)
    return out


_MISSING = object()


REFINE_LANE = "smapgan-refinement"
"""The queue lane (Gradio concurrency id) every refinement job runs in, whatever its event."""


class RefineBudget:
    """Refinement work (GFLOP) per client address: queued or running at once, and started per minute."""

    def __init__(self) -> None:
        self.held: dict[str, tuple[str, float]] = {}  # by event id: (client, GFLOP) of jobs queued or running
        self.pending: dict[int, tuple[str, float]] = {}  # jobs admitted, not yet in the queue (by ticket)
        self.started: deque[tuple[float, str, float]] = deque()  # (time, client, GFLOP) admitted, last minute
        self._tickets = 0

    def refusal(self, client: str, cost: float, live: Callable[[str], bool], now: float) -> str | None:
        """Why a job of ``cost`` GFLOP from ``client`` is refused now, or None (then it is charged by :meth:`admit`)."""
        for key in [k for k in self.held if not live(k)]:
            del self.held[key]
        while self.started and self.started[0][0] < now - 60:
            self.started.popleft()
        held = sum(c for who, c in [*self.held.values(), *self.pending.values()] if who == client)
        if held and held + cost > limits.MAX_CLIENT_REFINE_GFLOP:
            return (f"too much refinement from your address: {held:.0f} GFLOP are queued or running and this job is "
                    f"{cost:.0f} (steps x images x the model's GFLOP per step); the limit is "
                    f"{limits.MAX_CLIENT_REFINE_GFLOP} at once; wait for one to finish")
        recent = [(t, c) for t, who, c in self.started if who == client]
        if recent and sum(c for _, c in recent) + cost > limits.MAX_CLIENT_REFINE_GFLOP_PER_MINUTE:
            wait = max(1, int(recent[0][0] + 60 - now) + 1)
            return (f"too much refinement from your address: the limit is {limits.MAX_CLIENT_REFINE_GFLOP_PER_MINUTE} "
                    f"GFLOP started per minute (steps x images x the model's GFLOP per step); try again in {wait} s "
                    "or with fewer steps")
        return None

    def admit(self, client: str, cost: float, now: float) -> int:
        """Charge a job about to be queued (at once, so that concurrent calls see it); its ticket."""
        self._tickets += 1
        self.pending[self._tickets] = (client, cost)
        self.started.append((now, client, cost))
        return self._tickets

    def queued(self, ticket: int, event_id: str | None) -> None:
        """The job of ``ticket`` is in the queue as ``event_id`` (None: it was not queued, nothing held)."""
        charge = self.pending.pop(ticket, None)
        if charge is not None and event_id is not None:
            self.held[event_id] = charge


def install_fair_queue(demo: Any, price: Callable[[Any, list[Any]], float] | None = None) -> None:
    """Wrap ``demo``'s queue so that no session or client address holds more than its share.

    The queue's ``push`` is wrapped: Gradio has no per-client cap, and one inside the handler would come
    too late (a job is in the queue before it runs). A session past ``limits.MAX_SESSION_JOBS`` queued or
    running, or an address past ``limits.MAX_CLIENT_JOBS``, gets HTTP 429; more values than the event
    takes, HTTP 422 (:func:`complete_values`).
    ``price(event, values)`` is a job's refinement work in GFLOP (0: none): such a job is charged
    to its address's :class:`RefineBudget` (HTTP 429 past it) and runs in :data:`REFINE_LANE`.
    """
    from fastapi import HTTPException

    queue = internals.event_queue(demo)
    joining: Counter[str] = Counter()  # pushes under way (not yet in the queue), by key
    budget = RefineBudget()

    def wrap(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def push(body: Any, request: Any, username: Any) -> Any:
            fn = internals.event_function(demo, getattr(body, "fn_index", None))
            data = getattr(body, "data", None)
            if fn is not None and isinstance(data, list) and len(data) != len(fn.inputs):
                completed = complete_values(data, fn.inputs)
                if completed is None:
                    api = [block for block in fn.inputs if not internals.is_session_state(block)]
                    raise HTTPException(
                        status_code=422,
                        detail=f"this endpoint takes at most {len(api)} values, got {len(data)}",
                    )
                body.data = completed
            hashed = getattr(body, "session_hash", None)
            session = f"s:{hashed}" if hashed else "s:"  # no session (/call/...): its address alone counts
            client = f"c:{client_key(request)}"
            per_session, per_client = Counter(), Counter()
            for event in internals.queued_events(queue):
                per_session[f"s:{event.session_hash}"] += 1
                per_client[f"c:{client_key(event.request)}"] += 1
            if hashed and per_session[session] + joining[session] >= limits.MAX_SESSION_JOBS:
                raise HTTPException(status_code=429, detail=(
                    f"too many requests from you: {limits.MAX_SESSION_JOBS} of yours are already queued or running; "
                    "wait for one to finish"))
            if per_client[client] + joining[client] >= limits.MAX_CLIENT_JOBS:
                raise HTTPException(status_code=429, detail=(
                    f"too many requests from your address: {limits.MAX_CLIENT_JOBS} are already queued or running; "
                    "wait for one to finish"))
            cost = price(fn, body.data) if price is not None and fn is not None and isinstance(body.data, list) else 0.0
            now = time.monotonic()
            ticket = None
            if cost > 0:
                refused = budget.refusal(client, cost, lambda key: internals.is_live_event(queue, key), now)
                if refused:
                    raise HTTPException(status_code=429, detail=refused)
                ticket = budget.admit(client, cost, now)
            joining[session] += 1
            joining[client] += 1
            event_id = None
            try:
                answer = await original(body=body, request=request, username=username)
                if ticket is not None and isinstance(answer, tuple) and answer and answer[0]:
                    event_id = answer[1]
                    internals.move_to_lane(queue, event_id, REFINE_LANE, limits.REFINE_CONCURRENCY)
                return answer
            finally:
                if ticket is not None:
                    budget.queued(ticket, event_id)
                for key in (session, client):
                    joining[key] -= 1
                    if joining[key] <= 0:
                        del joining[key]

        return push

    internals.wrap_push(queue, wrap)


def current_session() -> str | None:
    """The session hash of the request being handled, or None outside a request."""
    request = internals.current_request()
    return getattr(request, "session_hash", None) if request is not None else None
