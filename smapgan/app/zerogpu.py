"""ZeroGPU Spaces lend a GPU only to functions decorated with ``spaces.GPU``; elsewhere nothing changes.

The ``spaces`` package exists only there (and where someone installed it on purpose), so its
presence is the signal: the op endpoints are wrapped, nothing else is.
"""

from __future__ import annotations

from typing import Any, Callable


def on_gpu(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` under ``spaces.GPU`` when the ``spaces`` package is importable, else ``fn`` itself."""
    try:
        import spaces
    except ImportError:
        return fn
    return spaces.GPU(fn)
