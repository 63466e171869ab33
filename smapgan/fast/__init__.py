"""CPU fast paths: prepared networks, per-image caches, incremental edits, and a renderer using them."""

from ..cache import LRUCache
from .cache import ImageCache
from .prepared import PreparedDecoder, PreparedEncoder
from .renderer import FastRenderer

__all__ = ["FastRenderer", "ImageCache", "LRUCache", "PreparedDecoder", "PreparedEncoder"]
