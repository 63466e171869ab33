"""Keep a render's freed feature maps in the heap for the next render, up to a budget.

A 256 px render allocates and frees feature and gamma/beta maps of 8-34 MB.
glibc serves blocks that large with ``mmap`` and unmaps them when freed
(always above 32 MB, its mmap threshold's ceiling), so every render got fresh
pages from the kernel: 90-130 thousand page faults (0.4-0.5 GB zeroed) per
edit, about a quarter of an edit's time here (AMD EPYC Zen 4, 2 threads: a
25% w+ edit 1.24 s with them, 0.95 s without; ``bench/cpu_edit.py``).
:func:`keep_freed_memory` makes glibc serve them from its heap and keep them
there when freed, so the next render reuses the same pages. An edit's freed
working set is about 310 MB at 256 px; :func:`trim_beyond` (after each render)
returns the heap's free memory to the OS once it exceeds a budget (the renderer's:
about one render's working set for its model, at most ``KEEP_FREE_BYTES``), so
that a session holds at most that much beyond what it uses.

This is process-wide malloc configuration (glibc's ``mallopt``), set once by
the fast renderer's engine; elsewhere (musl, macOS, Windows) all three are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# glibc trims the heap's top on its own only beyond this (2**31 - 1, the int's maximum: never;
# ``trim_beyond`` decides instead).
_TRIM_THRESHOLD = 2**31 - 1
# Free heap kept for the next render, at most (an edit's freed working set at 256 px is ~310 MB).
KEEP_FREE_BYTES = 512 << 20


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


def free_heap_bytes() -> int | None:
    """Bytes of the heap's free blocks, resident or already returned to the OS by a trim (None where unknown).

    An upper bound of the free memory a process holds: the budget ``trim_beyond`` keeps is a bound, too.
    """
    libc = _libc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        return None
    return int(libc.mallinfo2().fordblks)


def trim_beyond(keep_bytes: int | None = None) -> bool:
    """Return the heap's free memory to the OS if it exceeds ``keep_bytes`` (``KEEP_FREE_BYTES``). True if trimmed.

    Where the free bytes cannot be read (glibc before 2.33) it always trims, so that memory stays bounded.
    """
    if _libc() is None:
        return False
    keep = KEEP_FREE_BYTES if keep_bytes is None else keep_bytes
    free = free_heap_bytes()
    if free is not None and free <= keep:
        return False
    release_free_memory()
    return True


def release_free_memory() -> None:
    """Return the heap's free pages to the OS (glibc); a no-op elsewhere."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
