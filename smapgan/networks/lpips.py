"""LPIPS (VGG16, v0.1) perceptual distance, built without torchvision or the ``lpips`` package.

torchvision does not load against the CPU torch this project targets, and ``lpips`` imports
torchvision at import time, so neither is ever imported here. The network is rebuilt with
torchvision's VGG16 ``features`` layer indices so that its published ImageNet state dict
(``vgg16-397923af.pth``, fetched through the torch hub cache) loads by key, and the v0.1 linear
heads are read as a file from the installed ``lpips`` distribution (docs/release_facts.md §LPIPS).
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.metadata
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
HEADS_RELATIVE_PATH = "lpips/weights/v0.1/vgg.pth"
# Indices in torchvision's ``vgg16().features`` of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
VGG16_TAPS = (3, 8, 15, 22, 29)
TAP_CHANNELS = (64, 128, 256, 512, 512)
DOWNLOAD_TIMEOUT_S = 10.0

# torchvision's VGG16 configuration "D": conv widths, "M" for a 2x2 max-pool.
_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
# LPIPS v0.1 ScalingLayer constants (inputs in [-1, 1]).
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10
_OFFLINE_VARS = ("SMAPGAN_OFFLINE", "HF_HUB_OFFLINE")
_DISABLE_HINT = "or disable the perceptual term with `--lambda-perceptual 0`."


class PerceptualWeightsUnavailable(RuntimeError):
    """The VGG16 weights or the LPIPS heads cannot be had; the message says how to get them."""


def _offline() -> bool:
    """True when the user asked for no network access (checked at call time, not import)."""
    return any(os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"} for v in _OFFLINE_VARS)


def vgg16_cache_path(url: str = VGG16_URL) -> Path:
    """Where ``torch.hub.load_state_dict_from_url`` caches ``url`` (honours ``$TORCH_HOME``)."""
    filename = os.path.basename(urllib.parse.urlparse(url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def _vgg_unavailable(cached: Path, url: str, reason: str) -> PerceptualWeightsUnavailable:
    return PerceptualWeightsUnavailable(
        f"LPIPS needs the VGG16 ImageNet weights {cached.name!r}: they are not in the torch hub cache "
        f"({cached}) and {reason}. Download {url} on a connected machine and copy it to {cached} "
        f"(or point $TORCH_HOME at a folder holding hub/checkpoints/{cached.name}), "
        f"or pass explicit files with LPIPS.from_files(vgg_path, heads_path), {_DISABLE_HINT}"
    )


def _download(url: str, dest: Path, timeout: float) -> None:
    """Fetch ``url`` to ``dest`` atomically, with a per-socket-operation timeout.

    torch.hub's own downloader opens the URL without a timeout and can hang forever on a dead
    network, so the file is fetched here and torch.hub then finds it in its cache.
    """
    match = re.search(r"-([a-f0-9]+)\.", dest.name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".partial", dir=dest.parent)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if match and not digest.hexdigest().startswith(match.group(1)):
            raise OSError(f"sha256 {digest.hexdigest()[:8]} of the download does not match {match.group(1)!r}")
        os.replace(tmp_name, dest)
    finally:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)


def load_vgg16_state_dict(url: str = VGG16_URL, *, timeout: float = DOWNLOAD_TIMEOUT_S) -> dict[str, Tensor]:
    """torchvision's VGG16 state dict from the torch hub cache, downloading it when allowed.

    The cache is checked first so that an offline machine never touches the network; a
    download is tried only when neither ``SMAPGAN_OFFLINE`` nor ``HF_HUB_OFFLINE`` is set.
    """
    cached = vgg16_cache_path(url)
    if not cached.is_file():
        if _offline():
            raise _vgg_unavailable(cached, url, "offline mode is on (SMAPGAN_OFFLINE / HF_HUB_OFFLINE)")
        try:
            _download(url, cached, timeout)
        except (OSError, http.client.HTTPException) as exc:  # URLError and timeouts are OSErrors
            raise _vgg_unavailable(cached, url, f"downloading it failed ({exc})") from exc
    return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False, weights_only=True)


def lpips_heads_path() -> Path:
    """Path of the v0.1 VGG heads inside the installed ``lpips`` distribution (never imported)."""
    how = (
        "Install it without its dependencies (its torchvision requirement would replace the CPU torch "
        "with a CUDA build): `pip install --no-deps lpips==0.1.4`; or pass explicit files with "
        f"LPIPS.from_files(vgg_path, heads_path), {_DISABLE_HINT}"
    )
    try:
        dist = importlib.metadata.distribution("lpips")
    except importlib.metadata.PackageNotFoundError as exc:
        raise PerceptualWeightsUnavailable(
            f"LPIPS needs the v0.1 linear heads shipped in the `lpips` distribution, which is not installed. {how}"
        ) from exc
    path = Path(dist.locate_file(HEADS_RELATIVE_PATH))
    if not path.is_file():
        raise PerceptualWeightsUnavailable(f"The installed `lpips` distribution lacks {HEADS_RELATIVE_PATH}. {how}")
    return path


def load_heads_state_dict(path: str | os.PathLike[str] | None = None) -> dict[str, Tensor]:
    """The v0.1 heads (``lin{i}.model.1.weight``, shape (1, C_i, 1, 1)) from ``path`` or the distribution."""
    return torch.load(lpips_heads_path() if path is None else path, map_location="cpu", weights_only=True)


class VGG16Features(nn.Module):
    """VGG16's convolutional trunk with torchvision's ``features`` indices, returning the 5 LPIPS taps."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for v in _VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_ch, int(v), kernel_size=3, padding=1), nn.ReLU()]
                in_ch = int(v)
        self.features = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Activations at relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (the final pool is skipped)."""
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in VGG16_TAPS:
                taps.append(x)
                if i == VGG16_TAPS[-1]:
                    break
        return taps

    def load_torchvision_state_dict(self, state_dict: Mapping[str, Tensor]) -> None:
        """Load torchvision's full VGG16 state dict strictly, ignoring its ``classifier.*`` entries."""
        feats = {k: v for k, v in state_dict.items() if k.startswith("features.")}
        self.load_state_dict(feats, strict=True)


class _LinearHead(nn.Module):
    """One v0.1 head: a bias-free 1x1 conv, laid out as ``model.1`` so the shipped keys load as is.

    The reference puts a dropout at ``model.0``; it only matters when training the heads, which
    never happens here, so an identity keeps the index without the behaviour.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def _unit_normalize(x: Tensor) -> Tensor:
    """Divide each position's channel vector by its norm (+1e-10, as the reference).

    ``vector_norm`` equals ``sqrt(sum(x**2))`` but its backward is 0 instead of NaN where a
    feature vector is exactly zero (all channels dead after a ReLU).
    """
    return x / (torch.linalg.vector_norm(x, dim=1, keepdim=True) + _EPS)


class LPIPS(nn.Module):
    """Frozen LPIPS v0.1 distance with VGG16 features; differentiable w.r.t. its inputs only.

    ``LPIPS()`` loads the published weights (torch hub cache / download and the ``lpips``
    distribution) and raises :class:`PerceptualWeightsUnavailable` when it cannot;
    ``LPIPS(pretrained=False)`` keeps random weights (for tests or a later ``load_weights``).
    """

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        # Non-persistent: constants of the method, not weights, so they stay out of state dicts.
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.vgg = VGG16Features()
        for i, ch in enumerate(TAP_CHANNELS):
            self.add_module(f"lin{i}", _LinearHead(ch))
        if pretrained:
            self.load_weights(load_vgg16_state_dict(), load_heads_state_dict())
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_files(cls, vgg_path: str | os.PathLike[str], heads_path: str | os.PathLike[str]) -> LPIPS:
        """Build from explicit files: torchvision's ``vgg16-397923af.pth`` and lpips' ``v0.1/vgg.pth``."""
        model = cls(pretrained=False)
        vgg = torch.load(vgg_path, map_location="cpu", weights_only=True)
        model.load_weights(vgg, load_heads_state_dict(heads_path))
        return model

    def load_weights(self, vgg_state_dict: Mapping[str, Tensor], heads_state_dict: Mapping[str, Tensor]) -> None:
        """Load both parts strictly: a torchvision VGG16 state dict and the v0.1 heads by their shipped keys."""
        self.vgg.load_torchvision_state_dict(vgg_state_dict)
        heads = nn.ModuleDict({f"lin{i}": getattr(self, f"lin{i}") for i in range(len(TAP_CHANNELS))})
        heads.load_state_dict(dict(heads_state_dict), strict=True)

    def train(self, mode: bool = True) -> LPIPS:
        """Stay in eval mode: the metric is frozen even inside a module being trained."""
        return super().train(False)

    def forward(self, x: Tensor, y: Tensor, keepdim: bool = True) -> Tensor:
        """LPIPS between images in [-1, 1], (N,3,H,W) each: (N,1,1,1), or (N,) with ``keepdim=False``."""
        fx = self.vgg((x - self.shift) / self.scale)
        fy = self.vgg((y - self.shift) / self.scale)
        total = x.new_zeros(())
        for i, (a, b) in enumerate(zip(fx, fy)):
            diff = (_unit_normalize(a) - _unit_normalize(b)) ** 2
            total = total + getattr(self, f"lin{i}")(diff).mean(dim=(2, 3), keepdim=True)
        return total if keepdim else total.flatten()
