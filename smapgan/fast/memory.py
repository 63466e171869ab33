"""Give freed heap memory back to the OS after a render.

A render allocates and frees many feature maps of 8-33 MB. glibc keeps freed
chunks of that size in its heap (its mmap threshold adapts upwards), so a
long session's RSS grows by hundreds of MB of free but unreturned memory.
``malloc_trim(0)`` returns it; measured here it costs no visible time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Callable


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return None


def release_free_memory() -> None:
    """Return free heap pages to the OS (glibc); a no-op elsewhere."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
