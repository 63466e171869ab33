"""Uploads as photos: each image cropped the way the model wants (FFHQ face alignment when its
config says ``alignment: ffhq``, else the center crop), and the first one kept so that an op's
image result can be put back into it at the photo's resolution (:mod:`smapgan.intake.align`).

The app and its API share this path: :class:`PhotoContext` is the op context their handler runs
ops with, so an API call is aligned exactly as a Run in the browser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..intake import images as imageio
from ..intake.align import AlignedPhoto, FaceNotFound, align_photo, crop, open_photo
from ..intake.faces import FaceSupportMissing
from ..ops.context import OpContext
from ..ops.spec import OpError, Picture

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
    (the first photo's face to use). ``photos`` keeps each photo as aligned, in the order read."""

    align: str = "center"
    face: int = 0
    photos: list[AlignedPhoto] = field(default_factory=list)

    def picture(self, image: Any, mask: Any = None) -> Picture:
        if image is None or isinstance(image, (Picture, torch.Tensor)):
            return super().picture(image, mask)
        first = not self.photos
        try:
            aligned = align_photo(open_photo(image), self.size, align=self.align, face=self.face if first else 0)
        except FaceSupportMissing as exc:
            raise OpError(str(exc)) from None
        except FaceNotFound:
            which = "the first image" if first else f"image {len(self.photos) + 1}"
            raise FaceNotFound(
                f"no face was found in {which}; choose the center crop (Crop: center) to use it as it is"
            ) from None
        self.photos.append(aligned)
        return super().picture(aligned.crop, self._photo_mask(mask, aligned))

    def _photo_mask(self, mask: Any, aligned: AlignedPhoto) -> Any:
        """A mask drawn on the photo (an image or boolean array at its size) cut like the photo."""
        if mask is None or isinstance(mask, torch.Tensor):
            return mask
        if isinstance(mask, np.ndarray):
            mask = Image.fromarray(mask.astype(np.uint8) * 255, "L")
        if isinstance(mask, Image.Image):
            if mask.size != aligned.photo.size:
                mask = mask.resize(aligned.photo.size, Image.Resampling.NEAREST)
            selected = imageio.mask_pixels(mask)
            if aligned.transform.method == "center":  # exactly as masks were always fitted
                return imageio.mask_to_tensor(imageio.fit_mask(selected, self.size))
            cut = crop(Image.fromarray(selected.astype(np.uint8) * 255).convert("RGB"), aligned.transform)
            return imageio.mask_to_tensor(np.asarray(cut.convert("L")) >= 128)
        return mask  # a mask file: fitted to the model's size as any mask file is

    @property
    def note(self) -> str:
        """What a person should know about the first photo (several faces: which one was used)."""
        return self.photos[0].note if self.photos else ""

    def in_photo(self, result: torch.Tensor) -> Image.Image | None:
        """An image result put back into the first photo (None: no photo was read)."""
        if not self.photos:
            return None
        return self.photos[0].paste_back(imageio.tensor_to_image(result))


def preview(source: Any, model: Any, crop_choice: Any = "auto", face: Any = 0) -> tuple[Image.Image, str, int]:
    """What the model will see of an upload (its crop), a note, and the number of faces found."""
    try:
        aligned = align_photo(open_photo(source), model.config.size, align=crop_mode(crop_choice, model),
                              face=face_number(face))
    except FaceNotFound:
        raise FaceNotFound("no face was found in the photo; choose Crop: center to use the center crop") from None
    return aligned.crop, aligned.note, len(aligned.faces)
