"""smapgan.model.hub against the loopback Hub double, through the real huggingface_hub client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants
from safetensors.torch import save_file

from smapgan.model.hub import HubError, push_folder, resolve_model_dir

REPO = "smapgan-tester/tiny"


def _write_model_folder(folder: Path, seed: int) -> dict[str, bytes]:
    """A config.json + small model.safetensors whose bytes depend on ``seed``."""
    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    (folder / "config.json").write_text(json.dumps({"size": 32, "seed": seed}))
    save_file({"w": torch.randn(8, 4, generator=gen), "b": torch.randn(8, generator=gen)},
              str(folder / "model.safetensors"))
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _folder_state(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file's bytes and mtime: what 'the local folder was not modified' means."""
    return {p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _read(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in ("config.json", "model.safetensors")}


def test_push_then_pull_into_empty_cache_is_byte_identical(hub, tmp_path):
    local = _write_model_folder(tmp_path / "m", seed=0)
    url = push_folder(tmp_path / "m", REPO)

    head = hub.head(REPO)
    assert url == f"{hub.url}/{REPO}/commit/{head}"
    server = hub.files(REPO)
    assert server["config.json"] == local["config.json"]
    assert server["model.safetensors"] == local["model.safetensors"]
    assert not any(hub.cache_dir.iterdir()), "cache must start empty"

    folder = resolve_model_dir(REPO)
    assert folder.is_relative_to(hub.cache_dir)
    assert folder.name == head  # the snapshot of the commit main pointed to
    assert _read(folder) == local
    assert ("GET", f"/{REPO}/resolve/{head}/model.safetensors") in hub.requests


def test_revision_pinning_returns_the_old_bytes(hub, tmp_path):
    first = _write_model_folder(tmp_path / "m", seed=1)
    first_commit = push_folder(tmp_path / "m", REPO).rsplit("/", 1)[1]
    second = _write_model_folder(tmp_path / "m", seed=2)
    second_commit = push_folder(tmp_path / "m", REPO, commit_message="second").rsplit("/", 1)[1]
    assert first != second and first_commit != second_commit
    assert hub.head(REPO) == second_commit

    old = resolve_model_dir(REPO, revision=first_commit)
    new = resolve_model_dir(REPO)
    assert old.name == first_commit and new.name == second_commit
    assert _read(old) == first
    assert _read(new) == second


def test_push_to_branch_leaves_main_alone(hub, tmp_path):
    main = _write_model_folder(tmp_path / "m", seed=3)
    push_folder(tmp_path / "m", REPO)
    dev = _write_model_folder(tmp_path / "m", seed=4)
    push_folder(tmp_path / "m", REPO, revision="dev")

    assert _read(resolve_model_dir(REPO)) == main
    assert _read(resolve_model_dir(REPO, revision="dev")) == dev


def test_offline_uncached_repo_says_what_to_do_without_touching_network(hub, tmp_path, monkeypatch):
    _write_model_folder(tmp_path / "m", seed=0)
    push_folder(tmp_path / "m", REPO)  # it exists on the Hub, but was never downloaded
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    hub.requests.clear()

    with pytest.raises(HubError) as info:
        resolve_model_dir(REPO, revision="main")
    message = str(info.value)
    assert REPO in message and "'main'" in message
    assert "not in the local cache" in message
    assert "HF_HUB_OFFLINE" in message
    assert f"hf download {REPO}" in message and f"huggingface-cli download {REPO}" in message
    assert "local directory" in message
    assert hub.requests == []


def test_offline_cached_repo_loads_without_network(hub, tmp_path, monkeypatch):
    local = _write_model_folder(tmp_path / "m", seed=0)
    commit = push_folder(tmp_path / "m", REPO).rsplit("/", 1)[1]
    online = resolve_model_dir(REPO)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    hub.requests.clear()

    assert resolve_model_dir(REPO) == online
    assert resolve_model_dir(REPO, revision=commit) == online
    assert _read(online) == local
    assert hub.requests == []


def test_unreachable_endpoint_uses_cache_or_explains(hub, tmp_path):
    local = _write_model_folder(tmp_path / "m", seed=0)
    push_folder(tmp_path / "m", REPO)
    push_folder(tmp_path / "m", "smapgan-tester/other")
    cached = resolve_model_dir(REPO)
    hub.down()

    assert _read(resolve_model_dir(REPO)) == local  # falls back to the cache
    with pytest.raises(HubError) as info:
        resolve_model_dir("smapgan-tester/other")
    message = str(info.value)
    assert "smapgan-tester/other" in message and "not in the local cache" in message
    assert "could not be reached" in message and hub.url in message
    assert cached.is_dir()


def test_hub_5xx_while_pulling_an_uncached_repo_says_so(hub, tmp_path):
    _write_model_folder(tmp_path / "m", seed=0)
    push_folder(tmp_path / "m", REPO)
    hub.fail_next(500, count=1, match="GET /api/models/")

    with pytest.raises(HubError) as info:
        resolve_model_dir(REPO)
    message = str(info.value)
    assert REPO in message and "not in the local cache" in message
    assert f"the Hub at {hub.url} answered HTTP 500" in message
    folder = resolve_model_dir(REPO)  # the fault was transient: the next call downloads it
    assert all(hub.files(REPO)[name] == data for name, data in _read(folder).items())


def test_wrong_revision_is_a_clear_error(hub, tmp_path):
    _write_model_folder(tmp_path / "m", seed=0)
    push_folder(tmp_path / "m", REPO)

    for revision in ("no-such-branch", "0" * 40):
        with pytest.raises(HubError) as info:
            resolve_model_dir(REPO, revision=revision)
        message = str(info.value)
        assert f"Revision {revision!r} was not found" in message and REPO in message


def test_missing_repo_is_a_clear_error(hub):
    with pytest.raises(HubError) as info:
        resolve_model_dir("smapgan-tester/does-not-exist")
    assert "'smapgan-tester/does-not-exist' was not found" in str(info.value)


def test_repo_without_config_names_the_missing_file(hub, tmp_path):
    _write_model_folder(tmp_path / "m", seed=0)
    (tmp_path / "m" / "config.json").unlink()
    push_folder(tmp_path / "m", REPO)

    with pytest.raises(HubError) as info:
        resolve_model_dir(REPO)
    message = str(info.value)
    assert "has no config.json" in message and REPO in message and "model.safetensors" in message


def test_local_directories_are_used_as_is(tmp_path):
    _write_model_folder(tmp_path / "m", seed=0)
    assert resolve_model_dir(tmp_path / "m") == tmp_path / "m"
    assert resolve_model_dir(str(tmp_path / "m")) == tmp_path / "m"

    (tmp_path / "m" / "config.json").unlink()
    with pytest.raises(HubError, match="config.json"):
        resolve_model_dir(tmp_path / "m")
    with pytest.raises(HubError, match="No such local directory"):
        resolve_model_dir(tmp_path / "missing")
    with pytest.raises(HubError, match="is a file"):
        resolve_model_dir(tmp_path / "m" / "model.safetensors")


@pytest.mark.parametrize("failure", ["down", "http500"])
def test_failed_push_raises_hub_error_and_leaves_folder_alone(hub, tmp_path, failure):
    _write_model_folder(tmp_path / "m", seed=0)
    before = _folder_state(tmp_path / "m")
    if failure == "down":
        hub.down()
    else:
        hub.fail_next(500, count=1)

    with pytest.raises(HubError) as info:
        push_folder(tmp_path / "m", REPO)
    message = str(info.value)
    assert REPO in message and hub.url in message and "not modified" in message
    assert ("could not be reached" if failure == "down" else "HTTP 500") in message
    assert _folder_state(tmp_path / "m") == before
    assert ("model", REPO) not in hub.repos  # nothing happened server-side either

    hub.up()  # and the Hub coming back is enough for the same call to succeed
    push_folder(tmp_path / "m", REPO)
    assert hub.files(REPO)["model.safetensors"] == before["model.safetensors"][0]


def test_push_while_offline_is_refused_locally(hub, tmp_path, monkeypatch):
    _write_model_folder(tmp_path / "m", seed=0)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    hub.requests.clear()
    with pytest.raises(HubError, match="HF_HUB_OFFLINE"):
        push_folder(tmp_path / "m", REPO)
    assert hub.requests == []


def test_space_repos_round_trip(hub, tmp_path):
    """push_folder(repo_type='space') is what deploying the demo Space uses: a Gradio Space."""
    folder = tmp_path / "space"
    folder.mkdir()
    (folder / "app.py").write_text("print('hi')\n")
    (folder / "README.md").write_text("---\nsdk: gradio\n---\n# demo\n")

    url = push_folder(folder, "smapgan-tester/demo", repo_type="space")
    assert url.startswith(f"{hub.url}/spaces/smapgan-tester/demo/commit/")
    assert hub.repo("smapgan-tester/demo", repo_type="space").sdk == "gradio"
    assert hub.files("smapgan-tester/demo", repo_type="space")["app.py"] == b"print('hi')\n"
    assert ("POST", "/api/validate-yaml") in hub.requests  # a README is validated before upload
    assert ("model", "smapgan-tester/demo") not in hub.repos


def test_model_push_to_hub_then_from_pretrained_is_bit_exact(hub, tmp_path):
    """The model's Hub round trip goes through push_folder / resolve_model_dir unchanged."""
    from smapgan import StyleMapGAN, StyleMapGANConfig

    torch.manual_seed(0)
    config = StyleMapGANConfig(size=32, latent_spatial_size=4, latent_channel_size=8, mapping_layer_num=2,
                               channel_base=256, channel_max=32)
    model = StyleMapGAN(config)
    with torch.no_grad():  # not the init values: a loader that re-initialises would still match those
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    model.add_direction("smile", torch.randn(8, 4, 4))

    url = model.push_to_hub(REPO)
    assert url == f"{hub.url}/{REPO}/commit/{hub.head(REPO)}"
    assert {"config.json", "model.safetensors", "directions.safetensors"} <= set(hub.files(REPO))
    assert not any(hub.cache_dir.iterdir())

    loaded = StyleMapGAN.from_pretrained(REPO)
    assert Path(hub.cache_dir, f"models--{REPO.replace('/', '--')}").is_dir()
    assert loaded.config == config
    want, got = model.state_dict(), loaded.state_dict()
    assert want.keys() == got.keys()
    for key in want:
        assert got[key].dtype == want[key].dtype and torch.equal(got[key], want[key]), key
    assert loaded.directions.keys() == {"smile"}
    assert torch.equal(loaded.directions["smile"], model.directions["smile"])
