"""Keep a render's freed feature maps in the heap for the next render, up to a budget.

A 256 px render allocates and frees feature and gamma/beta maps of 8-34 MB.
glibc serves blocks that large with ``mmap`` and unmaps them when freed
(always above 32 MB, its mmap threshold's ceiling), so every render got fresh
pages from the kernel: 90-130 thousand page faults (0.4-0.5 GB zeroed) per
edit, about a quarter of an edit's time here (AMD EPYC Zen 4, 2 threads: a
25% w+ edit 1.24 s with them, 0.95 s without; ``bench/cpu_edit.py``).
:func:`keep_freed_memory` makes glibc serve them from its heap and keep them
there when freed, so the next render reuses the same pages. An edit's freed
working set is about 310 MB at 256 px; :class:`FreeHeapKeeper` (after each render)
returns the heap's free memory to the OS once more than a budget of it is resident
(the renderer's: about one render's working set for its model, at most
``KEEP_FREE_BYTES``), so that a session holds at most that much beyond what it uses.

This is process-wide malloc configuration (glibc's ``mallopt``), set once by
the fast renderer's engine for a model large enough to gain from it
(``REUSE_MIN_BYTES``); elsewhere (musl, macOS, Windows) all of it is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# glibc trims the heap's top on its own only beyond this (2**31 - 1, the int's maximum: never;
# ``FreeHeapKeeper`` decides instead).
_TRIM_THRESHOLD = 2**31 - 1
# Free heap kept resident for the next render, at most (an edit's freed working set at 256 px is ~310 MB).
KEEP_FREE_BYTES = 512 << 20
# The heap reuse is for models whose budget (3x a cached pyramid) is at least this: a 256 px model's
# (360 MB) saves ~0.3 s of page faults per edit. Smaller models (the bundled 64 px one: 16 MB, its renders
# fault ~13 MB, 3-4 ms) keep glibc's defaults and trim after every render: with the reuse, the bundled
# model's server grew 5.7-8.1% over 1000 edits by fragments (2.1% without).
REUSE_MIN_BYTES = 64 << 20
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (2.33+): byte counts summed over every arena."""

    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt, libc.malloc_trim  # noqa: B018  (glibc only)
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return None
    if hasattr(libc, "mallinfo2"):  # glibc 2.33+
        libc.mallinfo2.restype = _MallInfo2
    return libc


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Serve large blocks from the heap and keep freed ones there (once per process). True if set."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))


def heap_counts() -> tuple[int, int] | None:
    """(in use, free) bytes of malloc over every arena and mapping, from one ``mallinfo2`` call (None where
    unknown). Free counts blocks resident or already returned to the OS by a trim. One call serves both:
    it walks every free list (about 0.5 ms on a fragmented heap here)."""
    libc = _libc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        return None
    info = libc.mallinfo2()
    return int(info.uordblks + info.hblkhd), int(info.fordblks)


def free_heap_bytes() -> int | None:
    """Bytes of the heap's free blocks, resident or already returned to the OS by a trim (None where unknown)."""
    counts = heap_counts()
    return None if counts is None else counts[1]


def resident_bytes() -> int | None:
    """The process's resident set (Linux ``/proc/self/statm``; None elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


class FreeHeapKeeper:
    """Keeps up to a budget of freed heap resident between renders, and returns the rest to the OS.

    What counts is the free heap still *resident*. glibc's count of free bytes
    (``mallinfo2().fordblks``) keeps the blocks a trim has already returned (they stay free in
    malloc's lists), so a rule on that count, once the heap's holes exceed the budget, trims after
    every render, and every render faults its pages in again (a 256 px edit after a second pair
    was cached: 75-95 thousand page faults; a 25% w+ edit 0.96 s median with a trim before it,
    0.84 s without). The resident part is not counted anywhere; two lower bounds of it are
    measured since this keeper's last trim, when it was about zero, and the larger one is taken:
    how much the free count grew (blocks freed beyond the holes), and how much the RSS not in
    malloc's in-use blocks grew (holes faulted in again and freed). Memory outside the heap that
    grows (code, Python's arenas) reads as free and only brings the next trim sooner, which
    recalibrates; so the process holds about the budget beyond what it uses.
    """

    def __init__(self) -> None:
        self._outside: int | None = None  # RSS beyond malloc's in-use bytes right after the last trim
        self._free: int | None = None  # the free count right after the last trim (none of it resident)

    def resident_free_bytes(self) -> int | None:
        """Estimated free heap still resident (None before the first trim, or where it cannot be read)."""
        rss, counts = resident_bytes(), heap_counts()
        if rss is None or counts is None or self._outside is None or self._free is None:
            return None
        used, free = counts
        return max(0, rss - used - self._outside, free - self._free)

    def trim_beyond(self, keep_bytes: int) -> bool:
        """Return the free heap to the OS if more than ``keep_bytes`` of it is resident. True if trimmed.

        Where that cannot be estimated (glibc before 2.33, no ``/proc``) it always trims, so that
        memory stays bounded; the first call trims too (to calibrate).
        """
        if _libc() is None:
            return False
        free = self.resident_free_bytes()
        if free is not None and free <= keep_bytes:
            return False
        self.trim()
        return True

    def trim(self) -> None:
        """Return the heap's free pages to the OS now, and note where the counts stand."""
        release_free_memory()
        rss, counts = resident_bytes(), heap_counts()
        self._outside = None if rss is None or counts is None else rss - counts[0]
        self._free = None if counts is None else counts[1]


def release_free_memory() -> None:
    """Return the heap's free pages to the OS (glibc); a no-op elsewhere."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
