"""Per-session state bounded across all sessions together: a count, and expiry when idle.

Gradio keeps, for every session that ever called an event, its ``gr.State`` values and a copy of
every component's config (about 0.3 MB for this app), up to 10,000 sessions, and never drops a
session for being idle (a State's ``time_to_live`` drops that value only). 500 one-shot sessions
kept +340 MB. So the app launches with ``state_session_capacity=limits.MAX_SESSIONS`` (Gradio's
own setting: the least recently used session is dropped past it; see :func:`launch_kwargs`), and
:func:`expire` drops each session idle for ``limits.SESSION_IDLE_S`` (none of its jobs queued or
running), then hands the freed memory back to the system.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import threading
import time
from typing import Any

from ..intake import limits
from . import gradio_internals as internals

logger = logging.getLogger(__name__)


def launch_kwargs() -> dict[str, Any]:
    """``Blocks.launch`` keyword arguments: at most ``limits.MAX_SESSIONS`` sessions, the oldest dropped."""
    return {"state_session_capacity": limits.MAX_SESSIONS}


def expire(demo: Any) -> threading.Thread:
    """Start dropping ``demo``'s idle sessions (a daemon thread that waits for the server to start, and
    ends with it); each sweep runs every quarter of the idle time, at most 30 s."""
    thread = threading.Thread(target=_expire, args=(demo,), name="smapgan-session-expiry", daemon=True)
    thread.start()
    return thread


def sweep(demo: Any, idle_s: float) -> int:
    """Drop every session of ``demo`` idle for ``idle_s`` seconds with no job queued or running; how many."""
    dropped = internals.drop_idle_sessions(demo, idle_s)
    if dropped:
        gc.collect()
        _release_free_memory()
        logger.info("dropped %d idle session(s)", dropped)
    return dropped


def _expire(demo: Any) -> None:
    internals.wait_until_running(demo)
    last = time.monotonic()
    while internals.server_running(demo):
        time.sleep(0.5)
        if time.monotonic() - last >= min(30.0, limits.SESSION_IDLE_S / 4):
            last = time.monotonic()
            sweep(demo, limits.SESSION_IDLE_S)


def _release_free_memory() -> None:
    """glibc keeps freed small blocks in its arenas; ``malloc_trim`` returns the free pages to the system
    (no setting is changed). Elsewhere: nothing."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        trim = None
    if trim is not None:
        trim(0)
