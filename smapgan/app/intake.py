"""Upload intake for the app: what Gradio hands over (file payloads, editor canvases, blobs) as the
files and masks the image decoder reads, with the check that a payload names only this app's uploads.

Gradio's own preprocessing (which decodes without limits) is bypassed: every image goes through
:mod:`smapgan.intake.images`. The one Gradio internal the upload check needs is in :mod:`.gradio_internals`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from PIL import Image

from ..intake import images as imageio
from ..intake import limits
from ..ops import spec
from ..ops.context import OpContext
from . import blobs, gradio_internals


def preview_image(source: Any, model_size: int, display: int) -> Image.Image:
    """What the model will see (center crop + resize), upscaled for display."""
    return imageio.preview(imageio.load_image(source, model_size), display)


def file_source(payload: Any) -> Any:
    """The file behind a raw (not preprocessed) Gradio file payload: a path, bytes, or None."""
    if payload is None or isinstance(payload, (bytes, bytearray)):
        return payload or None
    if isinstance(payload, str):
        return _uploaded(payload) if payload else None
    if isinstance(payload, dict):
        path = payload.get("path")
        return _uploaded(path) if path else None
    path = getattr(payload, "path", None)
    if path is None:
        raise imageio.ImageInputError(f"expected an image file, got {type(payload).__name__}")
    return _uploaded(path)


def _uploaded(path: Any) -> Any:
    """``path``, if it may be read for the request being served: a file Gradio stored (an upload or output).

    Gradio checks the paths of file payloads only when they carry its ``meta`` marker; with
    preprocessing off, a bare ``{"path": "/any/server/file"}`` would reach the decoder. Outside a
    running app (the CLI, direct calls) any path is the caller's own and is left alone.
    """
    if gradio_internals.serving_app() is None:
        return path
    if not isinstance(path, (str, os.PathLike)) or not gradio_internals.is_in_or_equal(path, gradio_internals.upload_folder()):
        raise imageio.ImageInputError("only files uploaded to this app can be used; upload the image instead")
    return path


def editor_sources(component: Any, payload: Any) -> dict[str, Any] | None:
    """Background, layers and composite of a raw ImageEditor payload, as paths or bytes.

    The browser uploads canvases as blobs kept for its session under ``payload["id"]`` (:mod:`.blobs`);
    API clients send files. Gradio's own preprocessing (which decodes without limits)
    is bypassed so that every image goes through :mod:`smapgan.intake.images`.
    """
    if payload is None:
        return None
    if not isinstance(payload, dict):
        return {"background": file_source(payload), "layers": [], "composite": None}
    blob_id = payload.get("id")
    stored = blobs.take(blob_id) if blob_id is not None else None  # only this session's own uploads
    if stored is not None:
        return {
            "background": stored["background"] or None,
            "layers": [layer for layer in stored["layers"] if layer],
            "composite": stored["composite"] or None,
        }
    layers = payload.get("layers") or []
    if not isinstance(layers, list) or len(layers) > limits.MAX_LAYERS:
        count = len(layers) if isinstance(layers, list) else "malformed"
        raise imageio.ImageInputError(f"an editor value has {count} layers; the limit is {limits.MAX_LAYERS}")
    return {
        "background": file_source(payload.get("background")),
        "layers": [s for s in (file_source(layer) for layer in layers) if s is not None],
        "composite": file_source(payload.get("composite")),
    }


def editor_mask(sources: dict[str, Any], model_size: int) -> np.ndarray | None:
    """Union of an editor's layers as a boolean mask at the model's size (None: no strokes)."""
    union = editor_union(sources)
    return None if union is None else imageio.fit_mask(union, model_size)


def editor_union(sources: dict[str, Any]) -> np.ndarray | None:
    """Union of an editor's layers at its image's size (None: no strokes)."""
    layers = sources.get("layers") or []
    if not layers:
        return None
    background = sources.get("background") or sources.get("composite")
    size = imageio.image_size(background) if background is not None else None  # header only
    union: np.ndarray | None = None
    for layer in layers:
        with imageio.decoding(layer):
            image = imageio.open_image(layer)
            if size is not None and image.size != size:
                image = image.resize(size, Image.Resampling.NEAREST)
            selected = imageio.mask_pixels(image)
            del image
        union = selected if union is None else (union | selected)
    assert union is not None
    return union if union.any() else None


def picture(ctx: OpContext, item: spec.ImageInput, component: Any, payload: Any) -> spec.Picture | None:
    """A raw component payload as a Picture (images and masks decoded by smapgan.intake.images)."""
    if item.mask == "none":
        source = file_source(payload)
        return None if source is None else ctx.picture(source)
    sources = editor_sources(component, payload)
    if not sources:
        return None
    image = sources.get("background") or sources.get("composite")
    if image is None:
        return None
    # At the photo's size: the context cuts the mask as it cuts the photo (a center or aligned crop).
    union = editor_union(sources)
    return ctx.picture(image, None if union is None else Image.fromarray(union.astype(np.uint8) * 255, "L"))
