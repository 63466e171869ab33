"""Work stops when its client leaves: queued jobs never start, running ones end between steps.

Gradio notices that a client closed its event stream (``/queue/data`` or ``/call/.../{event_id}``)
and then calls its queue's ``clean_events``: it marks the session's running jobs as not alive
(which only ends a generator at its next update) and removes its queued jobs, but the removal
awaits a lock inside the stream's task, which is being cancelled, so it may never happen; and a
running function is never told. So :func:`install` wraps ``clean_events``: at once, before
anything is awaited, the session's queued jobs are taken out of the queue and every stop event a
running job of it registered (:func:`stop_on_leave`) is set. Refinement checks its stop event
between steps (the session's "Stop refinement" event is registered), and a streaming op checks
:func:`left` between frames.

When a client leaves, or opens an event stream for a session already gone, Gradio's stream raises
after its response has started, and Starlette logs a 20-line "Caught handled exception, but
response already started" traceback for each (206 in one attack): :class:`QuietDepartures` logs
one line instead, so that real errors stay visible.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Awaitable, Callable

from . import gradio_internals as internals

logger = logging.getLogger(__name__)

_stops: dict[str, list[threading.Event]] = {}
"""By event id: the stop events of a running job, set when its client leaves."""
_lock = threading.Lock()


def install(demo: Any) -> None:
    """Make ``demo``'s queue cancel the work of a client that left (see the module's docstring)."""
    queue = internals.event_queue(demo)

    def wrap(original: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        async def clean_events(*, session_hash: str | None = None, event_id: str | None = None) -> None:
            gone = internals.drop_queued(queue, session_hash, event_id)
            running = internals.running_event_ids(queue, session_hash, event_id)
            with _lock:
                for key in running:
                    for stop in _stops.pop(key, []):
                        stop.set()
                for key in [k for k in _stops if not internals.is_live_event(queue, k)]:
                    del _stops[key]  # jobs that ended without their client leaving
            if gone or running:
                logger.info("client left: %d queued job(s) dropped, %d running job(s) stopped", gone, len(running))
            await original(session_hash=session_hash, event_id=event_id)

        return clean_events

    internals.wrap_clean_events(queue, wrap)


class QuietDepartures:
    """ASGI middleware: a response that fails after it has started is one log line, not a traceback."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        try:
            await self.app(scope, receive, send)
        except RuntimeError as exc:
            if scope.get("type") != "http" or "response already started" not in str(exc):
                raise
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            try:  # end the response that had started (else uvicorn reports it as incomplete)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except Exception:  # the client is gone: nothing to end
                pass
            logger.warning("%s %s ended after its response started (its client left or its session is gone): %s",
                        scope.get("method"), scope.get("path"), str(cause) or type(cause).__name__)


def stop_on_leave(stop: threading.Event) -> None:
    """Set ``stop`` when the client of the job being run (if any) leaves."""
    key = internals.current_event_id()
    if key is None:
        return
    with _lock:
        for old in [k for k in _stops if not internals.is_current_event_live(k)]:
            del _stops[old]  # jobs that ended without their client leaving
        _stops.setdefault(key, []).append(stop)


def left() -> bool:
    """Has the client of the job being run left? (False outside a queued job.)"""
    return internals.current_event_gone()
