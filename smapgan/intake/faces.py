"""Faces in a photo and their 68 landmarks, with dlib (the optional ``smapgan[faces]`` extra).

dlib's HOG detector and its 68-point shape predictor are what the FFHQ alignment of
Karras et al. was made with, and the predictor ships inside ``face-recognition-models``
on PyPI, so nothing is downloaded at run time. That package's ``__init__`` imports
``pkg_resources`` (gone from current setuptools), so its file is found by path, without
importing the package.

Detection runs on a grayscale copy reduced by a whole factor to at most :data:`DETECT_SIDE`
pixels (a 12 MP photo's cost is then about a 1 MP one's; faces under about 8% of the
photo's longest side are not found); small photos are upsampled once by the detector
instead. Faces come back best first: by size times detector score, so that a weak,
spurious detection never wins over a clear face.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

INSTALL_HINT = "pip install 'smapgan[faces]'"
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
DETECT_SIDE = 1024
"""Longest side (pixels), at most, of the copy that faces are detected on."""
UPSAMPLE_BELOW = 768
"""Photos whose longest side is under this are upsampled once by the detector (finds smaller faces)."""


class FaceSupportMissing(RuntimeError):
    """The landmark detector of the ``faces`` extra is not installed; the message says how to install it."""


@dataclass(frozen=True)
class Face:
    """One detected face, in the photo's pixel coordinates (pixel centres at integer + 0.5).

    ``box``: (left, top, right, bottom); ``score``: the detector's confidence (higher is surer);
    ``landmarks``: (68, 2) x, y of the iBUG 300-W points (36-41 one eye, 42-47 the other, 48-59 the
    mouth's outline).
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray

    @property
    def area(self) -> float:
        left, top, right, bottom = self.box
        return max(right - left, 0.0) * max(bottom - top, 0.0)

    @property
    def preference(self) -> float:
        """How much this face is the photo's subject: size times detector score."""
        return self.area * max(self.score, 0.0)

    def describe(self) -> str:
        left, top, right, bottom = self.box
        return f"{right - left:.0f}x{bottom - top:.0f} px at ({left:.0f}, {top:.0f}), score {self.score:.2f}"


def rank_faces(faces: list[Face]) -> list[Face]:
    """Best first: the largest and surest face leads (a weak detection in a corner comes last)."""
    return sorted(faces, key=lambda face: face.preference, reverse=True)


def predictor_path() -> Path:
    """The 68-point predictor inside ``face_recognition_models``, found without importing that package."""
    spec = importlib.util.find_spec("face_recognition_models")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / "models" / PREDICTOR_FILE
        if path.is_file():
            return path
    raise FaceSupportMissing(
        f"face alignment needs dlib's 68-point landmark model ({PREDICTOR_FILE} from face-recognition-models), "
        f"which is not installed: {INSTALL_HINT}"
    )


def _import_dlib() -> Any:
    try:
        import dlib
    except ImportError as exc:
        raise FaceSupportMissing(
            f"face alignment needs the dlib landmark detector, which is not installed: {INSTALL_HINT}"
        ) from exc
    return dlib


class Landmarker:
    """dlib's frontal face detector and 68-point shape predictor, loaded once (the predictor is 100 MB)."""

    def __init__(self) -> None:
        dlib = _import_dlib()
        path = predictor_path()
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(path))
        self._lock = threading.Lock()  # dlib's objects are not documented as thread-safe

    def faces(self, photo: Image.Image) -> list[Face]:
        """Every face of ``photo`` (any PIL mode), best first (:func:`rank_faces`)."""
        factor = max(1, -(-max(photo.size) // DETECT_SIDE))
        work = photo.reduce(factor) if factor > 1 else photo
        gray = np.asarray(work.convert("L"))
        upsample = 1 if max(work.size) < UPSAMPLE_BELOW else 0
        with self._lock:
            rects, scores, _ = self._detector.run(gray, upsample, 0.0)
            found = []
            for rect, score in zip(rects, scores):
                shape = self._predictor(gray, rect)
                points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
                box = np.array([rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1], dtype=np.float64)
                # Work-image pixel (i) has its centre at i + 0.5; scale centres back to the photo.
                found.append(
                    Face(
                        box=tuple(float(v) for v in box * factor),
                        score=float(score),
                        landmarks=(points + 0.5) * factor,
                    )
                )
        return rank_faces(found)


@functools.cache
def landmarker() -> Landmarker:
    """The process's :class:`Landmarker`, loaded on first use (about a second)."""
    return Landmarker()


def detect_faces(photo: Image.Image) -> list[Face]:
    """Every face of ``photo`` with its landmarks, best first. Needs ``smapgan[faces]``
    (:class:`FaceSupportMissing` says how to install it)."""
    return landmarker().faces(photo)
