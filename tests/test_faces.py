"""Face alignment (FFHQ procedure) and paste-back: smapgan.intake.faces / align, `smapgan align`.

The photo is scikit-image's astronaut (a real portrait shipped with the package); the no-face
and two-face photos are composed from it.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("dlib", reason="needs the faces extra (pip install 'smapgan[faces]')")
skimage_data = pytest.importorskip("skimage.data")

from smapgan.cli import main as cli_main  # noqa: E402
from smapgan.intake import align, faces  # noqa: E402


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(skimage_data.astronaut())


@pytest.fixture(scope="module")
def no_face(astronaut: Image.Image) -> Image.Image:
    """The astronaut with her head painted over."""
    pixels = np.array(astronaut)
    pixels[40:220, 140:310] = 128
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def two_faces(astronaut: Image.Image) -> Image.Image:
    """Her head twice: full size on the left, 0.7x on the right."""
    head = astronaut.crop((80, 0, 370, 300))
    photo = Image.new("RGB", (560, 320), (128, 128, 128))
    photo.paste(head, (0, 0))
    photo.paste(head.resize((203, 210), Image.Resampling.LANCZOS), (330, 60))
    return photo


def eye_centres(face: faces.Face) -> np.ndarray:
    return np.stack([face.landmarks[36:42].mean(axis=0), face.landmarks[42:48].mean(axis=0)])


def crop_coordinates(transform: align.CropTransform) -> np.ndarray:
    """Where each photo pixel's centre lands in the crop (H, W, 2)."""
    w, h = transform.photo_size
    xs, ys = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    return transform.to_crop(np.stack([xs, ys], axis=-1).reshape(-1, 2)).reshape(h, w, 2)


# ----------------------------------------------------------------------------- alignment
def test_eyes_land_on_the_ffhq_template(astronaut):
    aligned = align.align_photo(astronaut, 256)
    assert aligned.crop.size == (256, 256) and aligned.transform.method == "face"
    # Landmarks detected again on the crop: the eyes sit where FFHQ puts them, within 2% of the side.
    again = faces.detect_faces(aligned.crop)
    assert len(again) == 1
    eyes = eye_centres(again[0]) / 256
    assert np.abs(eyes - np.array(align.FFHQ_EYES)).max() < 0.02, eyes
    # The transform maps the photo's eyes to the same places (it is the crop's geometry).
    mapped = aligned.transform.to_crop(eye_centres(aligned.faces[0])) / 256
    assert np.abs(mapped - eyes).max() < 0.02


def test_the_crop_is_upright_and_not_mirrored(astronaut):
    """The image's left eye stays on the left and the mouth below the eyes."""
    again = faces.detect_faces(align.align_photo(astronaut, 128).crop)[0]
    left, right = eye_centres(again)
    mouth = again.landmarks[48:60].mean(axis=0)
    assert left[0] < right[0] and mouth[1] > max(left[1], right[1]) + 10


def test_ffhq_transform_geometry():
    """A frontal face: the crop is 4 eye distances wide, centred a tenth of the way to the mouth."""
    points = np.zeros((68, 2))
    points[36:42] = (100.0, 100.0)
    points[42:48] = (140.0, 100.0)
    points[48], points[54] = (110.0, 136.0), (130.0, 136.0)
    t = align.ffhq_transform(points, 64, (300, 300))
    assert t.side == pytest.approx(160.0)
    centre = t.corners.mean(axis=0)
    assert centre == pytest.approx((120.0, 103.6))
    assert t.corners[0] == pytest.approx((40.0, 23.6))  # top-left: no turn for a level face


def test_faces_are_ranked_by_size_and_score():
    """dlib's HOG (colour, upsampled once) reports a second, weak face in the astronaut's lower left,
    the same size as hers: the score puts hers first, whatever order the detector gives."""
    marks = np.zeros((68, 2))
    spurious = faces.Face(box=(126, 335, 216, 426), score=0.12, landmarks=marks)
    hers = faces.Face(box=(175, 76, 266, 167), score=1.16, landmarks=marks)
    tiny_but_sure = faces.Face(box=(0, 0, 20, 20), score=2.0, landmarks=marks)
    ranked = faces.rank_faces([spurious, tiny_but_sure, hers])
    assert [f.score for f in ranked] == [1.16, 0.12, 2.0]


def test_two_faces_are_reported_and_either_can_be_chosen(two_faces):
    first = align.align_photo(two_faces, 64)
    assert len(first.faces) == 2 and first.face == 0
    assert "2 faces found" in first.note and "face 0 used" in first.note
    assert first.transform.corners.mean(axis=0)[0] < 280  # the larger head, on the left
    second = align.align_photo(two_faces, 64, face=1)
    assert second.transform.corners.mean(axis=0)[0] > 280
    with pytest.raises(align.FaceChoiceError, match="face 2 was asked for, but the photo has 2"):
        align.align_photo(two_faces, 64, face=2)


def test_no_face_is_a_clear_error_and_the_center_crop_still_works(no_face):
    with pytest.raises(align.FaceNotFound, match="no face was found.*center crop"):
        align.align_photo(no_face, 64)
    centred = align.align_photo(no_face, 64, align="center")
    assert centred.crop.size == (64, 64) and centred.faces == () and centred.transform.method == "center"


def test_a_crop_past_the_photos_edge_is_mirrored_not_black(astronaut):
    corner = astronaut.crop((150, 50, 512, 512))  # her face near the top-left corner
    aligned = align.align_photo(corner, 128)
    q = aligned.transform.corners
    assert q.min() < 0  # the crop reaches past the photo
    pixels = np.asarray(aligned.crop)
    assert pixels[:8, :8].mean() > 40  # black padding would be ~0 there
    back = aligned.paste_back(aligned.crop)
    outside = (crop_coordinates(aligned.transform) < 0).any(-1) | (crop_coordinates(aligned.transform) > 128).any(-1)
    assert np.array_equal(np.asarray(back)[outside], np.asarray(corner)[outside])


# ----------------------------------------------------------------------------- paste-back
def test_paste_back_round_trip(astronaut):
    """An op that returns its input gives the photo back: exactly outside the crop's square,
    closely inside it; a real edit changes the inside and nothing outside."""
    aligned = align.align_photo(astronaut, 256)
    photo = np.asarray(astronaut)
    where = crop_coordinates(aligned.transform)
    outside = ((where < 0) | (where > 256)).any(-1)
    inner = ((where > 32) & (where < 224)).all(-1)
    assert outside.sum() > 0.5 * outside.size and inner.sum() > 10_000

    back = np.asarray(aligned.paste_back(aligned.crop))
    assert back.shape == photo.shape
    assert np.array_equal(back[outside], photo[outside])
    assert np.abs(back[inner].astype(int) - photo[inner]).mean() < 4

    edited = Image.fromarray(255 - np.asarray(aligned.crop))
    pasted = np.asarray(aligned.paste_back(edited))
    assert np.array_equal(pasted[outside], photo[outside])
    assert np.abs(pasted[inner].astype(int) - (255 - photo[inner].astype(int))).mean() < 4


def test_paste_back_refuses_another_photo(astronaut):
    aligned = align.align_photo(astronaut, 64)
    with pytest.raises(align.imageio.ImageInputError, match="crop was made from a 512x512"):
        align.paste_back(astronaut.resize((256, 256)), aligned.crop, aligned.transform)


def test_center_transform_pastes_back_onto_the_center_crop(astronaut):
    wide = astronaut.resize((512, 300))
    aligned = align.align_photo(wide, 64, align="center")
    assert aligned.transform.corners.tolist() == [[106, 0], [106, 300], [406, 300], [406, 0]]
    back = np.asarray(aligned.paste_back(Image.new("RGB", (64, 64), (255, 0, 0))))
    assert np.array_equal(back[:, :106], np.asarray(wide)[:, :106])
    assert (back[150, 256] == (255, 0, 0)).all()


def test_transform_json_round_trip(tmp_path, astronaut):
    t = align.align_photo(astronaut, 64).transform
    loaded = align.CropTransform.load(t.save(tmp_path / "t.json", face={"index": 0}))
    assert loaded == t
    with pytest.raises(ValueError, match="not a crop transform"):
        align.CropTransform.from_dict({"size": 4})


# ----------------------------------------------------------------------------- the extra
def test_missing_extra_gives_the_install_command(astronaut, monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` now fails as if not installed
    faces.landmarker.cache_clear()
    try:
        with pytest.raises(faces.FaceSupportMissing, match=r"pip install 'smapgan\[faces\]'") as info:
            align.align_photo(astronaut, 64)
        assert not isinstance(info.value, ImportError)
    finally:
        faces.landmarker.cache_clear()


def test_missing_landmark_model_gives_the_install_command(monkeypatch):
    real = faces.importlib.util.find_spec
    monkeypatch.setattr(
        faces.importlib.util, "find_spec", lambda name, *a: None if name == "face_recognition_models" else real(name, *a)
    )
    with pytest.raises(faces.FaceSupportMissing, match=r"pip install 'smapgan\[faces\]'"):
        faces.predictor_path()


def test_landmark_model_found_without_importing_its_package(monkeypatch):
    """face_recognition_models' __init__ imports pkg_resources, which current setuptools lacks."""
    monkeypatch.delitem(sys.modules, "face_recognition_models", raising=False)
    path = faces.predictor_path()
    assert path.name == "shape_predictor_68_face_landmarks.dat" and path.is_file()
    assert "face_recognition_models" not in sys.modules


# ----------------------------------------------------------------------------- smapgan align
def test_cli_align_writes_crop_and_transform(tmp_path, astronaut):
    astronaut.save(tmp_path / "photo.png")
    out = tmp_path / "out" / "crop.png"
    assert cli_main(["align", str(tmp_path / "photo.png"), "--size", "128", "--out", str(out)]) == 0
    assert Image.open(out).size == (128, 128)
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["method"] == "face" and saved["size"] == 128 and saved["photo_size"] == [512, 512]
    assert saved["face"]["index"] == 0 and saved["face"]["of"] == 1
    transform = align.CropTransform.load(out.with_suffix(".json"))
    assert np.array_equal(np.asarray(align.crop(astronaut, transform)), np.asarray(Image.open(out)))


def test_cli_align_without_a_face_says_so(tmp_path, no_face, capsys):
    no_face.save(tmp_path / "photo.png")
    assert cli_main(["align", str(tmp_path / "photo.png"), "--out", str(tmp_path / "crop.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("smapgan align: error: no face was found") and "\n" not in err
    assert not (tmp_path / "crop.png").exists()


def test_cli_align_without_the_extra_says_how_to_install(tmp_path, astronaut, monkeypatch, capsys):
    astronaut.save(tmp_path / "photo.png")
    monkeypatch.setitem(sys.modules, "dlib", None)
    faces.landmarker.cache_clear()
    try:
        assert cli_main(["align", str(tmp_path / "photo.png"), "--out", str(tmp_path / "crop.png")]) == 2
    finally:
        faces.landmarker.cache_clear()
    assert "pip install 'smapgan[faces]'" in capsys.readouterr().err
