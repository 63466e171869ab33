"""Random models for the renderer tests, and the PSNR their fast paths are held to.

Not a test module: ``tests/test_fast.py``, ``test_render_contract.py`` and others import it. A module
that imports the ``model`` and ``images`` fixtures renders the narrow model (they override conftest's tiny one).
"""

from __future__ import annotations

import pytest
import torch

from smapgan import StyleMapGAN, StyleMapGANConfig
from smapgan.latent.metrics import psnr_from_mse

NARROW = StyleMapGANConfig(
    size=64, latent_spatial_size=8, latent_channel_size=16, mapping_layer_num=2, channel_base=512, channel_max=32
)
"""A 64 px model narrow enough for many renders per test."""


def random_model(config: StyleMapGANConfig, seed: int = 0) -> StyleMapGAN:
    """The model's own random init from ``seed``, leaving the caller's random state as it was."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return StyleMapGAN(config, with_discriminator=False).eval()


def perturbed(config: StyleMapGANConfig, seed: int = 0) -> StyleMapGAN:
    """Random weights with every parameter moved off its init (biases and gains matter)."""
    torch.manual_seed(seed)
    model = StyleMapGAN(config, with_discriminator=False).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return model


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR for images in [-1, 1] (peak-to-peak 2), on the unclamped outputs."""
    return psnr_from_mse(float(((a - b) ** 2).mean()))


def noise_images(count: int, size: int) -> torch.Tensor:
    """``count`` uniform-noise images in [-1, 1], the same on every call (seed 1)."""
    return torch.rand(count, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1


@pytest.fixture(scope="module")
def model() -> StyleMapGAN:
    """The narrow model with perturbed weights, built once per importing module."""
    return perturbed(NARROW)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """Three noise images at the narrow model's size."""
    return noise_images(3, NARROW.size)
