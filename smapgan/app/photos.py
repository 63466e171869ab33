"""Uploads as photos: each image cropped the way the model wants (FFHQ face alignment when its
config says ``alignment: ffhq``, else the center crop), and the first one kept so that an op's
image result can be put back into it at the photo's resolution (:mod:`smapgan.intake.align`).

The app and its API share this path: :class:`PhotoContext` is the op context their handler runs
ops with, so an API call is aligned exactly as a Run in the browser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..intake import images as imageio
from ..intake.align import AlignedPhoto, FaceNotFound, align_photo, crop, open_photo
from ..intake.faces import FaceSupportMissing
from ..ops.context import OpContext
from ..ops.picture import Picture, PictureSource, load_picture
from ..ops.spec import OpError

CROPS = ("auto", "face", "center")
"""The app's ``crop`` choices: auto follows the model's config."""


def crop_mode(choice: Any, model: Any) -> str:
    """``crop`` (auto, face or center) as an alignment mode for ``model``: "face" or "center"."""
    choice = "auto" if choice in (None, "") else str(choice)
    if choice not in CROPS:
        raise OpError(f"crop must be one of {', '.join(CROPS)}; got {choice!r}")
    if choice == "auto":
        return "face" if getattr(model.config, "alignment", "none") == "ffhq" else "center"
    return choice


def face_number(value: Any) -> int:
    """The ``face`` parameter: which face of the first photo (0: the largest and surest)."""
    if value in (None, ""):
        return 0
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise OpError(f"face must be a whole number, got {value!r}") from None
    if not number.is_integer() or not 0 <= number <= 99:
        raise OpError(f"face must be a whole number from 0 to 99, got {value!r}")
    return int(number)


@dataclass
class PhotoContext(OpContext):
    """An op context whose pictures are cropped from photos: ``align`` ("face" or "center"), ``face``
    (the first photo's face to use). The first photo is kept for :meth:`in_photo`."""

    align: str = "center"
    face: int = 0
    photo: AlignedPhoto | None = None
    """The first photo as cropped, kept to put a result back into it."""
    read: int = 0

    def load_picture(self, value: Any) -> Picture:
        source = value if isinstance(value, PictureSource) else PictureSource(value)
        image = source.image
        if image is None or isinstance(image, (Picture, torch.Tensor, np.ndarray)):
            return super().load_picture(value)
        first, self.read = self.read == 0, self.read + 1
        if self.align == "center":
            width, height = imageio.image_size(image)  # from the header: nothing decoded yet
            if not first or width == height:
                # decoded as always; a square photo's center crop is the photo: no paste-back to keep it for
                return super().load_picture(value)
            # Decoded once and kept: the same crop load_picture makes, and its mask fitted the same way.
            self.photo = align_photo(open_photo(image), self.size, align="center")
            mask = self._center_mask(source, self.photo)
            return load_picture(PictureSource(imageio.image_to_tensor(self.photo.crop), mask), self.size)
        try:
            aligned = align_photo(open_photo(image), self.size, align="face", face=self.face if first else 0)
        except FaceSupportMissing as exc:
            raise OpError(str(exc)) from None
        except FaceNotFound:
            which = "the first image" if first else f"image {self.read}"
            raise FaceNotFound(
                f"no face was found in {which}; choose the center crop (Crop: center) to use it as it is"
            ) from None
        if first:
            self.photo = aligned
        mask = self._photo_mask(source, aligned)
        return load_picture(PictureSource(aligned.crop, mask), self.size)

    def _center_mask(self, source: PictureSource, photo: AlignedPhoto) -> Any:
        """A center crop's mask, as :func:`load_picture` fits it (layers read against the photo's size)."""
        if source.layers:
            selected = imageio.layers_mask(source.layers, photo.photo, self.size)
            return None if selected is None else imageio.mask_to_tensor(selected)
        return source.mask  # a file, image or tensor: load_picture fits it

    def _photo_mask(self, source: PictureSource, aligned: AlignedPhoto) -> Any:
        """The brush layers (or a mask image) drawn on the photo, cut like the photo (a tensor), or None."""
        if source.layers:
            selected = imageio.layers_union(source.layers, source.image)
        elif source.mask is None or isinstance(source.mask, torch.Tensor):
            return source.mask  # a tensor: already in the crop's coordinates
        else:
            with imageio.decoding(source.mask):
                opened = imageio.open_image(source.mask)
                if opened.size != aligned.photo.size:
                    opened = opened.resize(aligned.photo.size, Image.Resampling.NEAREST)
                selected = imageio.mask_pixels(opened)
        if selected is None:
            return None
        cut = crop(Image.fromarray(selected.astype(np.uint8) * 255).convert("RGB"), aligned.transform)
        return imageio.mask_to_tensor(np.asarray(cut.convert("L")) >= 128)

    @property
    def note(self) -> str:
        """What a person should know about the first photo (several faces: which one was used)."""
        return self.photo.note if self.photo is not None else ""

    def in_photo(self, result: torch.Tensor) -> Image.Image | None:
        """An image result put back into the first photo; None where there is none, or where the photo is
        its center crop itself (a square: the result says it all)."""
        if self.photo is None:
            return None
        width, height = self.photo.photo.size
        if self.photo.transform.method == "center" and width == height:
            return None
        return self.photo.paste_back(imageio.tensor_to_image(result))


def upload_preview(source: Any, model: Any, crop_choice: Any = "auto", face: Any = 0) -> tuple[int, Any, str, int]:
    """An upload as ``model`` will see it (:class:`~smapgan.app.inputs.PhotoIntake`): the model's side, and
    the crop to show beside the photo with a note and the number of faces; no crop (None) where the
    model simply center-crops, so that the center crop replaces the upload as any image's does."""
    mode = crop_mode(crop_choice, model)
    if mode == "center" and model.config.alignment != "ffhq":
        return model.config.size, None, "", 0
    try:
        aligned = align_photo(open_photo(source), model.config.size, align=mode, face=face_number(face))
    except FaceNotFound:
        raise FaceNotFound("no face was found in the photo; choose Crop: center to use the center crop") from None
    return model.config.size, aligned.crop, aligned.note, len(aligned.faces)
