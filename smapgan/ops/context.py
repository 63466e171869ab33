"""What an op computes with: the model, a renderer, progress reporting and a stylemap cache.

Ops never call the networks directly; they go through :class:`OpContext`, which
encodes pictures once per session (:class:`StylemapCache`) and renders through
whichever renderer the caller chose (the exact :class:`smapgan.render.Renderer`
or a faster one with the same interface).
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import torch

from .. import imageio
from ..model import StyleMapGAN
from .inversion import Inversion, invert
from .spec import Picture

Pyramid = list[torch.Tensor]
ProgressFn = Callable[[float, str], None]


class RendererLike(Protocol):
    """The interface of :class:`smapgan.render.Renderer` that ops rely on."""

    model: StyleMapGAN

    def encode(self, images: torch.Tensor) -> torch.Tensor: ...

    def expand(self, stylemap: torch.Tensor) -> Pyramid: ...

    def render(self, pyramid: Sequence[torch.Tensor], base: Sequence[torch.Tensor] | None = None) -> torch.Tensor: ...


def renderer_mode(renderer: Any) -> str:
    """The name of the mode a renderer runs in ("exact" unless it says otherwise)."""
    return str(getattr(renderer, "mode", "exact"))


def renderer_modes(renderer: Any) -> tuple[str, ...]:
    """Modes a renderer offers (``renderer.modes``), e.g. ("exact", "fast"); the app shows a toggle if > 1."""
    modes = getattr(renderer, "modes", None)
    return tuple(modes) if modes else (renderer_mode(renderer),)


def with_mode(renderer: Any, mode: str) -> Any:
    """The renderer running in ``mode``: itself, or ``renderer.with_mode(mode)`` when it offers one."""
    if mode == renderer_mode(renderer):
        return renderer
    if mode not in renderer_modes(renderer) or not hasattr(renderer, "with_mode"):
        raise ValueError(f"this renderer has no {mode!r} mode (it offers {', '.join(renderer_modes(renderer))})")
    return renderer.with_mode(mode)


def _no_progress(fraction: float, desc: str) -> None:
    return None


class StylemapCache:
    """Per-session LRU cache: image key (and renderer mode) -> stylemap and pyramid.

    A cache, not state: entries are recomputed when evicted. Bounded to
    ``maxsize`` images so a long session does not grow without limit.
    """

    def __init__(self, maxsize: int = 8) -> None:
        self.maxsize = maxsize
        self._entries: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_compute(self, key: tuple[str, str, str], compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self.hits += 1
                return self._entries[key]
        value = compute()
        with self._lock:
            self.misses += 1
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize * 2:  # a stylemap and a pyramid per image
                self._entries.popitem(last=False)
        return value

    def discard(self, key: tuple[str, str, str]) -> None:
        """Forget one entry (e.g. a refinement that was stopped early)."""
        with self._lock:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __deepcopy__(self, memo: dict) -> "StylemapCache":
        # gr.State deep-copies its initial value for every session: give each a fresh, empty cache.
        return StylemapCache(self.maxsize)


# Cache (weakly keyed by model): the mean stylemap over 4096 mapped z, used by truncation.
_MEAN_STYLEMAPS: "weakref.WeakKeyDictionary[StyleMapGAN, torch.Tensor]" = weakref.WeakKeyDictionary()


@dataclass
class OpContext:
    """Everything an op function may use besides its inputs."""

    model: StyleMapGAN
    renderer: RendererLike | None = None
    cache: StylemapCache = field(default_factory=StylemapCache)
    progress: ProgressFn = _no_progress
    # How pictures become stylemaps (encoder only, or refined per image: smapgan.ops.inversion);
    # ``stop`` ends a refinement early (the best code so far is used, not cached).
    inversion: Inversion = field(default_factory=Inversion)
    stop: threading.Event | None = None

    def __post_init__(self) -> None:
        if self.renderer is None:
            from ..render import Renderer

            self.renderer = Renderer(self.model)

    @property
    def size(self) -> int:
        """The model's image side; pictures are this size."""
        return self.model.config.size

    @property
    def mode(self) -> str:
        return renderer_mode(self.renderer)

    def picture(self, image: Any, mask: Any = None) -> Picture:
        """A :class:`Picture` from any image source and an optional mask source (file, bytes, PIL, tensor)."""
        if isinstance(image, Picture):
            return image if mask is None else Picture(image.image, self._mask(mask), image.key)
        if isinstance(image, torch.Tensor):
            tensor = image if image.ndim == 4 else image[None]
            if tuple(tensor.shape[1:]) != (3, self.size, self.size):
                raise imageio.ImageInputError(
                    f"an image tensor must be (1,3,{self.size},{self.size}), got {tuple(image.shape)}"
                )
        else:
            tensor = imageio.image_to_tensor(imageio.load_image(image, self.size))
        return Picture(tensor, None if mask is None else self._mask(mask), imageio.tensor_hash(tensor))

    def _mask(self, mask: Any) -> torch.Tensor:
        if isinstance(mask, torch.Tensor):
            m = mask.float()
            while m.ndim < 4:
                m = m[None]
            if m.shape[-2:] != (self.size, self.size):
                m = torch.nn.functional.interpolate(m, size=(self.size, self.size), mode="nearest")
            return (m > 0).float()
        return imageio.load_mask(mask, self.size)

    def report(self, fraction: float, desc: str = "") -> None:
        """Tell the caller how far the op is (0..1)."""
        self.progress(min(max(float(fraction), 0.0), 1.0), desc)

    # ------------------------------------------------------------------ compute
    def stylemap(self, picture: Picture) -> torch.Tensor:
        """The picture's stylemap (1,C,L,L), encoded (and refined, per ``inversion``) once per session."""
        return self._stylemap(picture)[0]

    def _stylemap(self, picture: Picture) -> tuple[torch.Tensor, bool]:
        """(stylemap, complete): a refinement stopped early is used but not cached."""
        encoded = self.cache.get_or_compute(
            ("stylemap", picture.key, self.mode), lambda: self.renderer.encode(picture.image)
        )
        if not self.inversion.active:
            return encoded, True
        key = ("stylemap", picture.key, f"{self.mode}|{self.inversion.key}")
        outcome = self.cache.get_or_compute(
            key, lambda: invert(self.model, picture.image, encoded, self.inversion, self.report, self.stop)
        )
        if not outcome.complete:
            self.cache.discard(key)
        return outcome.stylemap, outcome.complete

    def pyramid(self, picture: Picture) -> Pyramid:
        """The picture's w+ pyramid (its stylemap expanded), computed once per session."""
        if getattr(self.renderer, "caches_pyramids", False):  # its own bounded cache: do not hold a second copy
            return list(self.renderer.expand(self.stylemap(picture)))
        mode = self.mode if not self.inversion.active else f"{self.mode}|{self.inversion.key}"
        key = ("pyramid", picture.key, mode)
        stylemap, complete = self._stylemap(picture)
        pyramid = self.cache.get_or_compute(key, lambda: list(self.renderer.expand(stylemap)))
        if not complete:
            self.cache.discard(key)
        return pyramid

    def expand(self, stylemap: torch.Tensor) -> Pyramid:
        """Expand an (edited) stylemap to a pyramid."""
        return list(self.renderer.expand(stylemap))

    def render(self, pyramid: Sequence[torch.Tensor], base: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """Image (1,3,S,S) from a pyramid; ``base`` is the pyramid the edit started from."""
        return self.renderer.render(pyramid, base=base)

    def render_path(
        self, base: Sequence[torch.Tensor], target: Sequence[torch.Tensor], ts: Sequence[float]
    ) -> list[torch.Tensor]:
        """Frames of ``lerp_pyramid(base, target, t)``; a renderer with ``render_path`` does it faster."""
        fast = getattr(self.renderer, "render_path", None)
        frames: list[torch.Tensor] = []
        if fast is not None:
            for i, frame in enumerate(fast(base, target, ts)):
                frames.append(frame)
                self.report((i + 1) / len(ts), "rendering frames")
            return frames
        from ..editing import lerp_pyramid

        for i, t in enumerate(ts):
            frames.append(self.render(lerp_pyramid(base, target, t), base=base))
            self.report((i + 1) / len(ts), "rendering frames")
        return frames

    def mean_stylemap(self) -> torch.Tensor:
        """The model's average mapping output (1,C,L,L), computed once per model."""
        mean = _MEAN_STYLEMAPS.get(self.model)
        if mean is None:
            mean = self.model.mean_stylemap()
            _MEAN_STYLEMAPS[self.model] = mean
        return mean
