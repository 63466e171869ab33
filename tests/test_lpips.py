"""LPIPS without torchvision: weight discovery, strict loading, a plain re-computation, offline errors."""

from __future__ import annotations

import hashlib
import http.server
import importlib.metadata
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from smapgan.networks import lpips as lp

REPO = Path(__file__).resolve().parents[1]
VGG_NAME = "vgg16-397923af.pth"
CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)  # torchvision's conv indices in vgg16().features
POOLS_AFTER = (2, 7, 14, 21)  # max-pool after these conv indices (at index conv + 2)


def _random_vgg_state_dict() -> dict[str, torch.Tensor]:
    """A He-scaled random VGG16 state dict under torchvision's key names (with a stray classifier key)."""
    g = torch.Generator().manual_seed(0)
    sd, c_in = {}, 3
    widths = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
    for idx, c_out in zip(CONVS, widths):
        sd[f"features.{idx}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=g) * (2.0 / (9 * c_in)) ** 0.5
        sd[f"features.{idx}.bias"] = torch.randn(c_out, generator=g) * 0.1
        c_in = c_out
    sd["classifier.6.bias"] = torch.zeros(1000)  # torchvision's file also holds the classifier
    return sd


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vgg") / VGG_NAME
    torch.save(_random_vgg_state_dict(), path)
    return path


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache; both offline switches cleared."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("SMAPGAN_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return tmp_path / "torch"


@pytest.fixture
def cached_home(torch_home: Path, vgg_file: Path) -> Path:
    ckpt = torch_home / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    shutil.copy(vgg_file, ckpt / VGG_NAME)
    return torch_home


@pytest.fixture(scope="module")
def model(vgg_file: Path) -> lp.LPIPS:
    return lp.LPIPS.from_files(vgg_file, lp.lpips_heads_path())


def test_heads_file_found_with_expected_keys_and_shapes() -> None:
    path = lp.lpips_heads_path()
    assert path.is_file() and path.as_posix().endswith("lpips/weights/v0.1/vgg.pth")
    heads = lp.load_heads_state_dict()
    assert {k: tuple(v.shape) for k, v in heads.items()} == {
        f"lin{i}.model.1.weight": (1, c, 1, 1) for i, c in enumerate((64, 128, 256, 512, 512))
    }
    assert all((v >= 0).all() for v in heads.values())  # v0.1 heads are clamped non-negative


def test_vgg_layout_matches_torchvision_keys() -> None:
    keys = set(lp.VGG16Features().state_dict())
    assert keys == {f"features.{i}.{p}" for i in CONVS for p in ("weight", "bias")}


def test_loader_reads_hub_cache_strictly(cached_home: Path, vgg_file: Path) -> None:
    assert lp.vgg16_cache_path() == cached_home / "hub" / "checkpoints" / VGG_NAME
    sd = lp.load_vgg16_state_dict()
    expected = torch.load(vgg_file, weights_only=True)
    model = lp.LPIPS()  # hub cache + installed lpips heads, both strict
    for k, v in model.vgg.state_dict().items():
        assert torch.equal(v, expected[k]) and torch.equal(sd[k], expected[k])
    heads = lp.load_heads_state_dict()
    assert torch.equal(model.lin3.model[1].weight, heads["lin3.model.1.weight"])
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    model.train()
    assert not model.training
    bad = dict(sd)
    bad.pop("features.28.bias")
    with pytest.raises(RuntimeError, match="features.28.bias"):
        model.vgg.load_torchvision_state_dict(bad)


def _plain_lpips(x: torch.Tensor, y: torch.Tensor, vgg: dict, heads: dict) -> torch.Tensor:
    """LPIPS v0.1 written out with functional ops, independent of the module under test."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def taps(img: torch.Tensor) -> list[torch.Tensor]:
        h, out = (img - shift) / scale, []
        for idx in CONVS:
            h = F.relu(F.conv2d(h, vgg[f"features.{idx}.weight"], vgg[f"features.{idx}.bias"], padding=1))
            if idx in POOLS_AFTER or idx == 28:
                out.append(h)
            if idx in POOLS_AFTER:
                h = F.max_pool2d(h, 2, 2)
        return out

    total = 0
    for i, (a, b) in enumerate(zip(taps(x), taps(y))):
        na = a / (torch.sqrt((a**2).sum(1, keepdim=True)) + 1e-10)
        nb = b / (torch.sqrt((b**2).sum(1, keepdim=True)) + 1e-10)
        w = heads[f"lin{i}.model.1.weight"].view(1, -1, 1, 1)
        total = total + ((na - nb) ** 2 * w).sum(1, keepdim=True).mean((2, 3), keepdim=True)
    return total


def test_matches_plain_recomputation_and_metric_properties(model: lp.LPIPS, vgg_file: Path) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    y = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    d = model(x, y)
    assert d.shape == (2, 1, 1, 1) and model(x, y, keepdim=False).shape == (2,)
    ref = _plain_lpips(x, y, torch.load(vgg_file, weights_only=True), lp.load_heads_state_dict())
    torch.testing.assert_close(d, ref, rtol=1e-6, atol=1e-6)
    assert (d > 0).all()
    torch.testing.assert_close(model(y, x), d, rtol=1e-6, atol=1e-7)
    assert torch.equal(model(x, x), torch.zeros(2, 1, 1, 1))


def test_gradients_reach_inputs_only(model: lp.LPIPS) -> None:
    x = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_(True)
    y = torch.rand(1, 3, 32, 32) * 2 - 1
    model(x, y).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0 and torch.isfinite(x.grad).all()
    assert all(p.grad is None for p in model.parameters())


def test_zero_feature_vector_has_finite_gradient() -> None:
    f = torch.zeros(1, 4, 2, 2, requires_grad=True)
    lp._unit_normalize(f).sum().backward()
    assert torch.isfinite(f.grad).all()


@pytest.mark.parametrize("var", ["SMAPGAN_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_uncached_fails_fast_with_hint(torch_home: Path, monkeypatch: pytest.MonkeyPatch, var: str) -> None:
    monkeypatch.setenv(var, "1")
    start = time.monotonic()
    with pytest.raises(lp.PerceptualWeightsUnavailable) as info:
        lp.LPIPS()
    assert time.monotonic() - start < 2.0
    msg = str(info.value)
    assert "--lambda-perceptual 0" in msg and VGG_NAME in msg and str(torch_home) in msg
    assert isinstance(info.value, RuntimeError)


def test_stalled_server_times_out_with_hint(torch_home: Path) -> None:
    with socket.socket() as server:  # accepts connections (backlog) but never answers
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        url = f"http://127.0.0.1:{server.getsockname()[1]}/{VGG_NAME}"
        start = time.monotonic()
        with pytest.raises(lp.PerceptualWeightsUnavailable, match="--lambda-perceptual 0"):
            lp.load_vgg16_state_dict(url, timeout=0.5)
        assert time.monotonic() - start < 2.0
    assert not list((torch_home / "hub" / "checkpoints").iterdir())  # no partial file left


def test_refused_connection_gives_hint(torch_home: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(lp.PerceptualWeightsUnavailable, match="--lambda-perceptual 0"):
        lp.load_vgg16_state_dict(f"http://127.0.0.1:{port}/{VGG_NAME}", timeout=1.0)


def test_download_fills_hub_cache_and_checks_hash(torch_home: Path, vgg_file: Path, tmp_path: Path) -> None:
    served = tmp_path / "srv"
    served.mkdir()
    data = vgg_file.read_bytes()
    good = f"vgg16-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    (served / good).write_bytes(data)
    (served / "vgg16-00000000.pth").write_bytes(data)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    def handler(*args: object, **kwargs: object) -> Quiet:
        return Quiet(*args, directory=str(served), **kwargs)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        sd = lp.load_vgg16_state_dict(f"{base}/{good}", timeout=5.0)
        assert (torch_home / "hub" / "checkpoints" / good).is_file()
        assert torch.equal(sd["features.0.weight"], torch.load(vgg_file, weights_only=True)["features.0.weight"])
        with pytest.raises(lp.PerceptualWeightsUnavailable, match="does not match"):
            lp.load_vgg16_state_dict(f"{base}/vgg16-00000000.pth", timeout=5.0)
        assert not (torch_home / "hub" / "checkpoints" / "vgg16-00000000.pth").exists()
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_missing_lpips_distribution_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> importlib.metadata.Distribution:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(lp.PerceptualWeightsUnavailable) as info:
        lp.lpips_heads_path()
    assert "pip install --no-deps lpips==0.1.4" in str(info.value)
    assert "--lambda-perceptual 0" in str(info.value)


def test_import_pulls_in_neither_torchvision_nor_lpips() -> None:
    code = (
        "import sys, smapgan.networks.lpips\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torchvision', 'lpips')]\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
