"""Photos through `smapgan edit` (--align, --photo-out), the config's `alignment`, and --device."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from smapgan import StyleMapGAN, StyleMapGANConfig
from smapgan.cli import main
from smapgan.intake import images as imageio
from smapgan.model.convert import convert_release_checkpoint, release_alignment
from smapgan.ops import OpContext
from smapgan.ops import Picture
from tests.official import official_dir


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small models: one torch thread (see conftest)


def png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def with_alignment(folder: Path, target: Path, alignment: str) -> Path:
    shutil.copytree(folder, target)
    config = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**config, "alignment": alignment}))
    return target


# ----------------------------------------------------------------------------- the config field
def test_configs_without_the_field_load_as_no_alignment(tiny_model_dir):
    config = json.loads((tiny_model_dir / "config.json").read_text())
    config.pop("alignment", None)
    assert StyleMapGANConfig.from_dict(config).alignment == "none"
    bundled = json.loads((Path(__file__).parent.parent / "smapgan/assets/default_model/config.json").read_text())
    assert "alignment" not in bundled and StyleMapGANConfig.from_dict(bundled).alignment == "none"
    with pytest.raises(ValueError, match="alignment must be one of"):
        StyleMapGANConfig(alignment="eyes")


def test_saved_models_keep_their_alignment(tiny_model_dir, tmp_path):
    folder = with_alignment(tiny_model_dir, tmp_path / "m", "ffhq")
    model = StyleMapGAN.from_pretrained(folder)
    assert model.config.alignment == "ffhq"
    model.save_pretrained(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "config.json").read_text())["alignment"] == "ffhq"


def test_convert_sets_alignment_for_the_face_releases(tmp_path):
    assert [release_alignment(d) for d in ("celeba_hq", "CelebA-HQ", "ffhq", "afhq", "lsun/car", None)] == [
        "ffhq", "ffhq", "ffhq", "none", "none", "none"
    ]
    checkpoint = official_dir() / "narrow64.pt"  # its train_args say dataset="fixture"
    assert convert_release_checkpoint(checkpoint, tmp_path / "a").config.alignment == "none"
    assert main(["convert", str(checkpoint), str(tmp_path / "b"), "--dataset", "celeba_hq"]) == 0
    assert json.loads((tmp_path / "b" / "config.json").read_text())["alignment"] == "ffhq"
    assert main(["convert", str(checkpoint), str(tmp_path / "c"), "--dataset", "celeba_hq", "--alignment", "none"]) == 0
    assert json.loads((tmp_path / "c" / "config.json").read_text())["alignment"] == "none"


def test_train_has_an_alignment_flag():
    from smapgan.train.options import TrainOptions, build_parser

    opts = TrainOptions.from_args(build_parser().parse_args(["--alignment", "ffhq"]))
    assert StyleMapGANConfig.from_dict(opts.model_config_dict()).alignment == "ffhq"
    assert TrainOptions.from_args(build_parser().parse_args([])).alignment == "none"


# ----------------------------------------------------------------------------- --device
def test_device_choices(monkeypatch):
    from smapgan.device import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu") == torch.device("cpu") and resolve_device("auto") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="sees no CUDA GPU.*--device cpu"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_renderer_for_device(tiny_model_dir, monkeypatch):
    """CPU: the fast renderer; CUDA: the reference renderer, with the model moved there (the move
    itself is recorded, since this machine has no GPU)."""
    from smapgan.device import renderer_for_device
    from smapgan.fast import FastRenderer
    from smapgan.render import ReferenceRenderer

    model = StyleMapGAN.from_pretrained(tiny_model_dir)
    assert isinstance(renderer_for_device(model, "cpu"), FastRenderer) and model.device.type == "cpu"
    moved = []
    monkeypatch.setattr(model, "to", lambda device: moved.append(device) or model)
    renderer = renderer_for_device(model, torch.device("cuda"))
    assert type(renderer) is ReferenceRenderer and moved == [torch.device("cuda")]


def test_edit_device_flows_to_the_model_and_pictures(tiny_model_dir, tmp_path, monkeypatch, capsys):
    loads, moves = [], []
    real_load, real_to = StyleMapGAN.from_pretrained.__func__, Picture.to

    def load(cls, *args, **kwargs):
        loads.append(kwargs.get("map_location"))
        return real_load(cls, *args, **kwargs)

    monkeypatch.setattr(StyleMapGAN, "from_pretrained", classmethod(load))
    monkeypatch.setattr(Picture, "to", lambda self, device: moves.append(device) or real_to(self, device))
    photo = tmp_path / "a.png"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(photo)
    argv = ["edit", "reconstruct", "--model", str(tiny_model_dir), "--original", str(photo), "--out", str(tmp_path / "o.png")]
    assert main([*argv, "--device", "cpu"]) == 0
    assert loads == [torch.device("cpu")] and moves == [torch.device("cpu")]
    # Pictures (image and mask) follow the device they are sent to.
    picture = Picture(torch.zeros(1, 3, 4, 4), torch.ones(1, 1, 4, 4), "k")
    sent = picture.to(torch.device("meta"))
    assert sent.image.device.type == "meta" and sent.mask.device.type == "meta" and sent.key == "k"

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    capsys.readouterr()
    assert main([*argv, "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert "sees no CUDA GPU" in err and len(err.splitlines()) == 1


# ----------------------------------------------------------------------------- --align, --photo-out
skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def astronaut_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    Image.fromarray(skimage_data.astronaut()).save(path)
    return path


def test_edit_aligns_the_face_and_pastes_back_into_the_photo(tiny_model_dir, astronaut_file, tmp_path):
    pytest.importorskip("dlib")
    from smapgan.intake.align import align_photo, open_photo

    out, photo_out = tmp_path / "r.png", tmp_path / "photo.png"
    argv = ["edit", "reconstruct", "--model", str(tiny_model_dir), "--original", str(astronaut_file)]
    assert main([*argv, "--align", "face", "--out", str(out), "--photo-out", str(photo_out)]) == 0

    # The op saw the aligned crop ...
    model = StyleMapGAN.from_pretrained(tiny_model_dir)
    aligned = align_photo(open_photo(astronaut_file), model.config.size)
    ctx = OpContext(model)
    encoded = ctx.encode(ctx.picture(aligned.crop))
    assert np.array_equal(png(out), np.asarray(imageio.tensor_to_image(ctx.render(encoded, base=encoded))))
    # ... and its result went back into the photo: the photo's size, its pixels unchanged
    # outside the crop's square, the result inside it.
    photo, pasted = png(astronaut_file), png(photo_out)
    assert pasted.shape == photo.shape
    assert np.array_equal(pasted, np.asarray(aligned.paste_back(Image.open(out))))
    changed = np.argwhere((pasted != photo).any(-1)) + 0.5
    where = aligned.transform.to_crop(changed[:, ::-1])
    assert len(changed) > 1000 and (where >= 0).all() and (where <= model.config.size).all()


def test_align_auto_follows_the_models_config(tiny_model_dir, astronaut_file, tmp_path):
    pytest.importorskip("dlib")
    faces_model = with_alignment(tiny_model_dir, tmp_path / "faces_model", "ffhq")

    def run(model: Path, align: str) -> np.ndarray:
        out = tmp_path / f"{model.name}_{align}.png"
        argv = ["edit", "reconstruct", "--model", str(model), "--original", str(astronaut_file), "--out", str(out)]
        assert main([*argv, "--align", align]) == 0
        return png(out)

    assert np.array_equal(run(faces_model, "auto"), run(faces_model, "face"))
    assert np.array_equal(run(tiny_model_dir, "auto"), run(tiny_model_dir, "none"))
    assert not np.array_equal(run(tiny_model_dir, "face"), run(tiny_model_dir, "none"))


def test_photo_out_with_the_center_crop(tiny_model_dir, astronaut_file, tmp_path):
    wide = tmp_path / "wide.png"
    Image.open(astronaut_file).resize((300, 200)).save(wide)
    argv = ["edit", "reconstruct", "--model", str(tiny_model_dir), "--original", str(wide), "--align", "none"]
    assert main([*argv, "--out", str(tmp_path / "r.png"), "--photo-out", str(tmp_path / "p.png")]) == 0
    photo, pasted = png(wide), png(tmp_path / "p.png")
    assert pasted.shape == photo.shape
    assert np.array_equal(pasted[:, :50], photo[:, :50]) and np.array_equal(pasted[:, 250:], photo[:, 250:])
    assert not np.array_equal(pasted[:, 60:240], photo[:, 60:240])


def test_several_images_are_each_aligned(tiny_model_dir, astronaut_file, tmp_path):
    pytest.importorskip("dlib")
    argv = ["edit", "lerp", "--model", str(tiny_model_dir), "--first", str(astronaut_file), "--second", str(astronaut_file)]
    assert main([*argv, "--align", "face", "--out", str(tmp_path / "l.png"), "--photo-out", str(tmp_path / "p.png")]) == 0
    assert png(tmp_path / "p.png").shape == (512, 512, 3)


def test_edit_without_a_face_says_so(tiny_model_dir, tmp_path, capsys):
    pytest.importorskip("dlib")
    blank = tmp_path / "blank.png"
    Image.new("RGB", (64, 64), (90, 120, 200)).save(blank)
    argv = ["edit", "reconstruct", "--model", str(tiny_model_dir), "--original", str(blank), "--align", "face"]
    assert main([*argv, "--out", str(tmp_path / "r.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no face was found" in err and len(err.splitlines()) == 1
