"""Image and mask I/O shared by the CLI, the app and the ops.

Everything a user hands us (a path, bytes, a PIL image, an array) goes through
:func:`open_image`, which enforces size limits *before* decoding pixels (every
frame, page and sub-image is checked from the file's own headers by
:mod:`smapgan.intake.headers`, and the pixels are charged to the request's budget,
:func:`smapgan.intake.limits.pixel_budget`), applies the EXIF orientation and keeps
only the first frame. Anything unusable raises
:class:`ImageInputError` with a message meant for the user, never a decoder's
traceback. Images become tensors (N,3,S,S) in [-1,1]; masks become float
tensors (N,1,S,S) in {0,1}.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageOps

from . import headers
from . import limits

MAX_BYTES = limits.MAX_BYTES
"""Largest encoded image accepted (50 MiB)."""
MAX_PIXELS = limits.MAX_PIXELS
"""Largest decoded image accepted (width x height of any frame), checked from the headers before decoding."""
BOMB_PIXELS = 2 * Image.MAX_IMAGE_PIXELS
"""Past this a file is described as a decompression bomb (Pillow's own error threshold)."""

ImageSource = Union[str, os.PathLike, bytes, bytearray, Image.Image, np.ndarray]


class ImageInputError(ValueError):
    """An input image or mask cannot be used; the message says why, for the user."""


def _describe(source: object) -> str:
    if isinstance(source, (str, os.PathLike)):
        return f"image {Path(source).name!r}"  # the name only: server-side paths are not the user's business
    return "the image data"


def open_image(source: ImageSource, *, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open, check limits, load the first frame and apply the EXIF orientation (no mode change)."""
    what = _describe(source)
    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels)
    if isinstance(source, Image.Image):
        image = source
        _check_pixels(image.size, what, max_pixels)
        if image.tell() != 0:  # a caller's own animation: its first frame
            image.seek(0)
    else:
        data = _read(source, what, max_bytes)
        header = check_header(data, what, max_pixels)
        limits.charge_pixels(header.size[0] * header.size[1], what)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                # Only the plugin of the format checked above may read it (no other guess).
                image = Image.open(io.BytesIO(data), formats=[header.format])
        except Image.UnidentifiedImageError:
            raise ImageInputError(f"{what} is not an image in a format this app can read") from None
        except Exception as exc:  # hostile or unknown files: every decoder failure is a user error
            raise ImageInputError(f"{what} is not a readable image ({type(exc).__name__}: {exc})") from exc
        if image.size != header.size:  # our reading of the header and Pillow's disagree: trust neither
            raise ImageInputError(f"{what} is not a readable image (inconsistent header)")
    try:
        image.load()  # the first frame: an opened file is at frame 0; never count frames (n_frames walks them all)
    except Exception as exc:
        raise ImageInputError(f"{what} could not be decoded ({type(exc).__name__}: {exc})") from exc
    try:
        image = ImageOps.exif_transpose(image) or image
    except Exception:
        pass  # a broken EXIF block does not make the pixels unusable; keep the stored orientation
    return image


def check_header(data: bytes, what: str = "the image data", max_pixels: int = MAX_PIXELS) -> headers.Header:
    """The headers of encoded ``data``, every frame checked against ``max_pixels`` and the frame cap."""
    try:
        header = headers.inspect(data, limits.MAX_FRAMES)
    except headers.OverLimit as exc:
        raise ImageInputError(f"{what} is refused: {exc}") from None
    except headers.HeaderError as exc:
        if exc.unsupported:
            raise ImageInputError(
                f"{what} is not an image in a format this app can read ({', '.join(headers.ACCEPTED)})"
            ) from None
        raise ImageInputError(f"{what} is not an image in a format this app can read ({exc})") from None
    w, h = header.largest
    if w * h > BOMB_PIXELS:
        raise ImageInputError(f"{what} has too many pixels to decode; the limit is {max_pixels / 1e6:.0f} megapixels")
    if w < 1 or h < 1 or header.size[0] < 1 or header.size[1] < 1:
        raise ImageInputError(f"{what} has no pixels ({w}x{h})")
    if w * h > max_pixels:
        which = "" if header.frames == 1 else " (a frame of it)"
        raise ImageInputError(f"{what}{which} is {w}x{h} pixels; the limit is {max_pixels / 1e6:.0f} megapixels")
    return header


def image_size(source: ImageSource) -> tuple[int, int]:
    """Width and height of an image as :func:`open_image` would give them, read from its header only
    (before the EXIF orientation; nothing is decoded and nothing is charged to the request)."""
    if isinstance(source, Image.Image):
        return source.size
    if isinstance(source, np.ndarray):
        return (source.shape[1], source.shape[0])
    what = _describe(source)
    data = _read(source, what, MAX_BYTES)
    header = check_header(data, what)
    try:  # checked above: Pillow only reads the header here (no pixel is decoded)
        orientation = Image.open(io.BytesIO(data), formats=[header.format]).getexif().get(0x0112)
    except Exception:
        orientation = None
    w, h = header.size
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def decoding(source: ImageSource) -> Any:
    """Hold room in the process-wide decoding pool (:func:`smapgan.intake.limits.decoding`) for ``source``:
    around a decode and the conversions that follow it, until the image is model-sized."""
    try:
        w, h = image_size(source)
    except ImageInputError:
        w = h = 0  # open_image reports it
    return limits.decoding(w * h)


def _read(source: ImageSource, what: str, max_bytes: int) -> bytes:
    if isinstance(source, (str, os.PathLike)):
        if not Path(source).is_file():
            raise ImageInputError(f"{what} does not exist or is not a file")
        size = Path(source).stat().st_size
    elif isinstance(source, (bytes, bytearray)):
        size = len(source)
    else:
        raise ImageInputError(f"expected an image file, bytes or a PIL image, got {type(source).__name__}")
    if size > max_bytes:
        raise ImageInputError(f"{what} is {size / 2**20:.1f} MiB; the limit is {max_bytes / 2**20:.0f} MiB")
    if size == 0:
        raise ImageInputError(f"{what} is empty")
    return bytes(source) if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()


def _check_pixels(size: tuple[int, int], what: str, max_pixels: int) -> None:
    w, h = size
    if w < 1 or h < 1:
        raise ImageInputError(f"{what} has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise ImageInputError(f"{what} is {w}x{h} pixels; the limit is {max_pixels / 1e6:.0f} megapixels")


def _from_array(array: np.ndarray, max_pixels: int) -> Image.Image:
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ImageInputError(f"an image array must be HxW, HxWx3 or HxWx4, got shape {array.shape}")
    _check_pixels((array.shape[1], array.shape[0]), "image", max_pixels)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.dtype != np.uint8:
        array = _to_uint8(array.astype(np.float64))
    return Image.fromarray(np.ascontiguousarray(array))


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """High bit depth or float pixels to 8 bits: floats <= 1 are [0,1], <= 255 bytes, else 16-bit."""
    top = float(values.max()) if values.size else 0.0
    if values.dtype.kind == "f" and top <= 1.0:
        values = values * 255.0
    elif top > 255:
        values = values / 257.0
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info)


def to_rgb(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Any PIL mode to RGB: transparency composited on ``background``, 16-bit/float scaled to 8 bits."""
    if image.mode == "RGB":
        return image
    if has_alpha(image):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, background + (255,))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return Image.fromarray(_to_uint8(np.asarray(image, dtype=np.float64))).convert("RGB")
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageInputError(f"images in PIL mode {image.mode!r} are not supported ({exc})") from exc


def center_crop(image: Image.Image) -> Image.Image:
    """The largest centered square."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return image.crop((left, top, left + side, top + side)) if (w, h) != (side, side) else image


def fit(image: Image.Image, size: int) -> Image.Image:
    """Center crop then resize to ``size`` (area averaging down, bicubic up)."""
    image = center_crop(image)
    if image.size == (size, size):
        return image
    resample = Image.Resampling.BOX if image.size[0] > size else Image.Resampling.BICUBIC
    return image.resize((size, size), resample)


def load_image(source: ImageSource, size: int) -> Image.Image:
    """Open any image and return it as an RGB ``size`` x ``size`` PIL image (center crop + resize)."""
    with decoding(source):
        return fit(to_rgb(open_image(source)), size)


def mask_pixels(image: Image.Image) -> np.ndarray:
    """Boolean selection of a mask image at its own resolution.

    With a transparency channel that is used (a brush layer), a pixel is selected
    where it is not fully transparent; otherwise any non-black pixel is selected.
    """
    if has_alpha(image):
        alpha = np.asarray(image.convert("RGBA"))[..., 3]
        if alpha.min() < 255:
            return alpha > 0
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return np.asarray(image, dtype=np.float64) > 0
    if image.mode in ("1", "L"):
        return np.asarray(image.convert("L")) > 0
    return np.asarray(image.convert("RGB")).max(axis=2) > 0


def fit_mask(selected: np.ndarray, size: int) -> np.ndarray:
    """Center crop a boolean mask and resize it: a pixel is set where any source pixel under it is."""
    image = center_crop(Image.fromarray(selected.astype(np.uint8) * 255))
    if image.size[0] > size:
        image = image.resize((size, size), Image.Resampling.BOX)
    elif image.size[0] < size:
        image = image.resize((size, size), Image.Resampling.NEAREST)
    return np.asarray(image) > 0


def load_mask(source: ImageSource, size: int) -> torch.Tensor:
    """A mask file (any non-black or non-transparent pixel is selected) as a (1,1,size,size) float tensor."""
    with decoding(source):
        return mask_to_tensor(fit_mask(mask_pixels(open_image(source)), size))


def layers_mask(layers: Sequence[ImageSource], image: ImageSource | None, size: int) -> np.ndarray | None:
    """The union of brush layers drawn over ``image`` as a boolean mask of side ``size`` (None: no strokes).

    A layer of another size than the image (read from its header) is stretched onto it first, as the
    editor's canvas is; then the union is center-cropped and resized like the image.
    """
    union = layers_union(layers, image)
    return None if union is None else fit_mask(union, size)


def layers_union(layers: Sequence[ImageSource], image: ImageSource | None) -> np.ndarray | None:
    """The union of brush layers at ``image``'s own size (None: no strokes); see :func:`layers_mask`."""
    if not layers:
        return None
    shape = image_size(image) if image is not None else None
    union: np.ndarray | None = None
    for layer in layers:
        with decoding(layer):
            opened = open_image(layer)
            if shape is not None and opened.size != shape:
                opened = opened.resize(shape, Image.Resampling.NEAREST)
            selected = mask_pixels(opened)
            del opened
        union = selected if union is None else (union | selected)
    assert union is not None
    return union if union.any() else None


def mask_to_tensor(selected: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(selected, dtype=np.float32))[None, None]


def box_mask(box: tuple[float, float, float, float], size: int) -> torch.Tensor:
    """A rectangle ``(x0, y0, x1, y1)`` in fractions of the image side as a (1,1,size,size) mask."""
    x0, y0, x1, y1 = box
    if not all(0.0 <= v <= 1.0 for v in box) or x1 <= x0 or y1 <= y0:
        raise ImageInputError(f"a box must be x0,y0,x1,y1 in [0,1] with x0<x1 and y0<y1, got {box}")
    mask = torch.zeros(1, 1, size, size)
    c0, r0 = int(x0 * size), int(y0 * size)
    c1, r1 = max(c0 + 1, int(np.ceil(x1 * size))), max(r0 + 1, int(np.ceil(y1 * size)))
    mask[..., r0:r1, c0:c1] = 1.0
    return mask


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> (1,3,H,W) float tensor in [-1,1]."""
    array = np.asarray(to_rgb(image), dtype=np.float32)
    return torch.from_numpy(array).permute(2, 0, 1)[None] / 127.5 - 1.0


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    """(1,3,H,W) or (3,H,W) in [-1,1] (unclamped model output) -> RGB PIL image."""
    if tensor.ndim == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {tensor.shape[0]}")
        tensor = tensor[0]
    array = ((tensor.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).numpy())


def preview(image: Image.Image, display: int) -> Image.Image:
    """Upscale a model-size image by a whole factor (nearest) for display.

    Nearest upscaling by an integer factor and box downscaling invert each other
    exactly, so what a user paints on the preview maps back onto the very pixels
    the model sees.
    """
    factor = max(1, display // image.size[0])
    return image if factor == 1 else image.resize((image.size[0] * factor,) * 2, Image.Resampling.NEAREST)


def save_gif(frames: list[Image.Image], path: str | os.PathLike, duration_ms: int = 80) -> Path:
    """Write frames as a looping animated GIF."""
    if not frames:
        raise ValueError("no frames to save")
    path = Path(path)
    frames[0].save(
        path, format="GIF", save_all=True, append_images=frames[1:], duration=duration_ms, loop=0, disposal=2
    )
    return path
