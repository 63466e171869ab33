"""Bounded caches for the fast renderer: per-image pyramids and per-layer gamma/beta maps.

This is a cache, not state: anything evicted is recomputed on demand, and the
bounds (entry count and bytes) keep a long app session from growing. Entries are
keyed by content, never by where a tensor came from, so two different images
never share an entry: a stylemap is keyed by a digest of its bytes and then
compared bit for bit; a pyramid is recognised by the identity and in-place
version of its level tensors (the fast path), or else compared bit for bit with
the cached pyramids.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Generic, Hashable, Iterator, Sequence, TypeVar

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

    ``sizeof`` measures a value when it is stored; call :meth:`touch` after a
    stored value grows so the bound is enforced again. The most recently used
    entry is never evicted by its own growth.
    """

    def __init__(self, max_entries: int, max_bytes: int | None = None,
                 sizeof: Callable[[V], int] = tensor_nbytes) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.sizeof = sizeof
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
            self._sizes[key] = self.sizeof(value)
            self._shrink()

    def touch(self, key: K) -> None:
        """Re-measure an entry (after it grew) and evict others if over the bounds."""
        with self._lock:
            if key in self._data:
                self._sizes[key] = self.sizeof(self._data[key])
                self._data.move_to_end(key)
                self._shrink()

    def touch_size(self, key: K) -> None:
        """Re-measure an entry without making it the most recently used."""
        with self._lock:
            if key in self._data:
                self._sizes[key] = self.sizeof(self._data[key])

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


def stylemap_digest(stylemap: torch.Tensor) -> str:
    """A digest of a stylemap's shape, dtype and bytes (stylemaps are small: C*L*L values)."""
    t = stylemap.detach().contiguous().cpu()
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((tuple(t.shape), str(t.dtype))).encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


_ids = itertools.count()


@dataclass(eq=False)
class ImageEntry:
    """What is cached for one pyramid (one encoded image, or an edit kept for reuse).

    ``modulations`` maps a dtype to each styled layer's (gamma, beta) maps;
    ``images`` maps a dtype to the rendered image.
    """

    pyramid: list[torch.Tensor]
    stylemap: torch.Tensor | None = None
    modulations: dict[torch.dtype, list[tuple[torch.Tensor, torch.Tensor]]] = field(default_factory=dict)
    images: dict[torch.dtype, torch.Tensor] = field(default_factory=dict)
    key: int = field(default_factory=lambda: next(_ids))
    _refs: list[weakref.ref] = field(default_factory=list, repr=False)
    _versions: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        # Cached tensors must track in-place changes (inference tensors have no version counter).
        with torch.inference_mode(False):
            self.pyramid = [t.clone() if t.is_inference() else t for t in self.pyramid]
        self._refs = [weakref.ref(t) for t in self.pyramid]
        self._versions = [t._version for t in self.pyramid]

    def nbytes(self) -> int:
        return tensor_nbytes(self.pyramid) + tensor_nbytes(self.modulations) + tensor_nbytes(self.images)

    def is_same_object(self, pyramid: Sequence[torch.Tensor]) -> bool:
        """The very tensors this entry was made from, unmodified since (no data compared)."""
        return len(pyramid) == len(self._refs) and all(
            ref() is t and not t.is_inference() and t._version == v
            for ref, t, v in zip(self._refs, pyramid, self._versions)
        )

    def intact(self) -> bool:
        """False once someone modified the cached pyramid in place (the entry is then stale)."""
        return all(t._version == v for t, v in zip(self.pyramid, self._versions))

    def equals(self, pyramid: Sequence[torch.Tensor]) -> bool:
        """Bitwise equality with another pyramid (shape, dtype and values)."""
        if len(pyramid) != len(self.pyramid):
            return False
        for mine, other in zip(self.pyramid, pyramid):
            if mine.shape != other.shape or mine.dtype != other.dtype or not torch.equal(mine, other):
                return False
        return True


class ImageCache:
    """The fast renderer's per-image cache, in two LRU tiers under one byte budget.

    ``recent`` takes every pyramid ``expand`` made (most are transient: the
    frames of an interpolation, edited stylemaps); ``images`` keeps the ones
    that proved to be images of interest (rendered on their own or used as the
    base of an edit), so a burst of transient pyramids never evicts them. When
    over the byte budget, recent entries go first.
    """

    def __init__(self, max_images: int = 3, max_bytes: int | None = 1 << 30, max_recent: int = 2) -> None:
        self.images: LRUCache[int, ImageEntry] = LRUCache(max_images)
        self.recent: LRUCache[int, ImageEntry] = LRUCache(max_recent)
        self.max_bytes = max_bytes
        self._by_stylemap: dict[str, int] = {}

    def add(self, entry: ImageEntry, promote: bool = False) -> ImageEntry:
        if entry.stylemap is not None:
            self._by_stylemap[stylemap_digest(entry.stylemap)] = entry.key
        (self.images if promote else self.recent).put(entry.key, entry)
        self._shrink(entry)
        return entry

    def promote(self, entry: ImageEntry) -> None:
        """Keep this entry among the images of interest (and mark it most recently used)."""
        if entry.key in self.recent:
            self.recent.pop(entry.key)
        self.images.put(entry.key, entry)
        self._shrink(entry)

    def _tier(self, entry: ImageEntry) -> LRUCache[int, ImageEntry] | None:
        if entry.key in self.images:
            return self.images
        if entry.key in self.recent:
            return self.recent
        return None

    def _get(self, key: int | None) -> ImageEntry | None:
        if key is None:
            return None
        return self.images.get(key) or self.recent.get(key)

    def by_stylemap(self, stylemap: torch.Tensor) -> ImageEntry | None:
        entry = self._get(self._by_stylemap.get(stylemap_digest(stylemap)))
        if entry is None or entry.stylemap is None or not entry.intact():
            return None
        if entry.stylemap.shape != stylemap.shape or not torch.equal(entry.stylemap, stylemap.to(entry.stylemap)):
            return None
        return entry

    def by_pyramid(self, pyramid: Sequence[torch.Tensor]) -> ImageEntry | None:
        """The entry holding this pyramid: same tensors (cheap), else bitwise-equal content."""
        candidates = self.entries()
        for entry in candidates:
            if entry.is_same_object(pyramid):
                self._get(entry.key)
                return entry
        for entry in candidates:
            if entry.intact() and entry.equals(pyramid):
                self._get(entry.key)
                return entry
        return None

    def entries(self) -> list[ImageEntry]:
        """Every entry, images of interest first, each tier most recent first."""
        return self.images.values() + self.recent.values()

    def others(self, exclude: ImageEntry | None = None) -> list[ImageEntry]:
        """Cached entries other than ``exclude``: the candidates an edit may copy from."""
        return [e for e in self.entries() if e is not exclude and e.intact()]

    def touch(self, entry: ImageEntry) -> None:
        """Re-measure an entry after it grew (maps, an image) and enforce the byte budget."""
        tier = self._tier(entry)
        if tier is not None:
            tier.touch(entry.key)
        self._shrink(entry)

    def _shrink(self, keep: ImageEntry | None = None) -> None:
        """Over the byte budget, drop (oldest first, never ``keep``): recent entries, then the maps and
        images of entries of interest (their pyramids stay: they are what edits are recognised by),
        then whole entries."""

        def over() -> bool:
            return self.max_bytes is not None and self.nbytes > self.max_bytes

        def victims(tier: LRUCache[int, ImageEntry]) -> list[ImageEntry]:
            return [e for e in reversed(tier.values()) if keep is None or e.key != keep.key]

        for entry in victims(self.recent):
            if not over():
                break
            self.recent.pop(entry.key)
        for entry in victims(self.images):
            if not over():
                break
            if entry.modulations or entry.images:
                entry.modulations.clear()
                entry.images.clear()
                self.images.touch_size(entry.key)
        for entry in victims(self.images):
            if not over():
                break
            self.images.pop(entry.key)
        live = set(self.images) | set(self.recent)
        for digest in [d for d, k in self._by_stylemap.items() if k not in live]:
            del self._by_stylemap[digest]

    def clear(self) -> None:
        self.images.clear()
        self.recent.clear()
        self._by_stylemap.clear()

    @property
    def nbytes(self) -> int:
        return self.images.nbytes + self.recent.nbytes

    def __len__(self) -> int:
        return len(self.images) + len(self.recent)
