"""Hostile and broken model files (issue 6.4): a clear error naming the file, and nothing executed.

Covers every way smapgan reads weights: ``StyleMapGAN.from_pretrained`` (a folder or a Hub repo),
``smapgan convert`` (release pickles, see also tests/test_convert.py) and the trainer's
``--resume`` / ``--init``.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from smapgan import StyleMapGAN, StyleMapGANConfig
from smapgan.model.hub import HubError, push_folder
from smapgan.model import ModelLoadError
from smapgan.train.checkpoint import find_resumable, load_checkpoint, save_checkpoint

CONFIG = StyleMapGANConfig(size=32, latent_spatial_size=4, latent_channel_size=8, mapping_layer_num=2,
                           channel_base=256, channel_max=32)


class Payload:
    """Unpickling this runs a shell command that creates ``marker``: a file that carries code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("good")
    torch.manual_seed(0)
    model = StyleMapGAN(CONFIG, with_discriminator=False)
    model.add_direction("demo", torch.randn(8, 4, 4))
    model.save_pretrained(folder)
    return folder


def copy_model(good: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    for path in good.iterdir():
        (dest / path.name).write_bytes(path.read_bytes())
    return dest


def evil_pickle(path: Path, marker: Path) -> None:
    with open(path, "wb") as f:
        pickle.dump({"generator.w": torch.zeros(1), "x": Payload(marker)}, f)


def test_a_pickle_in_place_of_the_weights_is_not_executed(good, tmp_path):
    marker = tmp_path / "ran"
    folder = copy_model(good, tmp_path / "m")
    evil_pickle(folder / "model.safetensors", marker)
    with pytest.raises(ModelLoadError, match=r"model\.safetensors is not a readable safetensors file"):
        StyleMapGAN.from_pretrained(folder)
    torch.save({"format": 1, "x": Payload(marker)}, folder / "model.safetensors")  # a zip pickle too
    with pytest.raises(ModelLoadError, match=r"model\.safetensors"):
        StyleMapGAN.from_pretrained(folder)
    assert not marker.exists(), "the payload ran"


def test_a_code_payload_in_a_release_checkpoint_is_refused_naming_it(tmp_path, capsys):
    from smapgan.cli import main as cli_main

    marker = tmp_path / "ran"
    torch.save({"g_ema": {}, "e_ema": {}, "train_args": Payload(marker)}, tmp_path / "release.pt")
    assert cli_main(["convert", str(tmp_path / "release.pt"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "release.pt was refused" in err and "nothing in it ran" in err and "Traceback" not in err
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_code_payload_in_a_training_checkpoint_is_refused_naming_it(tmp_path):
    marker = tmp_path / "ran"
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"format": 1, "step": 3, "x": Payload(marker)}, run / "checkpoints" / "latest.pt")
    with pytest.raises(ValueError, match=r"latest\.pt was refused: .*nothing in it ran"):
        load_checkpoint(run / "checkpoints" / "latest.pt")
    assert find_resumable(run) is None
    assert not marker.exists()


def test_resume_refuses_a_run_whose_checkpoints_are_all_unloadable(tmp_path):
    """--resume must not silently start over (and later overwrite) a run it cannot read."""
    from smapgan.train.options import TrainOptions, build_parser
    from smapgan.train.trainer import StartupError
    from smapgan.train import train

    run = tmp_path / "run"
    save_checkpoint(run, {"format": 1, "step": 1})
    latest = run / "checkpoints" / "latest.pt"
    latest.write_bytes(latest.read_bytes()[:30])
    before = latest.read_bytes()
    opts = TrainOptions.from_args(build_parser().parse_args(["--out", str(run), "--resume", "--data", str(tmp_path)]))
    with pytest.raises(StartupError, match=r"no checkpoint in .*checkpoints can be loaded"):
        train(opts)
    assert latest.read_bytes() == before


def test_truncated_safetensors_name_the_file(good, tmp_path):
    for name in ("model.safetensors", "directions.safetensors"):
        folder = copy_model(good, tmp_path / name)
        data = (folder / name).read_bytes()
        for cut in (4, len(data) // 2, len(data) - 1):
            (folder / name).write_bytes(data[:cut])
            with pytest.raises(ModelLoadError) as info:
                StyleMapGAN.from_pretrained(folder)
            assert str(folder / name) in str(info.value)


def test_a_config_that_does_not_match_the_weights_names_both_files(good, tmp_path):
    folder = copy_model(good, tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["latent_channel_size"] = 16
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError) as info:
        StyleMapGAN.from_pretrained(folder)
    message = str(info.value)
    assert str(folder / "model.safetensors") in message and "does not match" in message
    assert str(folder / "config.json") in message

    (folder / "config.json").write_text("{ not json")
    with pytest.raises(ModelLoadError, match=r"config\.json is not a valid smapgan config"):
        StyleMapGAN.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"size": 32, "no_such_option": 1}))
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        StyleMapGAN.from_pretrained(folder)


def test_init_with_a_broken_model_is_a_startup_error_naming_the_file(good, tmp_path):
    from smapgan.train.options import TrainOptions
    from smapgan.train.trainer import StartupError, load_initial_model

    folder = copy_model(good, tmp_path / "m")
    (folder / "model.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(StartupError, match=r"cannot load --init .*model\.safetensors"):
        load_initial_model(TrainOptions(init=str(folder)))


@pytest.mark.parametrize("missing", ["config.json", "model.safetensors"])
def test_hub_repo_missing_files_names_repo_and_file(hub, good, tmp_path, missing):
    folder = copy_model(good, tmp_path / "m")
    (folder / missing).unlink()
    push_folder(folder, "smapgan-tester/incomplete")
    with pytest.raises(HubError) as info:
        StyleMapGAN.from_pretrained("smapgan-tester/incomplete")
    message = str(info.value)
    assert f"has no {missing}" in message and "smapgan-tester/incomplete" in message and "revision 'main'" in message


def test_hub_repo_with_truncated_weights_names_the_file(hub, good, tmp_path):
    folder = copy_model(good, tmp_path / "m")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 3])
    push_folder(folder, "smapgan-tester/truncated")
    with pytest.raises(ModelLoadError, match=r"model\.safetensors is not a readable safetensors file"):
        StyleMapGAN.from_pretrained("smapgan-tester/truncated")


def test_hub_repo_with_a_pickle_for_weights_runs_nothing(hub, good, tmp_path):
    marker = tmp_path / "ran"
    folder = copy_model(good, tmp_path / "m")
    evil_pickle(folder / "model.safetensors", marker)
    (folder / "pytorch_model.bin").write_bytes((folder / "model.safetensors").read_bytes())
    push_folder(folder, "smapgan-tester/evil")
    with pytest.raises(ModelLoadError, match=r"model\.safetensors"):
        StyleMapGAN.from_pretrained("smapgan-tester/evil")
    assert not marker.exists()
    assert not any("pytorch_model.bin" in path for _, path in hub.requests)  # only the safetensors files are fetched
