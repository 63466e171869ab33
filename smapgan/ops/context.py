"""What an op computes with: the model, a renderer, progress reporting and the session's handles.

Ops never call the networks directly; they go through :class:`OpContext`, which
turns each picture into an :class:`~smapgan.render.Encoded` handle (encoded, and
refined per ``inversion``: the renderer keeps both, a refined code under the
caller's ``session`` prefix) and renders through the renderer the caller chose
(any :class:`smapgan.render.Renderer`).
Every edit names the image it starts from (``base=``), or says ``base=None``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch

from ..model import StyleMapGAN
from ..preview import previewed
from ..render import Encoded, Pyramid, ReferenceRenderer, Renderer
from .inversion import Inversion, invert
from .picture import Picture, PictureSource, load_picture

ProgressFn = Callable[[float, str], None]


def _no_progress(fraction: float, desc: str) -> None:
    return None


@dataclass
class OpContext:
    """Everything an op function may use besides its inputs."""

    model: StyleMapGAN
    renderer: Renderer | None = None
    # Prefixes the keys of the codes refined for this caller (an app's browser session: its own).
    session: str = ""
    progress: ProgressFn = _no_progress
    # How pictures become stylemaps (encoder only, or refined per image: smapgan.ops.inversion);
    # ``stop`` ends a refinement early (the best code so far is used, not cached).
    inversion: Inversion = field(default_factory=Inversion)
    stop: threading.Event | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    """The last run's inputs as its function got them (images decoded): set by ``Op.run``."""
    previews: bool = False
    """Show an edit's local render before its exact one (:meth:`render_previewed`): the app's page asks
    for it; the CLI, Python callers and the API by default get the exact render alone."""
    showing_preview: bool = field(default=False, init=False)
    """Whether the image :meth:`render_previewed` gave last is a local preview (the exact one follows)."""

    def __post_init__(self) -> None:
        if self.renderer is None:
            self.renderer = ReferenceRenderer(self.model)

    @property
    def size(self) -> int:
        """The model's image side; pictures are this size."""
        return self.model.config.size

    def picture(self, image: Any, mask: Any = None) -> Picture:
        """A :class:`Picture` now, for Python callers that reuse one (``Op.run`` decodes what it is given)."""
        return load_picture(PictureSource(image, mask), self.size)

    def load_picture(self, value: Any) -> Picture:
        """How ``Op.run`` decodes a handed-over image (:func:`load_picture`); the app's context crops
        photos the way its model wants (:class:`smapgan.app.photos.PhotoContext`)."""
        return load_picture(value, self.size)

    def report(self, fraction: float, desc: str = "") -> None:
        """Tell the caller how far the op is (0..1)."""
        self.progress(min(max(float(fraction), 0.0), 1.0), desc)

    # ------------------------------------------------------------------ compute
    def encode(self, picture: Picture) -> Encoded:
        """The picture's handle: encoded (and refined, per ``inversion``) once; the renderer keeps it."""
        handle = self.renderer.encode(picture.image, key=picture.key)
        if not self.inversion.active:
            return handle

        def refine(stylemap: torch.Tensor) -> tuple[torch.Tensor, bool]:
            return invert(self.model, picture.image, stylemap, self.inversion, self.report, self.stop,
                          decoder=self.renderer.gradient_decoder())

        return self.renderer.refined(handle, self.inversion.key, refine, self.session)[0]

    def pyramid(self, image: Encoded) -> Pyramid:
        """The image's w+ pyramid (the renderer's cached tensors: edit them out of place)."""
        return self.renderer.pyramid(image)

    def expand(self, stylemap: torch.Tensor, *, base: Encoded | None) -> Pyramid:
        """The pyramid of an (edited) stylemap; ``base``: the image it was edited from, or None."""
        return self.renderer.expand(stylemap, base=base)

    def render(self, edit: Encoded | Sequence[torch.Tensor], *, base: Encoded | None) -> torch.Tensor:
        """Image (1,3,S,S) of a handle or an edited pyramid; ``base``: the image the edit started from, or None."""
        return self.renderer.render(edit, base=base)

    def render_previewed(self, edit: Sequence[torch.Tensor], *, base: Encoded) -> Iterator[torch.Tensor]:
        """The edit's image, the exact render last; with ``previews`` its local render first where it pays
        (``showing_preview`` says which one was given).

        Yield each image as an output (``yield {"image": image}``): the caller shows the preview at once,
        and a caller that stops iterating after it (the app, once a newer edit waits) skips the exact render.
        """
        if not self.previews:
            self.showing_preview = False
            yield self.render(edit, base=base)
            return
        for shown in previewed(self.renderer, edit, base):
            self.showing_preview = not shown.exact
            yield shown.image
        self.showing_preview = False

    def iter_path(self, base: Encoded, target: Sequence[torch.Tensor], ts: Sequence[float]) -> Iterator[torch.Tensor]:
        """Frames of ``lerp_pyramid(pyramid(base), target, t)`` for each t, each as soon as it is rendered.

        The renderer computes a frame only when it is asked for, so a streaming op can yield
        each one before the next is rendered (``growing("animation", ctx.iter_path(...))``);
        progress is reported per frame.
        """
        for i, frame in enumerate(self.renderer.render_path(base, target, ts)):
            self.report((i + 1) / len(ts), "rendering frames")
            yield frame

    def mean_stylemap(self) -> torch.Tensor:
        """The model's average mapping output (1,C,L,L), computed once per model (by the renderer)."""
        return self.renderer.mean_stylemap()
