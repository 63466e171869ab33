"""FastRenderer: the :class:`smapgan.render.Renderer` interface, doing less work on a CPU.

* ``encode``/``expand``/``decode`` run prepared networks (folded constants,
  channels-last, fused LayerNorm+affine); pyramids are cached per image, and a
  stylemap that differs from a cached one in a few cells is expanded by
  recomputing only the changed windows.
* ``render(pyramid, base)`` reuses the base image's cached gamma/beta maps and
  recomputes them only around the cells the edit changed (copying or lerping
  them from a cached reference image where the edit is a blend towards it);
  the synthesis convs always run in full, because LayerNorm is global.
* Caching runs under ``no_grad`` rather than ``inference_mode``: cached tensors
  keep their version counters, so an in-place change of a cached pyramid is seen.
* ``render_path(base, target, ts)`` renders an animation from ``base`` to
  ``target`` frame by frame (a generator: the UI can show each frame as it
  comes) with the edit's gamma/beta computed once and lerped per frame.

Modes: ``"exact"`` (float32, equal to ``model.decode`` of the pyramid within
1e-4) and ``"fast"`` (bfloat16 convolutions and maps; PSNR >= 40 dB against
exact). ``modes`` and ``with_mode`` let the app show a toggle; the renderers of
both modes share one set of caches.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import weakref
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import torch

from ..model import StyleMapGAN
from .cache import ImageCache, ImageEntry, LRUCache, stylemap_digest
from .incremental import ModPatch, changed_cells, expand_window, modulation_patch, patched_in_place
from .memory import release_free_memory
from .prepared import CL, PreparedDecoder, PreparedEncoder, param_signature, supports

Pyramid = list[torch.Tensor]
T = TypeVar("T")
MODE_DTYPES = {"exact": torch.float32, "fast": torch.bfloat16}
# Models up to this size keep a folded float32 copy of every weight (see FastRenderer).
KEEP_WEIGHTS_BYTES = 64 << 20


def _tracking() -> contextlib.ExitStack:
    """No autograd, and outside inference mode even when called from inside it (see the module docstring)."""
    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode(False))
    stack.enter_context(torch.no_grad())
    return stack


def _tracked(fn: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        with _tracking():
            return fn(*args, **kwargs)

    return wrapper


def _trimmed(fn: Callable[..., T]) -> Callable[..., T]:
    """Give the freed feature maps back to the OS once the call is done (see ``memory``)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        finally:
            release_free_memory()

    return wrapper


class _Engine:
    """Prepared networks and caches shared by the renderers of every mode of one model."""

    def __init__(self, model: StyleMapGAN, max_images: int, max_bytes: int | None, keep_float32: bool) -> None:
        self.model = model
        self.keep_float32 = keep_float32
        self.cache = ImageCache(max_images, max_bytes)
        self.lock = threading.RLock()
        self._decoders: dict[torch.dtype, PreparedDecoder] = {}
        self._encoders: dict[torch.dtype, PreparedEncoder] = {}
        self._signature: tuple | None = None
        self.supported = supports(model.generator.decoder) and model.device.type == "cpu"
        self.last_patches: tuple | None = None
        self.encoded: LRUCache[str, bool] = LRUCache(32, sizeof=lambda _: 0)  # digests of stylemaps encode() made
        self.stats = {"renders": 0, "incremental": 0, "computed_cells": 0, "total_cells": 0, "modulation_flops": 0}

    def _check(self) -> None:
        """Drop prepared weights and caches when the model's parameters changed (loaded, trained)."""
        sig = param_signature(self.model)
        if sig != self._signature:
            self._decoders.clear()
            self._encoders.clear()
            self.cache.clear()
            self.last_patches = None
            self._signature = sig

    def decoder(self, dtype: torch.dtype) -> PreparedDecoder:
        self._check()
        if dtype not in self._decoders:
            keep = dtype != torch.float32 or self.keep_float32
            self._decoders[dtype] = PreparedDecoder(self.model.generator.decoder, dtype, keep_weights=keep)
        return self._decoders[dtype]

    def encoder(self, dtype: torch.dtype) -> PreparedEncoder:
        self._check()
        if dtype not in self._encoders:
            keep = dtype != torch.float32 or self.keep_float32
            self._encoders[dtype] = PreparedEncoder(self.model.encoder, dtype, keep_weights=keep)
        return self._encoders[dtype]

    def modulations(self, entry: ImageEntry, dtype: torch.dtype) -> list[tuple[torch.Tensor, torch.Tensor]]:
        mods = entry.modulations.get(dtype)
        if mods is None:
            mods = self.decoder(dtype).modulations(entry.pyramid)
            entry.modulations[dtype] = mods
            self.cache.touch(entry)
        return mods


class FastRenderer:
    """Renderer with per-image caches and incremental edits; ``mode`` "exact" (default) or "fast"."""

    modes = ("exact", "fast")
    caches_pyramids = True  # expand() keeps its own bounded per-image cache: callers need not keep pyramids

    def __init__(
        self,
        model: StyleMapGAN,
        mode: str = "exact",
        *,
        max_images: int = 3,
        max_cache_bytes: int | None = 768 << 20,
        keep_float32_weights: bool | None = None,
        _engine: _Engine | None = None,
    ) -> None:
        """``max_images``/``max_cache_bytes`` bound the per-image cache (see ``smapgan.fast.cache``).

        ``keep_float32_weights``: keep a folded float32 copy of all the weights
        (as large as the model) instead of folding the resizer's and the
        gamma/beta convs' weights when they are used (the synthesis convs' are
        always kept); the bfloat16 copy of the fast mode is always kept (half
        the size). ``None`` (default): keep it when the model's weights take at
        most ``KEEP_WEIGHTS_BYTES`` (small models, where folding on every call is
        a large share of an edit and the copy costs little).
        """
        if mode not in MODE_DTYPES:
            raise ValueError(f"mode must be one of {self.modes}, got {mode!r}")
        self.model = model
        self.mode = mode
        self.dtype = MODE_DTYPES[mode]
        if _engine is None:
            if keep_float32_weights is None:
                keep_float32_weights = _weight_bytes(model) <= KEEP_WEIGHTS_BYTES
            _engine = _Engine(model, max_images, max_cache_bytes, keep_float32_weights)
        self._engine = _engine

    def with_mode(self, mode: str) -> "FastRenderer":
        """The renderer of the same model in another mode, sharing this one's caches."""
        if mode == self.mode:
            return self
        return FastRenderer(self.model, mode, _engine=self._engine)

    @property
    def cache(self) -> ImageCache:
        return self._engine.cache

    @property
    def stats(self) -> dict[str, int]:
        return self._engine.stats

    def clear_cache(self) -> None:
        self._engine.cache.clear()

    # ------------------------------------------------------------------ encode
    @_tracked
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images (N,3,S,S) in [-1,1] -> stylemaps, float32 in both modes (a stylemap is an image's identity)."""
        images = images.to(self.model.device)
        self.model._check_images(images)
        if not self._engine.supported:
            return self.model.encode(images)
        engine = self._engine
        with engine.lock:
            stylemaps = engine.encoder(torch.float32).encode(images)
            if len(stylemaps) == 1:
                engine.encoded.put(stylemap_digest(stylemaps), True)
            return stylemaps

    # ------------------------------------------------------------------ expand
    @_tracked
    def expand(self, stylemap: torch.Tensor) -> Pyramid:
        """The w+ pyramid (float32, channels-last), cached per stylemap; local stylemap edits recompute windows."""
        self.model._check_stylemap(stylemap)
        if not self._engine.supported:
            return self.model.expand(stylemap)
        engine = self._engine
        with engine.lock:
            decoder = engine.decoder(torch.float32)
            if stylemap.shape[0] != 1:
                return decoder.expand(stylemap)
            stylemap = stylemap.detach().float().contiguous()
            entry = engine.cache.by_stylemap(stylemap)
            if entry is not None:
                return list(entry.pyramid)
            pyramid = None
            for other in engine.cache.others():
                if other.stylemap is not None:
                    pyramid = expand_window(decoder, stylemap, other.stylemap, other.pyramid)
                    if pyramid is not None:
                        break
            if pyramid is None:
                pyramid = decoder.expand(stylemap)
            entry = engine.cache.add(ImageEntry(pyramid, stylemap.clone()))
            if stylemap_digest(stylemap) in engine.encoded and self._maps_fit(decoder, pyramid):
                # An image this renderer encoded (not an edited or interpolated stylemap): make its
                # maps now, as part of encoding, so that an edit copies the reference's region
                # instead of convolving it, and an animation starts at once.
                engine.cache.promote(entry)
                engine.modulations(entry, self.dtype)
            return list(pyramid)

    def _maps_fit(self, decoder: PreparedDecoder, pyramid: Pyramid) -> bool:
        """Would this mode's maps of ``pyramid`` fit the cache budget beside what is cached?

        Fast mode always makes them (bfloat16: half the size); exact mode only when they fit, so
        that making them never evicts the maps of the image being edited.
        """
        if self.mode == "fast" or self._engine.cache.max_bytes is None:
            return True
        size = torch.finfo(self.dtype).bits // 8
        maps = sum(2 * step.gamma_weight.shape[0] * level.shape[-2] * level.shape[-1] * size
                   for step, level in zip(decoder.steps, pyramid))
        return self._engine.cache.nbytes + maps <= self._engine.cache.max_bytes

    # ------------------------------------------------------------------ render
    @_trimmed
    @_tracked
    def render(self, pyramid: Sequence[torch.Tensor], base: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """Image (N,3,S,S), unclamped, float32; ``base`` lets it recompute only what changed.

        Without ``base`` a cached pyramid is taken for an image of interest: its
        gamma/beta maps and image are cached for later edits. With ``base`` the
        pyramid is taken for a transient edit: the base's maps are patched and
        nothing new is cached.
        """
        pyramid = list(pyramid)
        if not self._engine.supported:
            return self.model.synthesize(pyramid)
        engine, dtype = self._engine, self.dtype
        with engine.lock:
            decoder = engine.decoder(dtype)
            engine.stats["renders"] += 1
            if pyramid[0].shape[0] != 1:
                return decoder.synthesize(decoder.modulations(pyramid))
            entry = engine.cache.by_pyramid(pyramid)
            if entry is not None and (base is None or dtype in entry.images):
                if base is None:
                    engine.cache.promote(entry)
                image = entry.images.get(dtype)
                if image is None:
                    image = decoder.synthesize(engine.modulations(entry, dtype))
                    entry.images[dtype] = image
                    engine.cache.touch(entry)
                return image.clone()
            base_entry = engine.cache.by_pyramid(base) if base is not None else None
            if base_entry is None:
                return decoder.synthesize(decoder.modulations(pyramid))
            engine.cache.promote(base_entry)
            patches = self._patches(pyramid, base_entry)
            engine.stats["incremental"] += 1
            return _synthesize_patched(decoder, engine.modulations(base_entry, dtype), patches)

    def _patches(self, pyramid: Pyramid, base: ImageEntry) -> list[ModPatch | None]:
        """gamma/beta patches of every styled layer of ``pyramid`` over the base's maps.

        The last result is remembered: an op that renders an edit and then the
        animation towards it (``render`` then ``render_path``) computes them once.
        """
        engine, dtype = self._engine, self.dtype
        memo = engine.last_patches
        if memo is not None and memo[0] == (base.key, dtype) and _same_pyramid(memo[1], pyramid):
            return memo[2]
        patches = self._compute_patches(pyramid, base)
        engine.last_patches = ((base.key, dtype), [(weakref.ref(t), _version(t)) for t in pyramid], patches)
        return patches

    def _compute_patches(self, pyramid: Pyramid, base: ImageEntry) -> list[ModPatch | None]:
        engine, dtype = self._engine, self.dtype
        decoder = engine.decoder(dtype)
        base_mods = engine.modulations(base, dtype)
        # Only images whose maps are already cached: computing a reference's maps in full
        # costs more than convolving the edited region directly.
        others = [o for o in engine.cache.others(base) if dtype in o.modulations]
        patches = []
        for i, (step, new, old) in enumerate(zip(decoder.steps, pyramid, base.pyramid)):
            new = new.to(old.dtype)
            changed = changed_cells(new, old)
            candidates = [
                (o.pyramid[i], o.modulations[dtype][i]) for o in others if _takes_from(new, o.pyramid[i], changed)
            ]
            patch = modulation_patch(step, new, old, base_mods[i], candidates, changed)
            if patch is not None:
                engine.stats["computed_cells"] += patch.computed_cells
                engine.stats["modulation_flops"] += int(patch.computed_cells * step.flops_per_cell)
            engine.stats["total_cells"] += new.shape[-1] * new.shape[-2]
            patches.append(patch)
        return patches

    # --------------------------------------------------------------- animation
    def render_path(
        self, base: Sequence[torch.Tensor], target: Sequence[torch.Tensor], ts: Iterable[float]
    ) -> Iterator[torch.Tensor]:
        """Frames of ``lerp(base, target, t)`` for each t, one at a time (stream them to the UI).

        gamma/beta are linear in the pyramid, so the target's maps are patched
        once and each frame lerps them; only the synthesis runs per frame.
        Equals ``render(editing.lerp_pyramid(base, target, t), base=base)``
        within float tolerance. Frames are computed as they are asked for.
        """
        from ..editing import lerp_pyramid

        base, target = list(base), list(target)
        engine = self._engine
        ts = [float(t) for t in ts]
        if not engine.supported or base[0].shape[0] != 1:
            for t in ts:
                yield self.render(lerp_pyramid(base, target, t), base=base)
            return
        with engine.lock, _tracking():  # never held across a yield: grad modes are the caller's
            base_entry = engine.cache.by_pyramid(base)
            if base_entry is None:
                base_entry = engine.cache.add(ImageEntry([t.contiguous(memory_format=CL) for t in base]), promote=True)
            engine.cache.promote(base_entry)
        patches = None  # made when the first frame that needs them is asked for: t = 0 comes out sooner
        for t in ts:
            if t == 0.0:
                frame = self.render(base_entry.pyramid)
            else:
                with engine.lock, _tracking():
                    if patches is None:
                        patches = self._patches(target, base_entry)
                    decoder = engine.decoder(self.dtype)
                    base_mods = engine.modulations(base_entry, self.dtype)
                    frame = _synthesize_patched(decoder, base_mods, patches, t)
                release_free_memory()  # (render() above trims on its own)
            yield frame

    @_trimmed
    @_tracked
    def decode(self, stylemap: torch.Tensor) -> torch.Tensor:
        return self.render(self.expand(stylemap))


def _weight_bytes(model: StyleMapGAN) -> int:
    """Bytes of the weights the renderer prepares (decoder and encoder; not the discriminator)."""
    nets = [model.generator.decoder] + ([model.encoder] if getattr(model, "encoder", None) is not None else [])
    return sum(p.numel() * p.element_size() for net in nets for p in net.parameters())


def _version(t: torch.Tensor) -> int | None:
    return None if t.is_inference() else t._version


def _same_pyramid(refs: Sequence[tuple[weakref.ref, int | None]], pyramid: Sequence[torch.Tensor]) -> bool:
    """The same level tensors as remembered, not modified in place since.

    (An inference tensor has no version counter: it is recognised by identity
    alone, and can only have been modified inside another ``inference_mode``.)
    """
    return len(refs) == len(pyramid) and all(r() is t and _version(t) == v for (r, v), t in zip(refs, pyramid))


def _takes_from(new: torch.Tensor, other: torch.Tensor, changed: torch.Tensor) -> bool:
    """Cheap screen: does ``new`` equal ``other`` at a changed cell (the middle one)?"""
    if other.shape != new.shape:
        return False
    idx = changed.nonzero()
    if idx.numel() == 0:
        return False
    y, x = (int(v) for v in idx[len(idx) // 2])
    return bool(torch.equal(new[0, :, y, x], other[0, :, y, x]))


def _synthesize_patched(
    decoder: PreparedDecoder,
    base_mods: Sequence[tuple[torch.Tensor, torch.Tensor]],
    patches: Sequence[ModPatch | None],
    t: float = 1.0,
) -> torch.Tensor:
    """Synthesis with each layer's patch written into the cached maps just for that layer."""

    def layers() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for mod, patch in zip(base_mods, patches):
            with patched_in_place(mod, patch, t) as patched:
                yield patched

    gen = layers()
    try:
        return decoder.synthesize(gen)
    finally:
        gen.close()  # restores the last layer's maps
