"""The renderer: the one place where ops turn pictures into handles and handles and edits into images.

One image's path: ``encode(image)`` gives an :class:`Encoded` handle (a stable
key and the stylemap); ``pyramid(handle)`` its w+ pyramid; an op edits tensors
with :mod:`smapgan.latent.editing`; ``render(edit, base=handle)`` the image, where
``base`` says which image the edit started from, so a renderer may recompute
only what changed. Every cache (stylemaps, pyramids, maps, images) is the
renderer's own, keyed by handle key and bounded; the renderers of one model's
modes share it.

A renderer treats its model's weights as fixed for its lifetime: whoever loads
or trains new weights into the model calls :meth:`Renderer.clear_cache` (or
makes a new renderer), or it keeps rendering with what it cached and prepared.

:class:`Renderer` is the contract; :class:`ReferenceRenderer` the exact
reference with plain model calls; ``smapgan.fast.FastRenderer`` the CPU fast
paths. ``tests/test_render_contract.py`` runs every implementation against it.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import torch

from .cache import LRUCache, tensor_digest
from .latent.invert import Differentiable
from .model import StyleMapGAN

Pyramid = list[torch.Tensor]
# Encoder codes kept per renderer family: C*L*L values each (16 KB at 256 px).
MAX_CODES = 256
MAX_CODE_BYTES = 64 << 20
# Refined codes, kept apart: each took seconds to minutes of optimisation, an encoder code a fraction of a second.
MAX_REFINED_CODES = 64


@dataclass(frozen=True, eq=False)
class Encoded:
    """An encoded image: its identity (``key``) and stylemap (1,C,L,L), float32.

    The key names the image (its pixels, plus the refinement settings for a
    refined code): renderers cache the image's pyramid and maps under it.
    """

    key: str
    stylemap: torch.Tensor


class Codes:
    """The stylemaps of one model's renderer (every mode), by handle key: the one cache of codes.

    Encoder codes are shared by every caller (the same pixels give the same code). Refined codes
    are kept under their caller's session prefix, in a cache of their own: encoder-only uploads,
    cheap to redo, never evict a refinement. ``on_clear`` callbacks drop the renderer's other
    caches with them.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.stylemaps: LRUCache[str, torch.Tensor] = LRUCache(MAX_CODES, MAX_CODE_BYTES)
        self.refined: LRUCache[str, torch.Tensor] = LRUCache(MAX_REFINED_CODES, MAX_CODE_BYTES)
        self.mean: torch.Tensor | None = None
        self.on_clear: list[Callable[[], None]] = []

    def clear(self) -> None:
        self.stylemaps.clear()
        self.refined.clear()
        self.mean = None
        for clear in self.on_clear:
            clear()


class Renderer(ABC):
    """What ops and the app render with: handles in, images out, in one of ``modes`` (the model's weights
    fixed for the renderer's life: the module's docstring)."""

    modes: tuple[str, ...] = ("exact",)

    def __init__(self, model: StyleMapGAN, mode: str, codes: Codes) -> None:
        if mode not in self.modes:
            raise ValueError(f"mode must be one of {self.modes}, got {mode!r}")
        self.model = model
        self.mode = mode
        self.codes = codes

    @abstractmethod
    def with_mode(self, mode: str) -> "Renderer":
        """The renderer of the same model in ``mode``, sharing this one's caches."""

    @property
    def code_tag(self) -> str:
        """Appended to the keys of the codes this mode encodes: modes whose encoders differ
        (a bf16 encoder) must not share codes. "" where every mode encodes alike."""
        return ""

    def offered_modes(self) -> tuple[str, ...]:
        """The modes worth offering a person (a UI's toggle): those that differ in what they give."""
        return self.modes

    # ------------------------------------------------------------------ images -> handles
    def encode(self, image: torch.Tensor, key: str | None = None) -> Encoded:
        """The handle of one image (1,3,S,S) in [-1,1]; encoded once per key (default: its pixels)."""
        image = image.to(self.model.device)
        self.model._check_images(image)
        if image.shape[0] != 1:
            raise ValueError(f"encode takes one image, got a batch of {image.shape[0]}")
        key = (key if key is not None else "image:" + tensor_digest(image)) + self.code_tag
        with self.codes.lock:
            stylemap = self.codes.stylemaps.get(key)
            if stylemap is None:
                stylemap = self.encode_stylemaps(image)
                self.codes.stylemaps.put(key, stylemap)
        return Encoded(key, stylemap)

    def refined(
        self, image: Encoded, settings: str, refine: Callable[[torch.Tensor], tuple[torch.Tensor, bool]],
        session: str = "",
    ) -> tuple[Encoded, bool]:
        """The handle of ``image`` refined under ``settings``; ``refine(stylemap)`` -> (code, complete).

        A complete code is kept under ``session + key|settings`` (``session``: the caller's prefix,
        so that each browser session keeps its own); one stopped early is returned (keyed by its
        content) but not kept.
        """
        key = f"{session}{image.key}|{settings}"
        with self.codes.lock:
            code = self.codes.refined.get(key)
        if code is not None:
            return Encoded(key, code), True
        code, complete = refine(image.stylemap)
        if not complete:
            return Encoded("stylemap:" + tensor_digest(code), code), False
        with self.codes.lock:
            self.codes.refined.put(key, code)
        return Encoded(key, code), True

    def gradient_decoder(self) -> Differentiable:
        """What a refinement back-propagates through: the model's own modules here."""
        return self.model

    @abstractmethod
    def encode_stylemaps(self, images: torch.Tensor) -> torch.Tensor:
        """Images (N,3,S,S) -> stylemaps (N,C,L,L), float32, uncached: the encoder itself."""

    # ------------------------------------------------------------------ handles -> pyramids
    @abstractmethod
    def pyramid(self, image: Encoded) -> Pyramid:
        """The image's w+ pyramid (float32), made on first use and cached under its key.

        The tensors are the cache's: edit them out of place (``smapgan.latent.editing``).
        """

    @abstractmethod
    def expand(self, stylemap: torch.Tensor, base: Encoded | None = None) -> Pyramid:
        """The pyramid of an (edited) stylemap; ``base``: the image it was edited from (a local
        edit is then expanded in windows). Nothing is cached."""

    # ------------------------------------------------------------------ -> images
    @abstractmethod
    def render(self, edit: Encoded | Sequence[torch.Tensor], base: Encoded | None = None) -> torch.Tensor:
        """Image (N,3,S,S), unclamped, float32, of a handle or a pyramid.

        ``base`` is the image the edit started from: a renderer may recompute
        only what differs from its pyramid. The result never depends on it
        beyond float tolerance.
        """

    def render_local(self, edit: Sequence[torch.Tensor], base: Encoded) -> tuple[torch.Tensor, bool]:
        """A quick preview of an edit of ``base``: (image, exact).

        A renderer may compute only where the edit changes the image, holding the
        base's normalization statistics (``smapgan.fast.local``): the image is then an
        approximation (``exact`` False) and the caller should follow it with
        ``render(edit, base=base)``. This default renders exactly.
        """
        return self.render(edit, base=base), True

    def local_ready(self, base: Encoded) -> bool:
        """Would ``render_local`` of an edit of ``base`` start at once (nothing to record first)?"""
        return True

    def prepare_local(self, base: Encoded) -> None:
        """Record what ``render_local`` of edits of ``base`` needs (this default needs nothing)."""

    def render_path(self, base: Encoded, target: Sequence[torch.Tensor], ts: Iterable[float]) -> Iterator[torch.Tensor]:
        """Frames of ``lerp_pyramid(pyramid(base), target, t)`` for each t, one at a time."""
        from .latent.editing import lerp_pyramid

        start = self.pyramid(base)
        for t in ts:
            yield self.render(base) if float(t) == 0.0 else self.render(lerp_pyramid(start, target, t), base=base)

    def mean_stylemap(self) -> torch.Tensor:
        """The model's average mapping output (1,C,L,L) (truncation's centre), computed once."""
        with self.codes.lock:
            if self.codes.mean is None:
                self.codes.mean = self.model.mean_stylemap()
            return self.codes.mean

    def decode(self, stylemap: torch.Tensor) -> torch.Tensor:
        """Image of a stylemap, nothing cached."""
        return self.render(self.expand(stylemap))

    def clear_cache(self) -> None:
        """Forget every cached code, pyramid, image and prepared network (all modes): call it after
        changing the model's weights."""
        with self.codes.lock:
            self.codes.clear()


class ReferenceRenderer(Renderer):
    """Exact rendering with plain model calls; caches codes and pyramids, nothing else."""

    def __init__(self, model: StyleMapGAN) -> None:
        super().__init__(model, "exact", Codes())
        self.pyramids: LRUCache[str, Pyramid] = LRUCache(8, 256 << 20)  # a few images' pyramids
        self.codes.on_clear.append(self.pyramids.clear)

    def with_mode(self, mode: str) -> "ReferenceRenderer":
        if mode != self.mode:
            raise ValueError(f"this renderer has no {mode!r} mode (it offers {', '.join(self.modes)})")
        return self

    @torch.inference_mode()
    def encode_stylemaps(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.encode(images.to(self.model.device))

    @torch.inference_mode()
    def pyramid(self, image: Encoded) -> Pyramid:
        with self.codes.lock:
            pyramid = self.pyramids.get(image.key)
            if pyramid is None:
                pyramid = self.model.expand(image.stylemap.to(self.model.device))
                self.pyramids.put(image.key, pyramid)
            return list(pyramid)

    @torch.inference_mode()
    def expand(self, stylemap: torch.Tensor, base: Encoded | None = None) -> Pyramid:
        return self.model.expand(stylemap)

    @torch.inference_mode()
    def render(self, edit: Encoded | Sequence[torch.Tensor], base: Encoded | None = None) -> torch.Tensor:
        pyramid = self.pyramid(edit) if isinstance(edit, Encoded) else list(edit)
        return self.model.synthesize(pyramid)
