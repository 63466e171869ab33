"""Hub failures (issue 6.6), beyond tests/test_hub.py: a push that fails at any of its stages, a
download that fails half-way, and a wrong revision through every command that pulls a model.

In each case: a clear HubError, the local files untouched, and nothing half-done on the Hub.
"""

from __future__ import annotations

import pytest
import torch

from smapgan import StyleMapGAN, StyleMapGANConfig
from smapgan.model.hub import HubError, push_folder, resolve_model_dir

REPO = "smapgan-tester/reliable"
CONFIG = StyleMapGANConfig(size=32, latent_spatial_size=4, latent_channel_size=8, mapping_layer_num=2,
                           channel_base=256, channel_max=32)


def model_folder(folder, seed: int):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = StyleMapGAN(CONFIG, with_discriminator=False)
    model.save_pretrained(folder)
    return model


def state(folder) -> dict:
    return {p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "failure", ["down", "POST /api/repos/create", "/preupload/", "/commit/"],
    ids=["down", "create-500", "preupload-500", "commit-500"],
)
def test_an_update_that_fails_at_any_stage_changes_nothing(hub, tmp_path, monkeypatch, failure):
    from types import SimpleNamespace

    from huggingface_hub.utils import _http

    monkeypatch.setattr(_http, "time", SimpleNamespace(sleep=lambda seconds: None))  # retries without the waits
    model_folder(tmp_path / "v1", seed=1)
    push_folder(tmp_path / "v1", REPO)
    published, head = hub.files(REPO), hub.head(REPO)
    model_folder(tmp_path / "v2", seed=2)
    before = state(tmp_path / "v2")
    if failure == "down":
        hub.down()
    else:
        hub.fail_next(500, count=20, match=failure)  # more than any retry policy

    with pytest.raises(HubError) as info:
        push_folder(tmp_path / "v2", REPO)
    message = str(info.value)
    assert REPO in message and hub.url in message and "was not modified" in message
    assert ("could not be reached" if failure == "down" else "HTTP 500") in message
    assert state(tmp_path / "v2") == before
    assert hub.head(REPO) == head and hub.files(REPO) == published  # no partial commit

    hub.up()
    hub.clear_faults()
    push_folder(tmp_path / "v2", REPO)
    assert hub.files(REPO)["model.safetensors"] == before["model.safetensors"][0]


def test_model_push_to_hub_while_down_is_a_hub_error(hub, tmp_path):
    model = model_folder(tmp_path / "m", seed=0)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    hub.down()
    with pytest.raises(HubError, match="could not be reached"):
        model.push_to_hub(REPO)
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())


def test_a_download_failing_half_way_is_a_clear_error_then_completes(hub, tmp_path):
    model_folder(tmp_path / "m", seed=0)
    push_folder(tmp_path / "m", REPO)
    hub.fail_next(500, count=20, match="GET /smapgan-tester/reliable/resolve/")  # metadata fine, files fail
    with pytest.raises(HubError) as info:
        StyleMapGAN.from_pretrained(REPO)
    assert REPO in str(info.value) and "HTTP 500" in str(info.value)
    hub.clear_faults()
    loaded = StyleMapGAN.from_pretrained(REPO)  # nothing half-written in the cache gets in the way
    reference = StyleMapGAN.from_pretrained(tmp_path / "m")
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in loaded.state_dict().items())


def test_wrong_revision_through_every_command_that_pulls(hub, tmp_path, capsys):
    from smapgan.app import launcher
    from smapgan.cli import main as cli_main

    model_folder(tmp_path / "m", seed=0)
    push_folder(tmp_path / "m", REPO)
    with pytest.raises(HubError, match=r"Revision 'v9' was not found in Hub repo 'smapgan-tester/reliable'"):
        StyleMapGAN.from_pretrained(REPO, revision="v9")
    with pytest.raises(HubError, match="was not found"):
        resolve_model_dir(REPO, revision="f" * 40)

    assert launcher.main(["--model", REPO, "--revision", "v9"]) == 2
    err = capsys.readouterr().err
    assert "Revision 'v9' was not found" in err and "Traceback" not in err
    for argv in (["info", "--model", REPO, "--revision", "v9"],
                 ["edit", "reconstruct", "--model", REPO, "--revision", "v9", "--original",
                  str(tmp_path / "m" / "config.json"), "--out", str(tmp_path / "out.png")]):
        code = cli_main(argv)
        err = capsys.readouterr().err
        assert code != 0 and "Revision 'v9' was not found" in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "out.png").exists()
