"""The image editor's canvas blobs, bounded and kept per session.

The browser's ImageEditor uploads its canvases (background, brush layers, composite) through the
component's ``accept_blobs`` server function (``POST /gradio_api/component_server``) and then
names them by an id in the event payload. Gradio keeps them in one dict per component, shared by
every session, unbounded, and extends the layer list up to any ``index`` it is sent (100,000,000
Nones: +763 MB). Gradio has no setting for any of this, so :func:`bounded` overrides
that one server function (the ``@server`` mechanism of custom components) to store blobs in a
:class:`BlobStore`: keyed by (session, id), so a blob is only usable by the session
that uploaded it; bounded in count and bytes per session and in bytes for all; absurd indices and
kinds refused. The component is otherwise Gradio's own.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from ..intake import limits
from . import gate
from . import gradio_internals as internals

KINDS = ("background", "layer", "composite")


@dataclass
class _Entry:
    parts: dict[tuple[str, int], bytes] = field(default_factory=dict)
    """By (kind, layer index; 0 for the background and the composite)."""
    stamp: float = field(default_factory=time.monotonic)

    def nbytes(self) -> int:
        return sum(map(len, self.parts.values()))


class BlobLimitError(limits.LimitError):
    """A blob upload over a limit (the message names it)."""


class BlobStore:
    """Canvas blobs by (session, id); every bound from :mod:`smapgan.intake.limits`."""

    def __init__(self) -> None:
        self._items: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        for key in [k for k, e in self._items.items() if now - e.stamp > limits.BLOB_TTL_S]:
            del self._items[key]

    def put(self, session: str, blob_id: str, kind: str, index: int | None, data: bytes) -> None:
        if kind not in KINDS:
            raise BlobLimitError(f"unknown canvas part {kind!r}")
        if kind == "layer" and (index is None or not 0 <= index < limits.MAX_LAYERS):
            raise BlobLimitError(f"a layer index must be 0 to {limits.MAX_LAYERS - 1}, got {index}")
        if len(data) > limits.MAX_BLOB_BYTES:
            raise BlobLimitError(f"a canvas part is {len(data)} bytes; the limit is {limits.MAX_BLOB_BYTES}")
        if not isinstance(blob_id, str) or not 0 < len(blob_id) <= 100:
            raise BlobLimitError("a canvas id must be a short string")
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            key = (session, blob_id)
            entry = self._items.get(key) or _Entry()
            part = (kind, index if kind == "layer" else 0)
            old = entry.parts.get(part)
            parts = sum(len(e.parts) for (s, _), e in self._items.items() if s == session) + (old is None)
            held = sum(e.nbytes() for (s, _), e in self._items.items() if s == session) - len(old or b"")
            if parts > limits.MAX_SESSION_BLOBS:
                raise BlobLimitError(f"too many canvas parts held for your session (limit {limits.MAX_SESSION_BLOBS})")
            if held + len(data) > limits.MAX_SESSION_BLOB_BYTES:
                raise BlobLimitError(
                    f"canvas parts held for your session would exceed {limits.MAX_SESSION_BLOB_BYTES // 2**20} MiB"
                )
            entry.parts[part] = data
            entry.stamp = now
            self._items[key] = entry
            self._items.move_to_end(key)
            total = sum(e.nbytes() for e in self._items.values())
            while total > limits.MAX_BLOB_TOTAL_BYTES and len(self._items) > 1:  # drop the oldest, others' first
                _, dropped = self._items.popitem(last=False)
                total -= dropped.nbytes()

    def take(self, session: str, blob_id: str) -> dict[str, Any] | None:
        """The canvas parts ``session`` uploaded under ``blob_id`` (removed), or None."""
        with self._lock:
            entry = self._items.pop((session, blob_id), None)
        if entry is None:
            return None
        parts = entry.parts
        layers = [parts[p] for p in sorted(p for p in parts if p[0] == "layer")]
        return {"background": parts.get(("background", 0)), "layers": layers, "composite": parts.get(("composite", 0))}


STORE = BlobStore()


def bounded(editor: gr.ImageEditor) -> gr.ImageEditor:
    """``editor`` with its ``accept_blobs`` server function storing into :data:`STORE` (see the module
    docstring; replaced through :mod:`.gradio_internals`)."""

    def accept_blobs(data: Any) -> None:
        from fastapi import HTTPException

        fields = getattr(data, "data", None) or {}
        files = getattr(data, "files", None) or []
        session = fields.get("session_hash")
        if not session or not files:
            raise HTTPException(status_code=400, detail="a canvas upload needs a session and a file")
        raw = fields.get("index")
        try:
            index = int(raw) if raw not in (None, "", "null") else None
        except (TypeError, ValueError):
            raise HTTPException(status_code=400, detail="a canvas layer index must be a number") from None
        try:
            STORE.put(str(session), str(fields.get("id")), str(fields.get("type")), index, files[0][1])
        except BlobLimitError as exc:
            raise HTTPException(status_code=413, detail=str(exc)) from None

    internals.replace_server_function(editor, "accept_blobs", accept_blobs)
    return editor


def take(blob_id: Any) -> dict[str, Any] | None:
    """The blobs the current request's session uploaded under ``blob_id`` (None: none of its own)."""
    session = gate.current_session()
    if session is None or not isinstance(blob_id, str):
        return None
    return STORE.take(session, blob_id)
