"""Bounded caches keyed by an image's handle key (see ``smapgan.render``).

A cache, not state: anything evicted is recomputed on demand, and the bounds
(entry count and bytes) keep a long app session from growing.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Generic, Hashable, Iterator, TypeVar

import torch

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def tensor_nbytes(value: object) -> int:
    """Bytes held by the tensors in a (nested) value."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(tensor_nbytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(tensor_nbytes(v) for v in value)
    if hasattr(value, "nbytes") and callable(value.nbytes):
        return int(value.nbytes())
    return 0


class LRUCache(Generic[K, V]):
    """Least-recently-used cache bounded by entry count and (optionally) total bytes.

    A value is measured (:func:`tensor_nbytes`) when it is stored; call :meth:`touch` after a
    stored value grows so the bound is enforced again. The most recently used
    entry is never evicted by its own growth.
    """

    def __init__(self, max_entries: int, max_bytes: int | None = None) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._data: OrderedDict[K, V] = OrderedDict()
        self._sizes: dict[K, int] = {}
        self._lock = threading.RLock()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            self._sizes[key] = tensor_nbytes(value)
            self._shrink()

    def touch(self, key: K) -> None:
        """Re-measure an entry (after it grew) and evict others if over the bounds."""
        with self._lock:
            if key in self._data:
                self._sizes[key] = tensor_nbytes(self._data[key])
                self._data.move_to_end(key)
                self._shrink()

    def touch_size(self, key: K) -> None:
        """Re-measure an entry without making it the most recently used."""
        with self._lock:
            if key in self._data:
                self._sizes[key] = tensor_nbytes(self._data[key])

    def pop(self, key: K) -> V | None:
        with self._lock:
            self._sizes.pop(key, None)
            return self._data.pop(key, None)

    def _shrink(self) -> None:
        while len(self._data) > self.max_entries or (
            self.max_bytes is not None and len(self._data) > 1 and self.nbytes > self.max_bytes
        ):
            key, _ = self._data.popitem(last=False)
            self._sizes.pop(key, None)
            self.evictions += 1

    @property
    def nbytes(self) -> int:
        return sum(self._sizes.values())

    def values(self) -> list[V]:
        """Values, most recently used first."""
        with self._lock:
            return list(reversed(self._data.values()))

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._sizes.clear()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._data))


def tensor_digest(tensor: torch.Tensor) -> str:
    """A digest of a tensor's shape, dtype and bytes: a content key (images, stylemaps)."""
    t = tensor.detach().contiguous().cpu()
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((tuple(t.shape), str(t.dtype))).encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
