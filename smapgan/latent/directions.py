"""Learning semantic directions in stylemap space (pure tensor functions, no I/O).

A direction separates the stylemaps of images with an attribute (positives) from
those without (negatives). Two methods:

* ``logistic`` (default): the normal of an L2-regularized logistic regression on
  the flattened stylemaps, fitted full-batch with L-BFGS and class-balanced
  weights. It is the smooth counterpart of the paper's linear SVM; unlike a mean
  difference it discounts directions along which each class varies a lot on its
  own (other attributes that happen to differ between the two sets).
* ``mean``: the difference of the class means. It needs no fitting and is the
  strong-regularization limit of the above; prefer it with very few images
  (under ~20 per side), where a classifier mostly fits noise.

Without labels, :func:`sefa` finds directions in closed form from the weights (SeFa).

Convention: a direction has unit norm *per stylemap cell*: its L2 norm over all
C*L*L values is ``L`` (= sqrt of the number of cells), i.e. the mean squared norm
of its per-cell C-vectors is 1. ``w + s * n`` then moves each cell by ``s`` on
average, whatever the stylemap's resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

Method = Literal["logistic", "mean"]


@dataclass(frozen=True)
class DirectionFit:
    """A learned direction (C,L,L) with diagnostics."""

    direction: torch.Tensor
    accuracy: float
    gap: float
    """Strength that moves the average negative to the average positive along the direction."""


def normalize_per_cell(direction: torch.Tensor) -> torch.Tensor:
    """Scale a (C,L,L) direction so that its norm is sqrt(L*L) (unit norm per cell)."""
    if direction.ndim != 3:
        raise ValueError(f"a direction must be (C,L,L), got {tuple(direction.shape)}")
    norm = direction.norm()
    if not torch.isfinite(norm) or norm == 0:
        raise ValueError("the direction is zero or not finite: positives and negatives are indistinguishable")
    cells = direction.shape[-1] * direction.shape[-2]
    return direction * (cells**0.5 / norm)


def learn_direction(
    positives: torch.Tensor,
    negatives: torch.Tensor,
    method: Method = "logistic",
    steps: int = 300,
    l2: float = 1e-2,
) -> DirectionFit:
    """Direction from positive and negative stylemaps (N,C,L,L), pointing toward the positives."""
    if positives.ndim != 4 or negatives.ndim != 4 or positives.shape[1:] != negatives.shape[1:]:
        raise ValueError("positives and negatives must be stylemaps (N,C,L,L) of the same shape")
    if len(positives) < 1 or len(negatives) < 1:
        raise ValueError("need at least one positive and one negative image")
    shape = positives.shape[1:]
    pos = positives.detach().float().flatten(1)
    neg = negatives.detach().float().flatten(1)
    if method == "mean":
        weights = pos.mean(0) - neg.mean(0)
    elif method == "logistic":
        weights = _logistic(pos, neg, steps, l2)
    else:
        raise ValueError(f"method must be 'logistic' or 'mean', got {method!r}")
    direction = normalize_per_cell(weights.reshape(shape))
    flat = direction.flatten()
    unit = flat / flat.norm()
    threshold = ((pos @ unit).mean() + (neg @ unit).mean()) / 2
    correct = (pos @ unit > threshold).sum() + (neg @ unit <= threshold).sum()
    gap = float((pos.mean(0) - neg.mean(0)) @ flat) / float(flat.norm() ** 2)
    return DirectionFit(direction, float(correct) / (len(pos) + len(neg)), gap)


def _logistic(pos: torch.Tensor, neg: torch.Tensor, steps: int, l2: float) -> torch.Tensor:
    x = torch.cat([pos, neg])
    y = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))])
    # Class-balanced weights, and features centered and scaled by one global factor
    # (a scalar keeps the normal's direction in the original space).
    sample_weight = torch.cat([torch.full((len(pos),), 0.5 / len(pos)), torch.full((len(neg),), 0.5 / len(neg))])
    mean = x.mean(0)
    scale = (x - mean).std().clamp_min(1e-8)
    xs = (x - mean) / scale
    w = torch.zeros(xs.shape[1], requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = xs @ w + b
        loss = (F.binary_cross_entropy_with_logits(logits, y, reduction="none") * sample_weight).sum()
        loss = loss + l2 * (w @ w)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return w.detach()


# ----------------------------------------------------------------------------- SeFa (no labels)
SEFA_PREFIX = "sefa_"
SEFA_WEIGHT_KEY = "generator.decoder.convs_latent.0.0.weight"
"""State-dict key of the first layer that reads the stylemap: the resizer's first equalized 3x3 conv."""


@dataclass(frozen=True)
class SefaFit:
    """Closed-form directions: unit C-vectors (K,C), strongest first, and their eigenvalues (K,)."""

    vectors: torch.Tensor
    eigenvalues: torch.Tensor


def sefa(weight: torch.Tensor, count: int) -> SefaFit:
    """SeFa (Shen & Zhou, CVPR 2021): the top eigenvectors of A^T A for the first layer A reading the code.

    ``weight`` is that layer's conv weight (C_out, C, k, k) as stored (equalized
    learning rate), used times ``1/sqrt(C*k*k)`` as the decoder does at run time. The k x k taps are
    summed, so A (C_out, C) is the layer's response to a code that is constant over
    the cells: a direction is one C-vector added to every cell (or to the cells of a
    mask). Eigenvectors are unit vectors, sorted by decreasing eigenvalue, each
    signed so that its largest-magnitude component is positive (reproducible).
    """
    if weight.ndim != 4:
        raise ValueError(f"weight must be a conv weight (C_out, C, k, k), got {tuple(weight.shape)}")
    c = weight.shape[1]
    if not 1 <= count <= c:
        raise ValueError(f"count must be between 1 and the stylemap's channels ({c}), got {count}")
    scale = 1.0 / math.sqrt(c * weight.shape[2] * weight.shape[3])
    a = weight.detach().double().sum(dim=(2, 3)) * scale  # (C_out, C)
    eigenvalues, eigenvectors = torch.linalg.eigh(a.T @ a)  # ascending
    order = torch.argsort(eigenvalues, descending=True)[:count]
    vectors = eigenvectors[:, order].T.contiguous()  # (K, C)
    peak = vectors.gather(1, vectors.abs().argmax(1, keepdim=True))
    vectors = vectors * torch.where(peak < 0, -1.0, 1.0)
    return SefaFit(vectors.float(), eigenvalues[order].float())


def sefa_maps(fit: SefaFit, side: int) -> dict[str, torch.Tensor]:
    """``sefa_0 ... sefa_{K-1}``: each vector broadcast to a (C,L,L) map (unit norm per cell, like learned ones)."""
    return {
        f"{SEFA_PREFIX}{i}": v[:, None, None].expand(-1, side, side).contiguous() for i, v in enumerate(fit.vectors)
    }
