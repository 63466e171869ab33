"""Held-out reconstruction metrics and sample grids, computed on the EMA networks."""

from __future__ import annotations

import torch
from torch import nn

from .data import to_float
from .distributed import DistInfo, all_reduce_sum


@torch.no_grad()
def reconstruction_metrics(
    encoder: nn.Module,
    generator: nn.Module,
    images: torch.Tensor,
    dist: DistInfo,
    lpips: nn.Module | None = None,
    batch: int = 16,
    channels_last: bool = False,
) -> dict[str, float]:
    """Mean MSE (and LPIPS) of ``G(E(x))`` over ``images`` (uint8, N,3,S,S), sharded over ranks.

    MSE is the mean over pixels of images in [-1, 1], the quantity of the paper's Table 2.
    """
    shard = images[dist.rank :: dist.world_size]
    sums = torch.zeros(3, dtype=torch.float64)  # mse sum, lpips sum, count
    for start in range(0, shard.shape[0], batch):
        x = to_float(shard[start : start + batch], dist.device, channels_last)
        y = generator(encoder(x)).float()
        sums[0] += (y - x).pow(2).flatten(1).mean(1).sum().item()
        if lpips is not None:
            sums[1] += lpips(x, y).float().flatten().sum().item()
        sums[2] += x.shape[0]
    sums = all_reduce_sum(sums, dist).cpu()
    count = max(1.0, float(sums[2]))
    metrics = {"mse": float(sums[0]) / count}
    if lpips is not None:
        metrics["lpips"] = float(sums[1]) / count
    return metrics


@torch.no_grad()
def sample_grid(generator: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """G(z) for the run's fixed z, (N,3,S,S) unclamped."""
    return generator(generator.map(z)).float()


@torch.no_grad()
def reconstruction_grid(encoder: nn.Module, generator: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Originals above their reconstructions: (2N,3,S,S) for a grid with N columns."""
    rec = generator(encoder(images)).float()
    return torch.cat([images.float(), rec], dim=0)
