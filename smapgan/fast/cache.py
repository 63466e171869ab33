"""The fast renderer's per-image cache: each handle's pyramid, gamma/beta maps and image.

A cache, not state: anything evicted is recomputed from the handle's stylemap.
Entries are keyed by handle key (``smapgan.render.Encoded``), never by where a
tensor came from. Bounded by entry count and bytes, so a long app session does
not grow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..cache import LRUCache, tensor_nbytes
from .local import BaseFeatures


@dataclass(eq=False)
class ImageEntry:
    """What is cached for one handle: its pyramid, and per dtype its (gamma, beta) maps and image, and the
    feature maps and statistics a local render of its edits needs (``smapgan.fast.local``)."""

    key: str
    pyramid: list[torch.Tensor]
    stylemap: torch.Tensor
    modulations: dict[torch.dtype, list[tuple[torch.Tensor, torch.Tensor]]] = field(default_factory=dict)
    images: dict[torch.dtype, torch.Tensor] = field(default_factory=dict)
    features: dict[torch.dtype, BaseFeatures] = field(default_factory=dict)

    def nbytes(self) -> int:
        own = tensor_nbytes(self.pyramid) + tensor_nbytes(self.modulations) + tensor_nbytes(self.images)
        return own + sum(f.nbytes() for f in self.features.values())


class ImageCache:
    """Entries by handle key, least recently used first out; over the byte budget the oldest entry
    goes (its maps, image and features first, then its pyramid) before a newer one loses anything.

    Strict recency, because an edit uses the most recent entries together (an original and its
    references): an older policy that stripped every older entry's maps before dropping any pyramid
    kept a stale image's pyramid and took the reference's maps, so that a pair edited again and
    again with a third image cached remade the reference's maps on every edit (76 GFLOP, +0.6 s at
    256 px: ``bench/first_edit.py``, next edit after idle work).
    """

    def __init__(self, max_images: int = 3, max_bytes: int | None = 1 << 30) -> None:
        self.entries_by_key: LRUCache[str, ImageEntry] = LRUCache(max_images)
        self.max_bytes = max_bytes

    def get(self, key: str) -> ImageEntry | None:
        return self.entries_by_key.get(key)

    def add(self, entry: ImageEntry) -> ImageEntry:
        self.entries_by_key.put(entry.key, entry)
        self._shrink(entry)
        return entry

    def entries(self) -> list[ImageEntry]:
        """Every entry, most recently used first."""
        return self.entries_by_key.values()

    def others(self, exclude: ImageEntry | None = None) -> list[ImageEntry]:
        """Cached entries other than ``exclude``: the images an edit may copy from."""
        return [e for e in self.entries() if e is not exclude]

    def touch(self, entry: ImageEntry) -> None:
        """Re-measure an entry after it grew (maps, an image) and enforce the byte budget."""
        self.entries_by_key.touch(entry.key)
        self._shrink(entry)

    def measure(self, entry: ImageEntry) -> None:
        """Re-measure an entry whose maps grew while another was being edited (its place in the LRU kept)."""
        self.entries_by_key.touch_size(entry.key)

    def _shrink(self, keep: ImageEntry) -> None:
        """Over the byte budget drop, oldest first and never ``keep``: an entry's maps and image, then the entry."""

        def over() -> bool:
            return self.max_bytes is not None and self.nbytes > self.max_bytes

        for entry in [e for e in reversed(self.entries()) if e.key != keep.key]:
            if not over():
                return
            if entry.modulations or entry.images or entry.features:
                entry.modulations.clear()
                entry.images.clear()
                entry.features.clear()
                self.entries_by_key.touch_size(entry.key)
            if over():
                self.entries_by_key.pop(entry.key)

    def clear(self) -> None:
        self.entries_by_key.clear()

    @property
    def nbytes(self) -> int:
        return self.entries_by_key.nbytes

    def __len__(self) -> int:
        return len(self.entries_by_key)
