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


@dataclass(eq=False)
class ImageEntry:
    """What is cached for one handle: its pyramid, and per dtype its (gamma, beta) maps and image."""

    key: str
    pyramid: list[torch.Tensor]
    stylemap: torch.Tensor
    modulations: dict[torch.dtype, list[tuple[torch.Tensor, torch.Tensor]]] = field(default_factory=dict)
    images: dict[torch.dtype, torch.Tensor] = field(default_factory=dict)

    def nbytes(self) -> int:
        return tensor_nbytes(self.pyramid) + tensor_nbytes(self.modulations) + tensor_nbytes(self.images)


class ImageCache:
    """Entries by handle key, least recently used first out; over the byte budget the maps and
    images of older entries go before whole entries (their pyramids are cheap to keep)."""

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
        """Over the byte budget drop, oldest first and never ``keep``: maps and images, then entries."""

        def over() -> bool:
            return self.max_bytes is not None and self.nbytes > self.max_bytes

        victims = [e for e in reversed(self.entries()) if e.key != keep.key]
        for entry in victims:
            if not over():
                return
            if entry.modulations or entry.images:
                entry.modulations.clear()
                entry.images.clear()
                self.entries_by_key.touch_size(entry.key)
        for entry in victims:
            if not over():
                return
            self.entries_by_key.pop(entry.key)

    def clear(self) -> None:
        self.entries_by_key.clear()

    @property
    def nbytes(self) -> int:
        return self.entries_by_key.nbytes

    def __len__(self) -> int:
        return len(self.entries_by_key)
