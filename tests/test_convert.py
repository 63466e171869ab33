"""The converter: safe loading, optional discriminator, CLI, and clear errors."""

from __future__ import annotations

import argparse
import os
import pickle

import pytest
import torch

from smapgan import StyleMapGAN
from smapgan.cli import main as cli_main
from smapgan.model.convert import (
    CheckpointFormatError,
    UnsafeCheckpointError,
    convert_release_checkpoint,
    load_release_checkpoint,
)

from .official import official_dir


class Payload:
    """Unpickling this runs os.system: a checkpoint that carries code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_code_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    good = torch.load(official_dir() / "small32.pt", map_location="cpu", weights_only=False)
    good["train_args"] = argparse.Namespace(**vars(good["train_args"]))
    good["extra"] = Payload(marker)
    with open(path, "wb") as f:
        pickle.dump(good, f)  # a legacy (non-zip) pickle: torch.load still parses it
    with pytest.raises(UnsafeCheckpointError, match="refused"):
        load_release_checkpoint(path)
    torch.save({"g_ema": {}, "e_ema": {}, "train_args": Payload(marker)}, tmp_path / "evil2.pt")
    with pytest.raises(UnsafeCheckpointError):
        convert_release_checkpoint(tmp_path / "evil2.pt", tmp_path / "out")
    assert not marker.exists(), "the payload ran"
    assert not (tmp_path / "out").exists()


def test_truncated_and_wrong_files(tmp_path):
    data = (official_dir() / "small32.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointFormatError, match="not a readable"):
        load_release_checkpoint(tmp_path / "trunc.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointFormatError, match="lacks"):
        load_release_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_release_checkpoint(tmp_path / "absent.pt")


def test_optimizer_states_dropped_and_card_written(tmp_path):
    convert_release_checkpoint(official_dir() / "narrow64.pt", tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["README.md", "config.json", "model.safetensors"]
    card = (tmp_path / "README.md").read_text()
    assert "license: cc-by-nc-4.0" in card and "kim2021stylemapgan" in card
    from safetensors.torch import load_file

    keys = load_file(tmp_path / "model.safetensors").keys()
    assert all(k.split(".")[0] in {"generator", "encoder", "discriminator"} for k in keys)


def test_checkpoint_without_discriminator(tmp_path):
    ck = torch.load(official_dir() / "small32.pt", map_location="cpu", weights_only=False)
    for key in ("discriminator", "generator", "encoder", "g_optim", "d_optim", "e_optim"):
        ck.pop(key)
    torch.save(ck, tmp_path / "nod.pt")
    assert cli_main(["convert", str(tmp_path / "nod.pt"), str(tmp_path / "out")]) == 0
    model = StyleMapGAN.from_pretrained(tmp_path / "out")
    assert model.discriminator is None
    reference = StyleMapGAN.from_pretrained(_converted(tmp_path / "full"))
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model.encode(x), reference.encode(x))


def _converted(out):
    convert_release_checkpoint(official_dir() / "small32.pt", out)
    return out


def test_cli_reports_unsafe_checkpoint(tmp_path, capsys):
    torch.save({"g_ema": {}, "e_ema": {}, "train_args": Payload(tmp_path / "x")}, tmp_path / "evil.pt")
    assert cli_main(["convert", str(tmp_path / "evil.pt"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "refused" in err and "Traceback" not in err
