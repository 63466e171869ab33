"""Connections that never complete their request are closed (a slow-headers attack).

uvicorn, as Gradio starts it, has no timeout for a request's line and headers: a connection that
sends one byte every few seconds, or nothing, is held open forever (200 such connections were
still open after 45 s). Its keep-alive timeout only starts after a response. Gradio builds the
uvicorn config itself, so no setting reaches it; :func:`watch` looks at the server's connections
once a second instead and closes any whose request has not been complete for
``limits.REQUEST_HEADER_TIMEOUT_S`` since it opened or since its previous response. (A body that
trickles is dropped by :class:`smapgan.app.gate.BodyLimit`, where the app reads it.)
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ..intake import limits
from . import gradio_internals as internals

logger = logging.getLogger(__name__)


def watch(demo: Any, interval: float = 1.0) -> threading.Thread:
    """Start the watch over ``demo``'s connections (a daemon thread that waits for the server to start,
    and ends with it)."""
    thread = threading.Thread(target=_watch, args=(demo, interval), name="smapgan-request-timeouts", daemon=True)
    thread.start()
    return thread


def _watch(demo: Any, interval: float) -> None:
    internals.wait_until_running(demo)
    waiting: dict[tuple[int, int], float] = {}  # (connection, its request cycle): since when it waits
    while internals.server_running(demo):
        time.sleep(interval)
        now = time.monotonic()
        current = set()
        for connection in internals.server_connections(demo):
            key = internals.awaiting_request(connection)
            if key is None:
                continue
            current.add(key)
            since = waiting.setdefault(key, now)
            if now - since > limits.REQUEST_HEADER_TIMEOUT_S:
                internals.close_connection(connection)
                logger.info("closed a connection whose request was incomplete for %.0f s", now - since)
        for key in set(waiting) - current:
            del waiting[key]
