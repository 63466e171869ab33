"""FastRenderer: the :class:`smapgan.render.Renderer` contract, doing less work on a CPU.

* ``encode``/``pyramid``/``expand`` run prepared networks (folded constants,
  channels-last, fused LayerNorm+affine). A handle's pyramid is cached under
  its key, with this mode's gamma/beta maps when they fit (so that an edit
  copies a reference's region instead of convolving it, and an animation
  starts at once); ``expand(stylemap, base)`` of a local stylemap edit
  recomputes only the changed windows of the base's pyramid.
* ``render(pyramid, base)`` reuses the base's cached gamma/beta maps and
  recomputes them only around the cells where the pyramid differs from the
  base's (copying them from another cached image where it equals that one);
  the synthesis convs always run in full, because LayerNorm is global.
* ``render_path(base, target, ts)`` renders an animation from ``base`` to
  ``target`` frame by frame (a generator: the UI can show each frame as it
  comes) with the edit's gamma/beta computed once and lerped per frame.
* Everything runs in inference mode: the cached tensors cannot be changed in
  place from outside.

Modes: ``"exact"`` (float32, equal to ``model.decode`` of the pyramid within
1e-4) and ``"fast"`` (bfloat16 convolutions and maps; PSNR >= 40 dB against
exact). The renderers of both modes share one engine and its caches.

The prepared networks fold the model's weights once: as for every renderer, the
weights are fixed for its life (``clear_cache()`` after changing them).
"""

from __future__ import annotations

import copy
import functools
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import torch

from ..model import StyleMapGAN
from ..render import Codes, Differentiable, Encoded, Pyramid, Renderer
from .cache import ImageCache, ImageEntry
from .graph import GradDecoder
from .incremental import ModPatch, changed_cells, dilate, expand_window, modulation_patch, synthesize_patched
from .idle import IdleWorker
from .lazy_maps import LazyMaps
from . import local
from .precision import EXACT, Precision, choose_fast, cpu_has_native_bf16
from .prepared import Modulation, PreparedDecoder, PreparedEncoder, flops_decoder, supports

T = TypeVar("T")
# Models up to this size keep a folded float32 copy of every weight (see FastRenderer).
KEEP_WEIGHTS_BYTES = 64 << 20
# The fast mode is offered (``offered_modes``) for models whose decode takes at least this many GFLOP:
# below, an edit takes tens of milliseconds and a request's fixed costs (HTTP, PNG) hide what bf16 saves
# (bundled 64 px model through the app: no visible gain, bench/fast_toggle.py).
FAST_MIN_GFLOP = 20.0
# A local render (``render_local``) whose region costs more than this fraction of a full synthesis falls back
# to the exact render: measured with bench/local_edit.py (see docs/fast.md, "The local render").
LOCAL_MAX_COST = 0.6
# A local render of an edit that changes more than this fraction of the image (the finest pyramid level's cells)
# falls back to the exact render: its frozen statistics drift too far from the edit's (worst-case PSNR against
# exact under 35 dB beyond it: bench/local_edit.py, docs/benchmarks.md).
LOCAL_MAX_AREA = 0.09
# The local render recomputes each layer at most this far (a fraction of the image side) around the pixels the
# edit changes, keeping the base's features beyond (None: the whole receptive field, which at an 8x8 stylemap
# is the whole image). Its error against the exact render is measured by bench/local_edit.py.
LOCAL_MARGIN: float | None = 1 / 16
# The normalization whose frozen-statistics error is measured (bench/local_edit.py): ``render_local`` renders
# every other mode exactly, even where the fast renderer prepares it.
LOCAL_NORMALIZATION = "LayerNorm"
# Work per step of the idle worker (a request waits at most about one step: ~10 ms at 200 GFLOP/s).
IDLE_STEP_FLOPS = 2e9


def _after_render(fn: Callable[..., T]) -> Callable[..., T]:
    """Once a render is done, let the idle worker complete the maps it began (see ``idle``)."""

    @functools.wraps(fn)
    def wrapper(self: "FastRenderer", *args: Any, **kwargs: Any) -> T:
        try:
            return fn(self, *args, **kwargs)
        finally:
            self._engine.after_render()

    return wrapper


class _Engine:
    """Prepared networks and the per-image cache, shared by the renderers of every mode of one model."""

    def __init__(self, model: StyleMapGAN, codes: Codes, max_images: int, max_bytes: int | None,
                 keep_float32: bool, fast: Precision | None, fill_when_idle: bool) -> None:
        self.model = model
        self._fast = fast  # the fast mode's precision: measured on first use (see ``precision``)
        self.codes = codes
        self.lock = codes.lock
        self.keep_float32 = keep_float32
        self.cache = ImageCache(max_images, max_bytes)
        self._decoders: dict[torch.dtype, PreparedDecoder] = {}
        self._encoders: dict[torch.dtype, PreparedEncoder] = {}
        self._gradient: GradDecoder | None = None
        self.supported = supports(model.generator.decoder) and model.device.type == "cpu"
        self.stats = {"renders": 0, "incremental": 0, "patch_sets": 0, "computed_cells": 0, "total_cells": 0,
                      "modulation_flops": 0, "map_cells": 0, "local": 0}
        codes.on_clear.append(self.cache.clear)
        codes.on_clear.append(self._forget_networks)
        self.idle = IdleWorker(self.lock, self._fill_step) if fill_when_idle else None

    def after_render(self) -> None:
        """A render is done: the idle worker may complete the maps it began (see ``smapgan.fast.idle``)."""
        if self.idle is not None:
            self.idle.kick()

    def _forget_networks(self) -> None:
        """Prepare the networks again on next use (from the model's weights as they are then)."""
        self._decoders.clear()
        self._encoders.clear()
        self._gradient = None

    @torch.inference_mode()
    def _fill_step(self) -> bool:
        """One step of the idle worker (under the lock): some tiles of the most recent incomplete maps."""
        for entry in self.cache.entries():
            for dtype, maps in entry.modulations.items():
                if maps.started() and maps.make_some(self.decoder(dtype), IDLE_STEP_FLOPS):
                    return True
        return False

    def precision(self, mode: str) -> Precision:
        """What each part of a render runs in: float32 when exact; what pays on this CPU when fast."""
        if mode == "exact":
            return EXACT
        if self._fast is None:
            self._fast = choose_fast(self.model) if self.supported else EXACT
        return self._fast

    def decoder(self, dtype: torch.dtype) -> PreparedDecoder:
        if dtype not in self._decoders:
            keep = dtype != torch.float32 or self.keep_float32
            self._decoders[dtype] = PreparedDecoder(self.model.generator.decoder, dtype, keep_weights=keep)
        return self._decoders[dtype]

    def encoder(self, dtype: torch.dtype) -> PreparedEncoder:
        if dtype not in self._encoders:
            keep = dtype != torch.float32 or self.keep_float32
            self._encoders[dtype] = PreparedEncoder(self.model.encoder, dtype, keep_weights=keep)
        return self._encoders[dtype]

    def gradient_decoder(self) -> GradDecoder:
        """The prepared float32 decoder that autograd can run through (refinement), made once."""
        if self._gradient is None:
            with torch.no_grad():
                self._gradient = GradDecoder(self.model.generator.decoder)
        return self._gradient

    def maps(self, entry: ImageEntry, dtype: torch.dtype) -> LazyMaps:
        """The entry's gamma/beta maps in ``dtype``: made tile by tile as renders ask for them."""
        maps = entry.modulations.get(dtype)
        if maps is None:
            maps = LazyMaps(entry.pyramid, dtype, self._count)
            entry.modulations[dtype] = maps
        return maps

    def _count(self, cells: int, flops: float) -> None:
        self.stats["map_cells"] += cells
        self.stats["modulation_flops"] += int(flops)


class FastRenderer(Renderer):
    """Renderer with per-image caches and incremental edits; ``mode`` "exact" (default) or "fast"."""

    modes = ("exact", "fast")

    def __init__(
        self,
        model: StyleMapGAN,
        mode: str = "exact",
        *,
        max_images: int = 3,
        max_cache_bytes: int | None = 896 << 20,
        keep_float32_weights: bool | None = None,
        fast_precision: Precision | None = None,
        fill_when_idle: bool = False,
        local_max_cost: float = LOCAL_MAX_COST,
        local_margin: float | None = LOCAL_MARGIN,
        local_max_area: float = LOCAL_MAX_AREA,
        local_conv_dtype: torch.dtype | None = None,
    ) -> None:
        """``max_images``/``max_cache_bytes`` bound the per-image cache (see ``smapgan.fast.cache``); the
        default bytes hold, at 256 px, an edited pair's pyramids and maps (730 MB) and the features one base
        keeps for local renders (123 MB, ``render_local``): with 768 MB the reference lost its maps to them and
        every next edit made them again.

        ``keep_float32_weights``: keep a folded float32 copy of all the weights
        (as large as the model) instead of folding the resizer's and the
        gamma/beta convs' weights when they are used (the synthesis convs' are
        always kept); the bfloat16 copy of the fast mode is always kept (half
        the size). ``None`` (default): keep it when the model's weights take at
        most ``KEEP_WEIGHTS_BYTES`` (small models, where folding on every call is
        a large share of an edit and the copy costs little).

        ``fast_precision``: the fast mode's dtypes per part; ``None`` (default):
        measured on this CPU when the fast mode is first used (``precision``).

        ``fill_when_idle``: after a render, a background thread completes (in small
        steps, under the lock) the maps the render made only in part, so that the
        next edit of the same images finds them (``smapgan.fast.idle``). The app
        turns it on; off, renders do only what they need, deterministically.

        ``local_max_cost``: ``render_local`` renders exactly when its region would cost more
        than this fraction of a full synthesis (1.0: always local where it can); ``local_margin``:
        how far around the edited pixels it recomputes, a fraction of the image side (None: as far as
        the edit reaches, so that it equals a full render with the base's statistics); ``local_max_area``:
        ``render_local`` renders exactly when the edit changes more than this fraction of the image
        (1.0: whatever its area), where the frozen statistics would be too far from the edit's;
        ``local_conv_dtype``: the dtype ``render_local`` convolves in (the windows' synthesis convs and the rim's
        gamma/beta), even in the exact mode: it is a preview the exact render follows. None (default): bfloat16
        on CPUs with native bf16 dot products (there both run 2x faster, and the worst-case error against exact
        stays the float32 preview's: docs/benchmarks.md), else this mode's dtype. The decoder keeps a copy of
        the styled layers' weights in it (113 MiB at 256 px in bf16). This mode's dtype with
        ``local_margin=None``: the preview equals ``render_frozen`` to float tolerance.
        """
        super().__init__(model, mode, Codes())
        self.local_max_cost = local_max_cost
        self.local_margin = local_margin
        self.local_max_area = local_max_area
        if local_conv_dtype is None:
            local_conv_dtype = torch.bfloat16 if cpu_has_native_bf16() else None
        self.local_conv_dtype = local_conv_dtype
        if keep_float32_weights is None:
            keep_float32_weights = _weight_bytes(model) <= KEEP_WEIGHTS_BYTES
        self._engine = _Engine(model, self.codes, max_images, max_cache_bytes, keep_float32_weights, fast_precision,
                               fill_when_idle)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until the idle worker has completed the maps begun so far (benchmarks, tests)."""
        return self._engine.idle is None or self._engine.idle.wait_idle(timeout)

    @property
    def precision(self) -> Precision:
        """This mode's dtype per part (the fast mode's is measured on the first call)."""
        return self._engine.precision(self.mode)

    @property
    def dtype(self) -> torch.dtype:
        """The decoder's dtype (gamma/beta maps and synthesis) in this mode."""
        return self.precision.decoder

    @property
    def code_tag(self) -> str:
        return self.precision.code_tag

    def offered_modes(self) -> tuple[str, ...]:
        """"fast" only where it pays: bf16 is faster on this CPU and an edit is heavy enough
        (``FAST_MIN_GFLOP``) that the saving is not lost in a request's fixed costs."""
        fast = self._engine.precision("fast")
        heavy = sum(flops_decoder(self.model.generator.decoder).values()) >= FAST_MIN_GFLOP * 1e9
        return self.modes if heavy and not fast.is_exact else ("exact",)

    def with_mode(self, mode: str) -> "FastRenderer":
        if mode == self.mode:
            return self
        if mode not in self.modes:
            raise ValueError(f"this renderer has no {mode!r} mode (it offers {', '.join(self.modes)})")
        other = copy.copy(self)  # the same engine: one set of caches for every mode
        other.mode = mode
        return other

    @property
    def cache(self) -> ImageCache:
        return self._engine.cache

    @property
    def stats(self) -> dict[str, int]:
        return self._engine.stats

    def gradient_decoder(self) -> Differentiable:
        """The decoder with the prepared (folded, channels-last) weights, run out of place so that
        autograd can go through it: 1.2-1.6x less CPU time per refinement step than the model's modules."""
        if not self._engine.supported:
            return self.model
        with self._engine.lock:
            return self._engine.gradient_decoder()

    # ------------------------------------------------------------------ encode
    @torch.inference_mode()
    def encode_stylemaps(self, images: torch.Tensor) -> torch.Tensor:
        """Float32 stylemaps; the fast mode may run the encoder in bf16 (its codes are then keyed apart:
        ``code_tag``), so that an exact render never starts from a bf16 code."""
        images = images.to(self.model.device)
        self.model._check_images(images)
        if not self._engine.supported:
            return self.model.encode(images)
        with self._engine.lock:
            return self._engine.encoder(self.precision.encoder).encode(images)

    # ------------------------------------------------------------------ pyramids
    @torch.inference_mode()
    def pyramid(self, image: Encoded) -> Pyramid:
        if not self._engine.supported:
            return self.model.expand(image.stylemap)
        with self._engine.lock:
            return list(self._entry(image).pyramid)

    def _entry(self, image: Encoded) -> ImageEntry:
        """The handle's cache entry (its pyramid), made if it is not cached; maps come when a render needs them."""
        engine = self._engine
        decoder = engine.decoder(torch.float32)
        entry = engine.cache.get(image.key)
        if entry is None:
            stylemap = image.stylemap.to(self.model.device).detach().float().contiguous()
            self.model._check_stylemap(stylemap)
            entry = engine.cache.add(ImageEntry(image.key, decoder.expand(stylemap), stylemap))
        return entry

    @torch.inference_mode()
    def expand(self, stylemap: torch.Tensor, base: Encoded | None = None) -> Pyramid:
        """Float32, channels-last; with ``base``, a local stylemap edit recomputes only its windows."""
        self.model._check_stylemap(stylemap)
        if not self._engine.supported:
            return self.model.expand(stylemap)
        with self._engine.lock:
            decoder = self._engine.decoder(torch.float32)
            if base is not None and stylemap.shape[0] == 1:
                entry = self._entry(base)
                pyramid = expand_window(decoder, stylemap.detach().float(), entry.stylemap, entry.pyramid)
                if pyramid is not None:
                    return pyramid
            return decoder.expand(stylemap)

    # ------------------------------------------------------------------ render
    @_after_render
    @torch.inference_mode()
    def render(self, edit: Encoded | Sequence[torch.Tensor], base: Encoded | None = None) -> torch.Tensor:
        """Image (N,3,S,S), unclamped, float32.

        A handle's image is cached. A pyramid with ``base`` is synthesized from
        the base's cached maps patched where the pyramid differs; nothing new
        is cached. A pyramid without a base is synthesized in full.
        """
        engine, dtype = self._engine, self.dtype
        if not engine.supported:
            return self.model.synthesize(self.pyramid(edit) if isinstance(edit, Encoded) else list(edit))
        with engine.lock:
            engine.stats["renders"] += 1
            if isinstance(edit, Encoded):
                return self._image(self._entry(edit)).clone()
            pyramid = list(edit)
            decoder = engine.decoder(dtype)
            if base is None or pyramid[0].shape[0] != 1:
                return decoder.synthesize(decoder.modulations(pyramid))
            entry = self._entry(base)
            changed = changed_by_level(pyramid, entry)
            if self._differs_everywhere(pyramid, entry, changed):  # (a lerp of stylemaps): the base gives nothing
                return decoder.synthesize(decoder.modulations(pyramid))
            mods, patches = self._patches(pyramid, entry, changed)
            if all(p is None for p in patches):  # the base itself
                return self._image(entry).clone()
            engine.stats["incremental"] += 1
            return synthesize_patched(decoder, mods, patches)

    @_after_render
    @torch.inference_mode()
    def render_local(self, edit: Sequence[torch.Tensor], base: Encoded) -> tuple[torch.Tensor, bool]:
        """The edit with the base's normalization statistics, recomputed only where it changes (``local``).

        (image, exact): exact (the plain ``render``) where the local render would not pay
        (``local_max_cost``), or cannot be made (batches, unsupported models, an edit that changes
        every cell). The base's features are recorded by its first local render (a full synthesis).
        """
        engine, dtype = self._engine, self.dtype
        pyramid = list(edit)
        if not self._local_supported() or pyramid[0].shape[0] != 1:
            return self.render(pyramid, base=base), True
        with engine.lock:
            entry = self._entry(base)
            changed = changed_by_level(pyramid, entry)  # compared once: the area and the patches read it too
            if self._differs_everywhere(pyramid, entry, changed):
                return self.render(pyramid, base=base), True
            if float(changed[-1].float().mean()) > self.local_max_area:  # too far from the base's statistics
                return self.render(pyramid, base=base), True
            mods, patches = self._patches(pyramid, entry, changed, self.local_conv_dtype)
            if all(p is None for p in patches):
                return self._image(entry).clone(), True
            decoder = engine.decoder(dtype)
            features = self._features(entry)
            engine.stats["renders"] += 1
            margin = None if self.local_margin is None else max(1, round(self.local_margin * features.image.shape[-1]))
            image = local.render_local(decoder, mods, patches, features, self.local_max_cost, margin,
                                       self.local_conv_dtype)
            if image is None:
                engine.stats["incremental"] += 1
                if self.local_conv_dtype not in (None, dtype):  # the patches were made for the preview
                    mods, patches = self._patches(pyramid, entry, changed)
                return synthesize_patched(decoder, mods, patches), True
            engine.stats["local"] += 1
            return image, False

    @_after_render
    @torch.inference_mode()
    def render_frozen(self, edit: Sequence[torch.Tensor], base: Encoded) -> torch.Tensor:
        """The whole synthesis of the edit with the base's normalization statistics: what ``render_local``
        equals with ``local_margin=None`` (tests, benchmarks). LayerNorm models on the CPU only."""
        engine, dtype = self._engine, self.dtype
        if not engine.supported:
            raise ValueError("frozen statistics need a model the fast renderer prepares (LayerNorm, CPU)")
        with engine.lock:
            entry = self._entry(base)
            mods, patches = self._patches(list(edit), entry)
            features = self._features(entry)
            frozen = functools.partial(local.frozen_normalize, features)
            return synthesize_patched(engine.decoder(dtype), mods, patches, normalize=frozen)

    def local_ready(self, base: Encoded) -> bool:
        """Are ``base``'s features for a local render recorded (in this mode's dtype)? Unsupported models: True
        (their ``render_local`` is the exact render, with nothing to record)."""
        if not self._local_supported():
            return True
        with self._engine.lock:
            entry = self._engine.cache.get(base.key)
            return entry is not None and self.dtype in entry.features

    @torch.inference_mode()
    def prepare_local(self, base: Encoded) -> None:
        """Record ``base``'s features for local renders of its edits now (a full synthesis), if not yet."""
        if self._local_supported():
            with self._engine.lock:
                self._features(self._entry(base))

    def _local_supported(self) -> bool:
        """A local render only where its error is measured: prepared models of ``LOCAL_NORMALIZATION``."""
        return self._engine.supported and self.model.config.normalize_mode == LOCAL_NORMALIZATION

    def _features(self, entry: ImageEntry) -> local.BaseFeatures:
        """The base's recorded features and statistics in this mode's dtype (a full synthesis the first time)."""
        engine, dtype = self._engine, self.dtype
        features = entry.features.get(dtype)
        if features is None:
            for other in engine.cache.others(entry):  # one base at a time keeps features: the one being edited
                if other.features:
                    other.features.clear()
                    engine.cache.measure(other)
            entry.features.clear()
            decoder = engine.decoder(dtype)
            features = local.synthesize_recording(decoder, engine.maps(entry, dtype).all(decoder))
            decoder.steps_in(self.local_conv_dtype or dtype)  # the preview's weights, made now rather than in one
            entry.features[dtype] = features
            entry.images.setdefault(dtype, features.image)
            engine.cache.touch(entry)
        return features

    def _image(self, entry: ImageEntry) -> torch.Tensor:
        image = entry.images.get(self.dtype)
        if image is None:
            engine = self._engine
            decoder = engine.decoder(self.dtype)
            image = decoder.synthesize(engine.maps(entry, self.dtype).all(decoder))
            entry.images[self.dtype] = image
            engine.cache.touch(entry)
        return image

    def _patches(self, pyramid: Pyramid, base: ImageEntry, changed: Sequence[torch.Tensor] | None = None,
                 compute_dtype: torch.dtype | None = None) -> tuple[list[Modulation], list[ModPatch | None]]:
        """The base's maps (made where the edit keeps them) and each styled layer's patch over them.

        ``changed``: each level's cells where the pyramid differs from the base's, when the caller compared them.
        ``compute_dtype``: the dtype the patches' own cells are convolved in (default: this mode's; the local
        preview's bf16), stored in this mode's; the base's maps and cells copied from cached images are this mode's.

        The base's maps are made only outside the cells an edit changes (and their neighbours); a
        cached image the edit copied from gives its maps only under the cells it gave (both lazily,
        tile by tile: ``lazy_maps``); what neither covers is computed for the edit alone.
        """
        engine, dtype = self._engine, self.dtype
        engine.stats["patch_sets"] += 1
        decoder = engine.decoder(dtype)
        base_maps = engine.maps(base, dtype)
        others = engine.cache.others(base)
        mods, patches = [], []
        if changed is None:
            changed = changed_by_level(pyramid, base)
        steps = decoder.steps_in(compute_dtype or dtype)
        for i, (step, new, old) in enumerate(zip(steps, pyramid, base.pyramid)):
            new = new.to(old.dtype)
            mods.append(base_maps.level(decoder, i, ~dilate(changed[i], 1)))
            candidates = [
                (o.pyramid[i], functools.partial(self._maps_at, o, i))
                for o in others if _takes_from(new, o.pyramid[i], changed[i])
            ]
            patch = modulation_patch(step, new, old, mods[i], candidates, changed[i])
            if patch is not None:
                engine.stats["computed_cells"] += patch.computed_cells
                engine.stats["modulation_flops"] += int(patch.computed_cells * step.flops_per_cell)
            engine.stats["total_cells"] += new.shape[-1] * new.shape[-2]
            patches.append(patch)
        for other in others:  # their maps may have grown: re-measure, then enforce the byte budget
            engine.cache.measure(other)
        engine.cache.touch(base)
        return mods, patches

    def _differs_everywhere(self, pyramid: Pyramid, base: ImageEntry, changed: Sequence[torch.Tensor]) -> bool:
        """Does every cell of every level differ from the base (``changed``), and no cached image match the first level?

        Then patching would convolve every map anyway, through boxes and copies: a plain render is cheaper.
        """
        if not all(bool(c.all()) for c in changed):
            return False
        first = pyramid[0].to(base.pyramid[0].dtype)
        return not any(o.pyramid[0].shape == first.shape and not bool(changed_cells(first, o.pyramid[0]).all())
                       for o in self._engine.cache.others(base))

    def _maps_at(self, entry: ImageEntry, i: int, need: torch.Tensor, make: bool = True) -> Modulation | None:
        """``entry``'s level ``i`` maps, made on ``need``; with ``make=False``, None unless they are made there."""
        maps = self._engine.maps(entry, self.dtype)
        if not make and not maps.made_on(i, need):
            return None
        return maps.level(self._engine.decoder(self.dtype), i, need)

    # --------------------------------------------------------------- animation
    def render_path(self, base: Encoded, target: Sequence[torch.Tensor], ts: Iterable[float]) -> Iterator[torch.Tensor]:
        """Frames of ``lerp(pyramid(base), target, t)`` for each t, one at a time (stream them to the UI).

        gamma/beta are linear in the pyramid, so the target's maps are patched
        once and each frame lerps them; only the synthesis runs per frame.
        Equals ``render(editing.lerp_pyramid(pyramid(base), target, t), base=base)``
        within float tolerance. Frames are computed as they are asked for.
        """
        target = list(target)
        if not self._engine.supported or target[0].shape[0] != 1:
            yield from super().render_path(base, target, ts)
            return
        patches = None  # made when the first frame that needs them is asked for: t = 0 comes out sooner
        for t in (float(t) for t in ts):
            if t == 0.0:
                frame = self.render(base)
            else:
                engine = self._engine
                with engine.lock, torch.inference_mode():  # never held across a yield
                    entry = self._entry(base)
                    decoder = engine.decoder(self.dtype)
                    if patches is None:
                        _, patches = self._patches(target, entry)
                    # A frame lerps the base's maps inside the edit's boxes too: all of them are needed.
                    frame = synthesize_patched(decoder, engine.maps(entry, self.dtype).all(decoder), patches, t)
                engine.after_render()  # (render() above does it on its own)
            yield frame

    @_after_render
    def decode(self, stylemap: torch.Tensor) -> torch.Tensor:
        return self.render(self.expand(stylemap))


def _weight_bytes(model: StyleMapGAN) -> int:
    """Bytes of the weights the renderer prepares (decoder and encoder; not the discriminator)."""
    nets = [model.generator.decoder] + ([model.encoder] if model.encoder is not None else [])
    return sum(p.numel() * p.element_size() for net in nets for p in net.parameters())


def changed_by_level(pyramid: Pyramid, base: ImageEntry) -> list[torch.Tensor]:
    """Each level's (H,W) bool cells where an edit differs from its base (batch 1)."""
    return [changed_cells(new.to(old.dtype), old) for new, old in zip(pyramid, base.pyramid)]


def _takes_from(new: torch.Tensor, other: torch.Tensor, changed: torch.Tensor) -> bool:
    """Cheap screen: does ``new`` equal ``other`` at a changed cell (the middle one)?"""
    if other.shape != new.shape:
        return False
    idx = changed.nonzero()
    if idx.numel() == 0:
        return False
    y, x = (int(v) for v in idx[len(idx) // 2])
    return bool(torch.equal(new[0, :, y, x], other[0, :, y, x]))
