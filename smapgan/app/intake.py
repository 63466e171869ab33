"""Upload intake for the app: what Gradio hands over (file payloads, editor canvases, blobs) as the
raw sources ``Op.run`` decodes (:class:`~smapgan.ops.PictureSource`: a file and its brush layers), with
the check that a payload names only this app's uploads. Nothing here decodes an image for a run.

Gradio's own preprocessing (which decodes without limits) is bypassed: every image goes through
:mod:`smapgan.intake.images`. The one Gradio internal the upload check needs is in :mod:`.gradio_internals`.
"""

from __future__ import annotations

import os
from typing import Any

from PIL import Image

from ..intake import images as imageio
from ..intake import limits
from ..ops import ImageInput, PictureSource
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


def editor_sources(payload: Any) -> dict[str, Any] | None:
    """Background, layers and composite of a raw ImageEditor payload, as paths or bytes.

    The browser uploads canvases as blobs kept for its session under ``payload["id"]`` (:mod:`.blobs`);
    API clients send files.
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


def image_source(item: ImageInput, payload: Any) -> Any:
    """A raw component payload as what ``Op.run`` decodes: a file, or for a canvas a
    :class:`PictureSource` with its brush layers (None: no image)."""
    if item.mask == "none":
        return file_source(payload)
    sources = editor_sources(payload)
    image = sources and (sources["background"] or sources["composite"])
    return None if image is None else PictureSource(image, layers=tuple(sources["layers"]))
