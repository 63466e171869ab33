"""Keep freed feature maps in the heap, so that the next render reuses their pages.

A 256 px render allocates and frees feature and gamma/beta maps of 8-34 MB.
glibc serves blocks that large with ``mmap`` and unmaps them when freed
(always above 32 MB, its mmap threshold's ceiling), and trims the top of its
heap, so every render got fresh pages from the kernel: 90-130 thousand page
faults (0.4-0.5 GB zeroed) per edit, about a quarter of an edit's time here
(AMD EPYC Zen 4, 2 threads: a 25% w+ edit 1.24 s with them, 0.95 s without;
``bench/cpu_edit.py``). With mmap off and trimming out of reach, freed blocks
stay in the heap and the next render reuses them: no faults at all after the
first render of each size. The heap then holds the renders' peak, which is
what they need again on the next call; :func:`release_free_memory` gives it
back when the caches are dropped.

This is process-wide malloc configuration (glibc's ``mallopt``), set once by
the fast renderer's engine; elsewhere (musl, macOS, Windows) both are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# Free memory at the heap's top is returned to the OS only beyond this (2**31 - 1: the int's maximum).
_TRIM_THRESHOLD = 2**31 - 1


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt, libc.malloc_trim  # noqa: B018  (glibc only)
    except (OSError, AttributeError):  # not glibc
        return None
    return libc


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Serve large blocks from the heap and keep freed ones there (once per process). True if set."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))


def release_free_memory() -> None:
    """Return the heap's free pages to the OS (glibc); a no-op elsewhere."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
