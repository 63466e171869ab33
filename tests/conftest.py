"""Shared pytest fixtures. One section per concern; add yours below the existing ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.hub_double import HubDouble

# --------------------------------------------------------------------------- Hub double
# huggingface_hub reads HF_ENDPOINT, HF_HOME, HF_HUB_OFFLINE ... once, at import; by the time a
# test runs they are frozen in `huggingface_hub.constants`. The `hub` fixture therefore patches
# those constants (and sets the variables too, for subprocesses) to point the real client at a
# fresh loopback server with a fresh cache and a fake token.


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubDouble]:
    """A fresh Hub test double, an empty HF cache under tmp_path and a fake write token."""
    from huggingface_hub import constants, hf_api
    from huggingface_hub.utils import _http

    from tests.hub_double import HubDouble

    double = HubDouble().start()
    home = tmp_path / "hf_home"
    cache = home / "hub"
    cache.mkdir(parents=True)
    url = double.url

    patches = {
        "ENDPOINT": url,
        "HUGGINGFACE_CO_URL_TEMPLATE": url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(cache),
        "HUGGINGFACE_HUB_CACHE": str(cache),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HUGGINGFACE_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "AGENT_HARNESSES_PATH": str(home / ".agent_harnesses.json"),
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_TELEMETRY": True,  # also skips the agent-registry request in user agents
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": False,
    }
    for name, value in patches.items():
        if hasattr(constants, name):
            monkeypatch.setattr(constants, name, value)
    # The module-level `huggingface_hub.create_repo` & co. are bound to an HfApi made at import.
    monkeypatch.setattr(hf_api.api, "endpoint", url)

    env = {"HF_ENDPOINT": url, "HF_HOME": str(home), "HF_HUB_CACHE": str(cache), "HF_TOKEN": double.token,
           "HF_HUB_DISABLE_TELEMETRY": "1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE",
                 "HUGGINGFACE_HUB_CACHE", "HF_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)

    double.cache_dir = cache
    _http.close_session()  # no pooled connection to a previous test's server
    try:
        yield double
    finally:
        double.stop()
        _http.close_session()


# --------------------------------------------------------------------------- tiny model (ops, app)
# A small randomly initialised model saved once per session, for op/CLI/app tests that run before
# (or without) the bundled emoji model. It carries one semantic direction, "demo".


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder with config.json, model.safetensors and directions.safetensors of a 32 px model."""
    import torch

    from smapgan import StyleMapGANConfig
    from tests.models import random_model

    config = StyleMapGANConfig(
        size=32, latent_spatial_size=4, latent_channel_size=8, mapping_layer_num=2, channel_base=256, channel_max=32
    )
    generator = torch.Generator().manual_seed(0)
    model = random_model(config)
    direction = torch.randn(8, 4, 4, generator=generator)
    model.add_direction("demo", direction * (4 / direction.norm()))
    folder = tmp_path_factory.mktemp("tiny_model")
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path) -> Any:
    """The tiny model, loaded once per module (a module that needs another model defines its own ``model``)."""
    from smapgan import StyleMapGAN

    return StyleMapGAN.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def registry() -> Any:
    """The built-in ops (no ``SMAPGAN_OPS_PATH`` folders)."""
    from smapgan.ops import discover

    return discover(paths=[])


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One torch thread for a test module: small models spend their time in many small ops, and on a
    shared CPU two threads wait on OpenMP barriers (up to ~100x slower than one)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- process exit
# In-process live servers (tests/reliability.live_app) leave Gradio's worker threads behind; one may
# still be inside torch when the interpreter finalizes, and torch's C++ thread pools then abort the
# process ("terminate called without an active exception", exit 134) after every result was
# reported. The test process therefore ends with pytest's own status, without the finalizers.
_EXIT_STATUS = 0


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _EXIT_STATUS
    _EXIT_STATUS = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    import os
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_EXIT_STATUS)
