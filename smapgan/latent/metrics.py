"""Quality figures of a model: reconstruction (paper Table 2/3) and local editing (Table 4).

Images are tensors in [-1, 1] like everywhere in smapgan; MSE is measured on
that scale, as in the release's evaluation scripts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from . import editing
from ..model import StyleMapGAN


def psnr_from_mse(mse: float, peak_to_peak: float = 2.0) -> float:
    """PSNR in dB for images spanning ``peak_to_peak`` (2 for [-1, 1])."""
    return float("inf") if mse <= 0 else 10 * math.log10(peak_to_peak**2 / mse)


@dataclass
class ReconstructionFigures:
    mse: float
    psnr: float
    count: int


@torch.inference_mode()
def reconstruction_figures(model: StyleMapGAN, images: torch.Tensor, batch_size: int = 32) -> ReconstructionFigures:
    """Mean per-image MSE of ``decode(encode(x))`` against ``x`` (clamped to [-1,1] like pixels)."""
    errors = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(model.device)
        y = model.decode(model.encode(x)).clamp(-1, 1)
        errors.append((y - x).pow(2).flatten(1).mean(1).cpu())
    mse = torch.cat(errors).mean().item()
    return ReconstructionFigures(mse=mse, psnr=psnr_from_mse(mse), count=len(images))


@dataclass
class LocalEditingFigures:
    mse_src: float  # unmasked region of the edit vs the original image
    mse_ref: float  # masked region of the edit vs the reference image
    count: int


def local_editing_masks(size: int) -> dict[str, torch.Tensor]:
    """The fixed mask cases: eyes band, mouth band, left half, centre box (fractions of the image)."""
    boxes = {
        "eyes": (0.22, 0.55, 0.12, 0.88),
        "mouth": (0.55, 0.88, 0.2, 0.8),
        "left_half": (0.0, 1.0, 0.0, 0.5),
        "centre": (0.25, 0.75, 0.25, 0.75),
    }
    masks = {}
    for name, (y0, y1, x0, x1) in boxes.items():
        m = torch.zeros(1, 1, size, size)
        m[..., round(y0 * size) : round(y1 * size), round(x0 * size) : round(x1 * size)] = 1
        masks[name] = m
    return masks


@torch.inference_mode()
def local_editing_figures(
    model: StyleMapGAN,
    sources: torch.Tensor,
    references: torch.Tensor,
    masks: Sequence[torch.Tensor],
    space: str = "w+",
    stylemaps: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> LocalEditingFigures:
    """Paper Table 4: blend each (source, reference) pair under each mask and measure both sides.

    MSE_src averages the squared error over unmasked pixels against the source,
    MSE_ref over masked pixels against the reference (both in [-1,1]); the mask
    is the pixel mask the user drew, whatever the stylemap cells it touches.
    ``stylemaps`` (sources', references') replaces the encoder's codes, e.g. with
    refined ones (:func:`smapgan.latent.invert.refine`).
    """
    src_errors, ref_errors = [], []
    sources, references = sources.to(model.device), references.to(model.device)
    if stylemaps is None:
        s_src, s_ref = model.encode(sources), model.encode(references)
    else:
        s_src, s_ref = (s.to(model.device) for s in stylemaps)
    p_src, p_ref = model.expand(s_src), model.expand(s_ref)
    for mask in masks:
        m = mask.to(model.device).expand(len(sources), 1, -1, -1)
        if space == "w+":
            edited = model.synthesize(editing.blend_pyramid(p_src, p_ref, m))
        else:
            edited = model.decode(editing.blend_stylemap(s_src, s_ref, m))
        edited = edited.clamp(-1, 1)
        inside = m.expand_as(edited).bool()
        src_errors.append((edited - sources)[~inside].pow(2).mean().item())
        ref_errors.append((edited - references)[inside].pow(2).mean().item())
    return LocalEditingFigures(
        mse_src=sum(src_errors) / len(src_errors), mse_ref=sum(ref_errors) / len(ref_errors), count=len(masks) * len(sources)
    )
