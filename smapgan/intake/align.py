"""The crop a model sees, and the way back into the photo.

A crop is a square of the photo, possibly rotated: :class:`CropTransform` holds its four
corners (``quad``) in the photo's pixel coordinates. Two ways to choose it:

- ``face``: the FFHQ procedure of Karras et al. (CelebA-HQ was prepared the same way):
  the eye centres and the mouth's corners from the 68 landmarks give an oriented square
  around the face, resampled to the model's size (:func:`ffhq_transform`);
- ``center``: the largest centered square, what every upload got before (:func:`center_transform`).

:func:`align_photo` is the one call that turns an upload (decoded by :func:`open_photo`) into a
model-sized crop, and
:func:`paste_back` the one that puts an op's result back into the photo at its own
resolution, through the inverse transform with a feathered seam: outside the crop's
square the photo's pixels are returned unchanged, bit for bit.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from . import images as imageio
from .faces import Face

ALIGN_MODES = ("face", "center")
FFHQ_EYES = ((0.377, 0.469), (0.623, 0.469))
"""Mean eye centres of FFHQ-aligned faces, as fractions of the side (x, y): the image's left eye
first. From the published FFHQ 5-point template at 512 px ((193.0, 239.9), (318.9, 240.2))."""
FEATHER = 1 / 16
"""Width of the paste-back seam, as a fraction of the crop's side."""
EDGE_MARGIN = 2
"""Pixels (at the photo's scale) along the square's edge that are never pasted, so that
interpolation cannot carry the result past the square."""


class FaceNotFound(imageio.ImageInputError):
    """No face in the photo; the center crop works without one."""


class FaceChoiceError(imageio.ImageInputError):
    """The face asked for is not among those found."""


@dataclass(frozen=True)
class CropTransform:
    """A square crop of a photo: ``quad`` is its corners in photo pixels (top-left, bottom-left,
    bottom-right, top-right of the crop, which may be rotated), ``size`` the crop's side in pixels,
    ``photo_size`` the photo's (width, height), ``method`` how it was chosen ("face" or "center")."""

    quad: tuple[tuple[float, float], ...]
    size: int
    photo_size: tuple[int, int]
    method: str = "face"

    def __post_init__(self) -> None:
        if len(self.quad) != 4 or any(len(p) != 2 for p in self.quad):
            raise ValueError(f"a crop transform needs 4 corners (x, y), got {self.quad!r}")
        if self.size < 1:
            raise ValueError(f"a crop's size must be positive, got {self.size}")
        if self.side < 1e-6:
            raise ValueError("a crop's corners must span a square, not a point")

    @property
    def corners(self) -> np.ndarray:
        return np.asarray(self.quad, dtype=np.float64)

    @property
    def side(self) -> float:
        """The crop's side in photo pixels."""
        q = self.corners
        return float(np.hypot(*(q[3] - q[0])))

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Origin and the photo-space steps of one crop pixel along the crop's x and y."""
        q = self.corners
        return q[0], (q[3] - q[0]) / self.size, (q[1] - q[0]) / self.size

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Photo coordinates (N, 2) -> crop coordinates."""
        origin, ux, uy = self.axes()
        inverse = np.linalg.inv(np.stack([ux, uy], axis=1))
        return (np.asarray(points, dtype=np.float64) - origin) @ inverse.T

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "size": self.size,
            "photo_size": list(self.photo_size),
            "quad": [[float(x), float(y)] for x, y in self.quad],
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "CropTransform":
        try:
            return cls(
                quad=tuple((float(x), float(y)) for x, y in values["quad"]),
                size=int(values["size"]),
                photo_size=(int(values["photo_size"][0]), int(values["photo_size"][1])),
                method=str(values.get("method", "face")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a crop transform (quad, size, photo_size): {exc}") from exc

    def save(self, path: str | os.PathLike, **extra: Any) -> Path:
        """Write the transform (and ``extra`` entries, e.g. the face used) as JSON."""
        path = Path(path)
        path.write_text(json.dumps({**self.to_dict(), **extra}, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CropTransform":
        try:
            values = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: cannot read a crop transform ({exc})") from exc
        return cls.from_dict(values)


def ffhq_transform(landmarks: np.ndarray, size: int, photo_size: tuple[int, int]) -> CropTransform:
    """The FFHQ crop of a face from its 68 landmarks (Karras et al., the FFHQ data set's recipe).

    The crop's x axis follows the eyes, corrected by the eyes-to-mouth direction turned a
    quarter; its half side is the larger of twice the eye distance and 1.8 times the
    eyes-to-mouth distance; its centre is a tenth of the way from the eyes to the mouth.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (68, 2):
        raise ValueError(f"expected 68 landmarks (x, y), got an array of shape {points.shape}")
    eye_left, eye_right = points[36:42].mean(axis=0), points[42:48].mean(axis=0)
    eye_avg = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    mouth_avg = (points[48] + points[54]) / 2
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye + np.array([eye_to_mouth[1], -eye_to_mouth[0]])  # eye_to_eye - eye_to_mouth turned +90 degrees
    x = x / np.hypot(*x) * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.array([-x[1], x[0]])
    c = eye_avg + eye_to_mouth * 0.1
    quad = (c - x - y, c - x + y, c + x + y, c + x - y)
    return CropTransform(tuple((float(p[0]), float(p[1])) for p in quad), size, photo_size, "face")


def center_transform(photo_size: tuple[int, int], size: int) -> CropTransform:
    """The largest centered square (:func:`smapgan.intake.images.center_crop`'s) as a transform."""
    w, h = photo_size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    quad = ((left, top), (left, top + side), (left + side, top + side), (left + side, top))
    return CropTransform(tuple((float(a), float(b)) for a, b in quad), size, (w, h), "center")


def crop(photo: Image.Image, transform: CropTransform) -> Image.Image:
    """The RGB crop of ``photo`` that ``transform`` describes, ``size`` x ``size``.

    Only the crop's neighbourhood is read: it is box-reduced by a whole factor so that at
    most 2x is left, turned at that scale, then resized with Lanczos (antialiased), so a
    12 MP photo costs about as much as a small one. Parts outside the photo are mirrored
    and blurred, as in FFHQ, rather than black.
    """
    photo = imageio.to_rgb(photo)
    size = transform.size
    reduce = max(1, int(transform.side / size))
    origin, ux, uy = transform.axes()
    q = transform.corners
    margin = 4 * reduce
    x0, y0 = np.floor(q.min(axis=0)).astype(int) - margin
    x1, y1 = np.ceil(q.max(axis=0)).astype(int) + margin
    # Snap the region to the reduction's grid so that region pixel j covers photo pixels x0 + j*reduce...
    x1 = x0 + math.ceil((x1 - x0) / reduce) * reduce
    y1 = y0 + math.ceil((y1 - y0) / reduce) * reduce
    region = _padded_region(photo, (int(x0), int(y0), int(x1), int(y1)), reduce)
    # Turn the crop at the reduced scale into an intermediate of `side` pixels, then resize it.
    side = max(size, int(round(transform.side / reduce)))
    step = transform.size / side  # crop units per intermediate pixel
    a, b = ux * step / reduce, uy * step / reduce
    c = (origin - np.array([x0, y0])) / reduce
    data = (a[0], b[0], c[0], a[1], b[1], c[1])
    turned = region.transform((side, side), Image.Transform.AFFINE, data, Image.Resampling.BICUBIC)
    if side != size:
        turned = turned.resize((size, size), Image.Resampling.LANCZOS)
    return turned


def _padded_region(photo: Image.Image, box: tuple[int, int, int, int], reduce: int) -> Image.Image:
    """``box`` of ``photo`` (its sides multiples of ``reduce``) reduced by ``reduce``; where it leaves
    the photo, mirrored and blurred more with the distance from the photo's edge (FFHQ's padding)."""
    x0, y0, x1, y1 = box
    w, h = photo.size
    region = photo.crop(box)  # PIL fills what lies past the photo with black: mirrored over below
    if reduce > 1:
        region = region.reduce(reduce)
    if x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h:
        return region
    cols, rows = region.size
    # The region pixels made of photo pixels only.
    c0, r0 = max(0, -(-(0 - x0) // reduce)), max(0, -(-(0 - y0) // reduce))
    c1, r1 = min(cols, (w - x0) // reduce), min(rows, (h - y0) // reduce)
    if c1 - c0 < 2 or r1 - r0 < 2:
        raise imageio.ImageInputError("the crop lies (almost) entirely outside the photo")
    valid = np.asarray(region)[r0:r1, c0:c1]
    padded = np.pad(valid, ((r0, rows - r1), (c0, cols - c1), (0, 0)), mode="reflect")
    # Distance (region pixels) outside the photo: 0 inside, growing outward.
    dy = np.maximum(r0 - np.arange(rows), np.arange(rows) - (r1 - 1)).clip(0)
    dx = np.maximum(c0 - np.arange(cols), np.arange(cols) - (c1 - 1)).clip(0)
    reach = max(1.0, 0.1 * max(rows, cols))
    weight = np.clip(np.maximum(dy[:, None], dx[None, :]) / reach, 0.0, 1.0)[..., None]
    blurred = np.asarray(Image.fromarray(padded).filter(ImageFilter.GaussianBlur(max(1.0, 0.02 * max(rows, cols)))))
    mixed = padded + (blurred.astype(np.float32) - padded) * weight
    return Image.fromarray(np.clip(np.rint(mixed), 0, 255).astype(np.uint8))


def seam_mask(side: int, feather: float = FEATHER) -> Image.Image:
    """The paste-back weight over a square of ``side`` pixels: 0 along the edge (:data:`EDGE_MARGIN`),
    rising smoothly over ``feather`` of the side to 1 (an 8-bit "L" image)."""
    centres = np.arange(side) + 0.5
    distance = np.minimum(centres, side - centres) - EDGE_MARGIN
    band = max(1.0, feather * side)
    ramp = np.clip(distance / band, 0.0, 1.0)
    ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep: no visible kink where the seam starts
    weight = np.minimum(ramp[:, None], ramp[None, :])
    return Image.fromarray(np.rint(weight * 255).astype(np.uint8), "L")


def paste_back(
    photo: Image.Image, result: Image.Image, transform: CropTransform, feather: float = FEATHER
) -> Image.Image:
    """``result`` (an op's image of the crop) put back into ``photo`` at the photo's resolution.

    The inverse of ``transform`` maps it back, blended over a seam of ``feather`` of the side
    inside the crop's square; every photo pixel outside that square is returned unchanged.
    """
    photo = imageio.to_rgb(photo)
    if photo.size != tuple(transform.photo_size):
        raise imageio.ImageInputError(
            f"the photo is {photo.size[0]}x{photo.size[1]} but the crop was made from a "
            f"{transform.photo_size[0]}x{transform.photo_size[1]} one"
        )
    result = imageio.to_rgb(result)
    if result.size[0] != result.size[1]:
        raise imageio.ImageInputError(f"the result to paste back must be square, got {result.size[0]}x{result.size[1]}")
    w, h = photo.size
    q = transform.corners
    x0, y0 = np.maximum(np.floor(q.min(axis=0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(q.max(axis=0)).astype(int), (w, h))
    if x0 >= x1 or y0 >= y1:
        return photo.copy()
    # Scale first (separable, cheap), then turn at about 1:1 (bilinear is enough there).
    side = max(2 * EDGE_MARGIN + 2, int(round(transform.side)))
    if result.size[0] != side:
        filter_ = Image.Resampling.BICUBIC if side > result.size[0] else Image.Resampling.LANCZOS
        result = result.resize((side, side), filter_)
    # Photo pixel (x0 + a, y0 + b) -> scaled result's coordinates, as PIL's affine data.
    origin, ux, uy = transform.axes()
    inverse = np.linalg.inv(np.stack([ux, uy], axis=1)) * (side / transform.size)
    shift = inverse @ (np.array([x0, y0], dtype=np.float64) - origin)
    data = (inverse[0, 0], inverse[0, 1], shift[0], inverse[1, 0], inverse[1, 1], shift[1])
    box = (int(x1 - x0), int(y1 - y0))
    warped = result.transform(box, Image.Transform.AFFINE, data, Image.Resampling.BILINEAR)
    weight = seam_mask(side, feather).transform(box, Image.Transform.AFFINE, data, Image.Resampling.BILINEAR)
    out = photo.copy()
    out.paste(warped, (int(x0), int(y0)), weight)
    return out


@dataclass(frozen=True)
class AlignedPhoto:
    """An upload made ready for a model: the crop, how it was cut, and the faces seen.

    ``faces``: every face found, best first (empty for a center crop); ``face``: the index used;
    ``note``: what a person should know (several faces, which one was used), or "".
    """

    photo: Image.Image
    crop: Image.Image
    transform: CropTransform
    faces: tuple[Face, ...] = field(default=())
    face: int | None = None
    note: str = ""

    def paste_back(self, result: Image.Image, feather: float = FEATHER) -> Image.Image:
        """An op's result for :attr:`crop`, put back into the photo (:func:`paste_back`)."""
        return paste_back(self.photo, result, self.transform, feather)

    def face_info(self) -> dict[str, Any]:
        """The face used, for the transform's JSON (empty for a center crop)."""
        if self.face is None:
            return {}
        chosen = self.faces[self.face]
        return {"face": {"index": self.face, "of": len(self.faces), "box": list(chosen.box), "score": chosen.score}}


def open_photo(source: Any) -> Image.Image:
    """An upload (a path, bytes, PIL image or array) decoded under the intake's limits, as RGB at its own size."""
    with imageio.decoding(source):
        return imageio.to_rgb(imageio.open_image(source))


def align_photo(photo: Image.Image, size: int, *, align: str = "face", face: int = 0) -> AlignedPhoto:
    """A decoded photo (:func:`open_photo`) as a ``size`` x ``size`` crop for a model.

    ``align="face"``: the FFHQ alignment of face ``face`` (0: the largest and surest; needs
    ``smapgan[faces]``); :class:`FaceNotFound` when there is none. ``align="center"``: the
    largest centered square, exactly as uploads were cropped before.
    """
    if align not in ALIGN_MODES:
        raise ValueError(f"align must be one of {', '.join(ALIGN_MODES)}, got {align!r}")
    image = imageio.to_rgb(photo)
    if align == "center":
        return AlignedPhoto(image, imageio.fit(image, size), center_transform(image.size, size))
    from .faces import detect_faces

    faces = tuple(detect_faces(image))
    if not faces:
        raise FaceNotFound("no face was found in the photo; use the center crop (align none) instead")
    if not 0 <= face < len(faces):
        raise FaceChoiceError(f"face {face} was asked for, but the photo has {len(faces)} (0 to {len(faces) - 1})")
    transform = ffhq_transform(faces[face].landmarks, size, image.size)
    note = ""
    if len(faces) > 1:
        listing = "; ".join(f"{i}: {f.describe()}" for i, f in enumerate(faces))
        note = f"{len(faces)} faces found, face {face} used ({listing}); choose another by its number"
    return AlignedPhoto(image, crop(image, transform), transform, faces, face, note)
