"""How op results reach the page: each output kind's components, the conversion of a run's tensors
(each once), the before/after display, and the content-named files (PNGs, GIFs) Gradio serves."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gradio as gr
from PIL import Image

from ..intake import images as imageio
from ..ops import spec

PNG_LEVEL = 1
"""zlib level of the PNGs the app writes: a 256 px result encodes in about 6 ms of CPU at 1 against 27 ms
at Pillow's default 6, for a file 16% larger, and each is on the way to the person's screen."""


class Converter:
    """How one run's tensors become what its output components are sent, each converted once.

    A plain run sends each value once, as PIL images (Gradio writes each into its cache). A
    streaming run sends values in several updates (its image first and last, each frame in every
    gallery update after it), and Gradio rewrites a PIL image's cache file in place each time it is
    sent, while the page or a client may be downloading it (truncated downloads were seen). So a
    streaming run converts with a ``folder``: each image becomes a PNG file written there once, which
    Gradio copies once and never rewrites; the folder is the run's and goes when the run ends.
    Conversions are cached by tensor identity, so a frame is encoded once however often it is sent.
    """

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        # By id of the tensor, which is kept with its conversions (no other tensor takes its id meanwhile).
        self._images: dict[int, tuple[Any, Image.Image]] = {}
        self._files: dict[int, str] = {}

    def pil(self, tensor: Any) -> Image.Image:
        """The tensor (1,3,S,S) as an image."""
        if id(tensor) not in self._images:
            self._images[id(tensor)] = (tensor, imageio.tensor_to_image(tensor))
        return self._images[id(tensor)][1]

    def image(self, tensor: Any) -> Image.Image | str:
        """What an image component is sent for the tensor: its image, or with a folder the path of its PNG."""
        image = self.pil(tensor)
        if self.folder is None:
            return image
        if id(tensor) not in self._files:
            path = self.folder / f"{len(self._files)}.png"
            image.save(path, format="PNG", compress_level=PNG_LEVEL)
            self._files[id(tensor)] = str(path)
        return self._files[id(tensor)]


@dataclass
class OutputBinding:
    item: spec.Output
    components: list[Any]
    """What the op's endpoint returns (also the API's outputs)."""
    to_values: Callable[[Any, Converter], list[Any]]
    """The components' values for the op's final value (a run's last update, what the API returns)."""
    views: list[Any] = field(default_factory=list)
    """Components only the browser shows, filled by ``show`` when a run ends (e.g. a before/after slider)."""
    show: Callable[[Any, Any], list[Any]] | None = None
    """``show(before, value)``: values of ``views`` for the op's value (a tensor) and its first input (PIL)."""
    live: list[Any] = field(default_factory=list)
    """The views that follow the value while a streaming run sends it (the slider), filled by ``follow``."""
    follow: Callable[[Any, Any], list[Any]] | None = None
    """``follow(before, value)``: values of ``live``, plain values (no ``gr.update``: see :meth:`cleared`)."""
    partial: Callable[[Any, Converter], list[Any]] | None = None
    """The components' values for a value a streaming op is still extending (frames so far: the gallery
    fills, the GIF comes with the last frame). None: the value is sent whole as it comes (``to_values``)."""

    def streamed_values(self, value: Any, convert: Converter) -> list[Any]:
        """The components' values for a value shown while the op still runs."""
        return (self.partial or self.to_values)(value, convert)

    def cleared(self) -> list[Any]:
        """Empty components, for an output a streaming run has not given yet (the last run's is gone).

        Not ``gr.skip()``: Gradio 6.31 turns every ``gr.skip()``/``gr.update()`` of an output into a new
        component instance that the session keeps for its lifetime (one Gallery per call; the
        1000-edit soak test's server grew by 5.4% instead of 0.0%).
        """
        return [None for _ in self.components]

    def blank(self) -> list[Any]:
        """Values that empty the components and the views: results that no longer apply (their input
        was refused). A download button goes with its file."""
        views = [gr.update(value=None, visible=False) if isinstance(v, gr.DownloadButton) else None for v in self.views]
        return [*self.cleared(), *views]


def display_pair(before: Image.Image | None, after: Image.Image, display: int) -> tuple[Image.Image, Image.Image]:
    """Before and after at the canvas size (nearest upscaling: the model's pixels stay visible)."""
    after = imageio.preview(after, display)
    before = after if before is None else imageio.preview(before.convert("RGB"), display)
    return before, after


def build_output(
    item: spec.Output, gif_dir: Path, prefix: str = "", display: int = 256, compare: bool = False
) -> OutputBinding:
    """Create the components showing one output (``elem_id`` ``<prefix>-<output>``).

    ``compare``: an image result is shown as a before/after slider against the op's first input
    image, at the canvas size, with its model-size PNG to download (the hidden ``gr.Image`` keeps
    the API's value).
    """
    elem_id = f"{prefix}-{item.name}" if prefix else None
    if isinstance(item, spec.ImageOutput):
        comp = gr.Image(
            label=item.title, type="pil", format="png", interactive=False, elem_id=elem_id, height=display + 60,
            elem_classes=["smapgan-result"], visible=not compare,
        )
        if not compare:
            return OutputBinding(item, [comp], lambda v, convert: [convert.image(v)])
        slider = gr.ImageSlider(
            label=f"{item.title}: before / after (drag)", type="pil", format="png", interactive=False,
            elem_id=f"{elem_id}-compare" if elem_id else None, elem_classes=["smapgan-slider"],
            buttons=["fullscreen"], max_height=display + 40,
        )
        download = gr.DownloadButton(
            f"Download {item.title.lower()} (PNG)", visible=False, size="sm",
            elem_id=f"{elem_id}-download" if elem_id else None,
        )

        last: list[Any] = [None]  # (before, value, views) of the last pair shown

        def compared(before: Any, value: Any) -> list[Any]:
            # Shown while a run streams and again when it ends: files written once (Gradio copies each
            # once) rather than images, whose cache files Gradio would rewrite while they load. The run's
            # end shows the pair its last update showed: those files again, not encoded a second time.
            seen = last[0]
            if seen is not None and seen[0] is before and seen[1] is value and all(map(os.path.exists, seen[2][0])):
                return seen[2]
            image = imageio.tensor_to_image(value)
            views = [tuple(str(write_file(side, gif_dir, ".png")) for side in display_pair(before, image, display))]
            last[0] = (before, value, views)
            return views

        def show(before: Any, value: Any) -> list[Any]:
            image = imageio.tensor_to_image(value)
            label = f"Download {item.title.lower()} ({image.size[0]}x{image.size[1]} PNG)"
            path = write_file(image, gif_dir, ".png")
            return [*compared(before, value), gr.update(value=str(path), label=label, visible=True)]

        return OutputBinding(
            item, [comp], lambda v, convert: [convert.image(v)], views=[slider, download], show=show,
            live=[slider], follow=compared,
        )
    if isinstance(item, spec.FramesOutput):
        gallery = gr.Gallery(
            label=item.title, format="png", columns=4, height="auto", interactive=False, elem_id=elem_id,
            object_fit="contain", elem_classes=["smapgan-frames"],
        )
        gif = gr.Image(
            label=f"{item.title} (GIF)", type="filepath", interactive=False, height=display + 60,
            elem_id=f"{elem_id}-gif" if elem_id else None, elem_classes=["smapgan-result"],
        )

        def frames(value: Any, convert: Converter) -> list[Any]:
            if not value:  # what ``cleared`` sends (Gradio sends an empty gallery for None): a run's last
                return [None, None]  # update then repeats its one before, and is not sent twice
            animation = write_file([convert.pil(f) for f in value], gif_dir, ".gif", item.duration_ms)
            return [[convert.image(f) for f in value], str(animation)]

        def frames_so_far(value: Any, convert: Converter) -> list[Any]:
            return [[convert.image(f) for f in value], None]  # and no GIF of an earlier run meanwhile

        return OutputBinding(item, [gallery, gif], frames, partial=frames_so_far)
    if isinstance(item, spec.NumbersOutput):
        comp = gr.JSON(label=item.title, elem_id=elem_id)
        return OutputBinding(item, [comp], lambda v, convert: [{k: round(float(x), 6) for k, x in v.items()}])
    raise TypeError(f"the app cannot show outputs of type {type(item).__name__}")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed meanwhile by a concurrent run's pruning
        return 0.0


def write_file(
    images: Image.Image | list[Image.Image], folder: Path, suffix: str, duration_ms: int = 100, keep: int = 64
) -> Path:
    """An image (PNG) or animation (GIF) as ``<content hash><suffix>`` in ``folder`` (at most ``keep`` of each).

    Named by content: Gradio's cache keys its copy of an output by content *and* file name,
    so a fresh name for every run would add a file to it each time the same result is shown.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(suffix=f"{suffix}.tmp", dir=folder)
    os.close(fd)
    try:
        if isinstance(images, list):
            imageio.save_gif(images, name, duration_ms)
        else:
            images.save(name, format="PNG", compress_level=PNG_LEVEL)
        digest = hashlib.blake2b(Path(name).read_bytes(), digest_size=16).hexdigest()
        path = folder / f"{digest}{suffix}"
        os.replace(name, path)  # atomic: a concurrent run of the same result writes the same bytes
    finally:
        Path(name).unlink(missing_ok=True)
    old = sorted((p for p in folder.glob(f"*{suffix}") if p != path), key=_mtime)
    for stale in old[: max(0, len(old) - keep + 1)]:  # bounded: Gradio keeps its own copy of what it served
        stale.unlink(missing_ok=True)
    return path
