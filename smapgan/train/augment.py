"""Differentiable augmentation for limited data (issue 11), in the spirit of StyleGAN2-ADA.

Two uses, both opt-in (``--augment``, ``--augment-rec``):

* D's view. Every image the discriminator sees (reals, G(z), G(E(x)); in the D, R1, G and
  E/G adversarial terms) goes through ``augment`` with probability ``p`` per op and sample.
  Since G's images are augmented the same way before D judges them, and the ops are
  differentiable, G gets its gradient *through* the augmentation and has no reason to
  produce augmented-looking images: the augmentation does not leak into G as long as
  ``p`` stays well below 1 (ADA's finding, about 0.8 for this op set).
* The encoder's inputs. ``--augment-rec`` feeds E shifted, scaled and recoloured reals and
  asks G(E(x')) to reconstruct that same x', so E learns to encode more than the training
  images themselves.

``p`` is either fixed or adapted (ADA): ``r_t = E[sign(D(x_real))]`` over the last few
iterations, and ``p += sign(r_t - target) * batch * interval / (kimg * 1000)``, clamped to
[0, 1]. ``r_t`` near 1 means D is sure of every real: it is overfitting.

All random numbers come from this object's own CPU ``torch.Generator`` (same numbers on any
device; saved and restored with the checkpoint), never from the global RNGs, so a run with
the augmentation off draws exactly what it drew before this module existed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

OPS = ("translate", "scale", "brightness", "saturation", "hue", "cutout")
REC_OPS = ("translate", "scale", "brightness", "saturation", "hue")  # no cutout: E must see the whole image
MODES = ("off", "fixed", "ada")


@dataclass(frozen=True)
class Strengths:
    """How strong each op is when it fires (ADA's defaults, images in [-1, 1])."""

    translate: float = 0.125  # shift, uniform in +-translate of the image side
    scale_std: float = 0.2  # isotropic scale 2 ** N(0, scale_std)
    brightness_std: float = 0.2  # added to every channel
    saturation_std: float = 1.0  # saturation factor 2 ** N(0, saturation_std)
    hue_max: float = 1.0  # rotation about the gray axis, uniform in +-hue_max * pi
    cutout: float = 0.5  # side of the zeroed square, as a fraction of the image side


# --------------------------------------------------------------------------- pure ops


def affine(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Translate by ``shift`` (N,2: x, y as fractions of the side; positive moves content
    right/down) and scale by ``scale`` (N,; > 1 enlarges) about the centre.

    Bilinear ``grid_sample`` with reflection padding: differentiable in ``x``, and the
    border is filled with plausible content instead of a black frame D could learn.
    """
    n = x.shape[0]
    inv = 1.0 / scale
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = inv
    theta[:, 1, 1] = inv
    theta[:, :, 2] = -2.0 * shift * inv[:, None]  # normalised coordinates span 2
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def color(x: torch.Tensor, brightness: torch.Tensor, saturation: torch.Tensor, hue: torch.Tensor) -> torch.Tensor:
    """Add ``brightness``, rotate the hue by ``hue`` radians about the gray axis, scale the
    distance from gray by ``saturation`` (all (N,)): one 3x3 matrix per sample."""
    v = torch.full((3,), 1.0 / math.sqrt(3.0), dtype=x.dtype, device=x.device)
    vv = torch.outer(v, v)
    eye = torch.eye(3, dtype=x.dtype, device=x.device)
    cross = torch.tensor([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]], dtype=x.dtype, device=x.device)
    cross = cross / math.sqrt(3.0)  # [v]_x, so that cross @ c = v x c
    cos, sin = hue.cos()[:, None, None], hue.sin()[:, None, None]
    rotate = cos * eye + sin * cross + (1.0 - cos) * vv  # Rodrigues
    saturate = vv + saturation[:, None, None] * (eye - vv)
    matrix = saturate @ rotate
    return torch.einsum("nij,njhw->nihw", matrix, x + brightness[:, None, None, None])


def cutout(x: torch.Tensor, center: torch.Tensor, size: float) -> torch.Tensor:
    """Zero a square of side ``size`` (fraction of the side) centred at ``center`` (N,2: x, y
    in [0, 1]); a multiplicative mask, so the gradient is the mask itself."""
    h, w = x.shape[-2:]
    ys = (torch.arange(h, dtype=x.dtype, device=x.device) + 0.5) / h
    xs = (torch.arange(w, dtype=x.dtype, device=x.device) + 0.5) / w
    outside_x = (xs[None, :] - center[:, 0:1]).abs() >= size / 2  # (N, W)
    outside_y = (ys[None, :] - center[:, 1:2]).abs() >= size / 2  # (N, H)
    keep = outside_x[:, None, :] | outside_y[:, :, None]
    return x * keep[:, None].to(x.dtype)


def _select(gate: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """``new`` for the samples whose gate fired, ``old`` (bit for bit) for the others."""
    return torch.where(gate[:, None, None, None], new, old)


def augment(
    x: torch.Tensor,
    p: float,
    generator: torch.Generator,
    ops: Sequence[str] = OPS,
) -> torch.Tensor:
    """Each op of ``ops`` fires independently per sample with probability ``p``.

    ``p <= 0`` returns ``x`` itself without drawing a number. Otherwise the draws are the same
    for a given batch size whatever fires (a resumable stream). Computed in float32 with
    autocast off, returned in ``x``'s dtype; differentiable in ``x``.
    """
    if p <= 0:
        return x
    unknown = set(ops) - set(OPS)
    if unknown:
        raise ValueError(f"unknown augmentation ops {sorted(unknown)}; known: {OPS}")
    n, device, s = x.shape[0], x.device, Strengths()
    # Every draw on the CPU generator, in a fixed order, then one copy each to the device.
    gates = torch.rand(n, len(OPS), generator=generator) < p
    gates[:, [i for i, op in enumerate(OPS) if op not in ops]] = False
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * s.translate
    scale = torch.exp2(torch.randn(n, generator=generator) * s.scale_std)
    brightness = torch.randn(n, generator=generator) * s.brightness_std
    saturation = torch.exp2(torch.randn(n, generator=generator) * s.saturation_std)
    hue = (torch.rand(n, generator=generator) * 2 - 1) * (s.hue_max * math.pi)
    center = torch.rand(n, 2, generator=generator)
    g = dict(zip(OPS, gates.unbind(1)))

    def dev(t: torch.Tensor) -> torch.Tensor:
        return t.to(device, non_blocking=True)

    channels_last = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    with torch.autocast(device_type=device.type, enabled=False):
        out = x.float()
        geometric = g["translate"] | g["scale"]
        if geometric.any():
            shift = torch.where(g["translate"][:, None], shift, 0.0)
            scale = torch.where(g["scale"], scale, 1.0)
            out = _select(dev(geometric), affine(out, dev(shift), dev(scale)), out)
        colour = g["brightness"] | g["saturation"] | g["hue"]
        if colour.any():
            brightness = torch.where(g["brightness"], brightness, 0.0)
            saturation = torch.where(g["saturation"], saturation, 1.0)
            hue = torch.where(g["hue"], hue, 0.0)
            out = _select(dev(colour), color(out, dev(brightness), dev(saturation), dev(hue)), out)
        if g["cutout"].any():
            out = _select(dev(g["cutout"]), cutout(out, dev(center), s.cutout), out)
    out = out.to(x.dtype)
    if channels_last:
        out = out.contiguous(memory_format=torch.channels_last)
    return out


# --------------------------------------------------------------------------- the run's state


class AdaptiveAugment:
    """The augmentation state of a run: ``p``, the ADA statistics, the random stream.

    ``mode`` "off" leaves D's view alone (the object then serves ``--augment-rec`` only).
    Only the adaptive statistics need the caller's help: ``observe`` D's logits on the
    augmented reals every D step, and every ``interval`` steps ``adjust`` with the sums of
    ``pending()`` over all ranks (``p`` stays the same on every rank).
    """

    def __init__(
        self,
        mode: str = "ada",
        p: float = 0.0,
        *,
        seed: int = 0,
        target: float = 0.6,
        interval: int = 4,
        kimg: float = 500.0,
        batch: int = 16,
        rec_p: float = 0.0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"augmentation mode {mode!r}: choose one of {MODES}")
        self.mode = mode
        self.p = float(p) if mode != "off" else 0.0
        self.target, self.interval, self.kimg, self.batch = target, interval, kimg, batch
        self.rec_p = rec_p
        self.generator = torch.Generator().manual_seed(seed)
        self.rt: float | None = None
        self._signs: torch.Tensor | float = 0.0
        self._count = 0

    @property
    def adaptive(self) -> bool:
        return self.mode == "ada"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """D's view of ``x``: the same ops for reals and fakes, differentiable."""
        if self.mode == "off":
            return x
        return augment(x, self.p, self.generator, OPS)

    def reconstruction_input(self, x: torch.Tensor) -> torch.Tensor:
        """A shifted/scaled/recoloured copy of the reals for E, at the fixed ``rec_p``."""
        return augment(x, self.rec_p, self.generator, REC_OPS)

    def observe(self, real_logits: torch.Tensor) -> None:
        """Accumulate ``sum(sign(D(x_real)))``; stays on the device (no sync per step)."""
        if self.adaptive:
            self._signs = self._signs + real_logits.detach().float().sign().sum()
            self._count += real_logits.numel()

    def pending(self) -> torch.Tensor:
        """``[sum of signs, count]`` since the last adjustment, to be summed over ranks."""
        return torch.tensor([float(self._signs), float(self._count)], dtype=torch.float64)

    def adjust(self, totals: torch.Tensor) -> float:
        """Update ``p`` from the (all-reduced) ``pending()`` sums; returns ``r_t``."""
        signs, count = (float(v) for v in totals.cpu())
        self._signs, self._count = 0.0, 0
        self.rt = signs / max(count, 1.0)
        step = self.batch * self.interval / (self.kimg * 1000.0)
        direction = (self.rt > self.target) - (self.rt < self.target)
        self.p = min(max(self.p + direction * step, 0.0), 1.0)
        return self.rt

    def state_dict(self) -> dict[str, Any]:
        """Plain values and a tensor: loads with ``torch.load(weights_only=True)``."""
        return {
            "mode": self.mode,
            "p": self.p,
            "rt": self.rt,
            "signs": float(self._signs),
            "count": self._count,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.p = float(state["p"])
        self.rt = state["rt"]
        self._signs = float(state["signs"])
        self._count = int(state["count"])
        self.generator.set_state(state["generator"])
