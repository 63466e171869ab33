"""Work done while a renderer is idle: completing the maps that an edit began.

The first edit of a pair makes the original's maps only outside the mask and
the reference's only under it (``lazy_maps``): that is what the first result
needs, and nothing more sits on its path. A person then looks at the result
and moves the mask, seconds later; by then the rest of both images' maps can
be made, so that the next edit finds them and only synthesizes. This thread
does that in small steps, each under the renderer's lock, and gives the lock
back between steps, so that a request waits at most one step (a few tiles).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from typing import Callable

logger = logging.getLogger(__name__)
# Every worker started in this process (a worker lives as long as the process: one per app renderer),
# stopped at exit: a thread still inside torch while the interpreter finalizes aborts the process
# ("terminate called without an active exception").
_STARTED: "weakref.WeakSet[IdleWorker]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for worker in list(_STARTED):
        worker.stop()

# Pause between steps: long enough that a request waiting on the lock takes it first.
PAUSE_S = 0.002


class IdleWorker:
    """Runs ``step()`` (under ``lock``) again and again after each ``kick()``, until it returns False."""

    def __init__(self, lock: threading.RLock, step: Callable[[], bool], name: str = "smapgan-idle-maps") -> None:
        self._lock = lock
        self._step = step
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False

    def kick(self) -> None:
        """There may be work: do it when the lock is free."""
        if self._stopping:
            return
        if not self._started:
            self._started = True
            _STARTED.add(self)
            self._thread.start()
        self._idle.clear()
        self._wake.set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until all the work kicked so far is done (tests, benchmarks); False on timeout."""
        return self._idle.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the step under way and end the thread (at exit)."""
        self._stopping = True
        self._wake.set()
        if self._started and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait()
            self._wake.clear()
            more = not self._stopping
            while more and not self._stopping:
                time.sleep(PAUSE_S)
                with self._lock:
                    try:
                        more = self._step()
                    except Exception:  # never let the worker die: the next render makes what it needs
                        logger.exception("completing maps while idle failed (the next render makes them)")
                        more = False
            if not self._wake.is_set() or self._stopping:
                self._idle.set()
