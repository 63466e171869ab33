"""One training iteration of the recipe (docs/release_facts.md §Training), one function per step
(``g_adversarial_step`` ... ``ema_step``, each saying its loss), in the release's order and semantics.

With ``--augment`` every image D sees goes through ``state.augment`` first (``_d_view``), in
all four places D runs; with ``--augment-rec`` E and G reconstruct an augmented copy of the
reals (``train_iteration``). Both off: ``state.augment`` is None and nothing here changes.

One saving over the release: E and G do not change between steps 3 and 4, so G(E(x)) is
computed once (``reconstruction_forward``, with its graph) and its detached value feeds D's
in-domain term; the numbers are those of the release, one E and one G forward cheaper.

Gradients are zeroed, not freed (``set_to_none=False``), as under the torch 1.x the release
ran on: the mapping network, which gets no gradient in step 4, still takes an Adam step with
a zero gradient there (its second moment decays), exactly as in the release.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from . import losses
from .augment import AdaptiveAugment
from .distributed import DistInfo, all_reduce_gradients, all_reduce_sum
from .options import TrainOptions

Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class TrainState:
    """Everything an iteration touches. ``*_fwd`` are the (possibly compiled) forwards."""

    opts: TrainOptions
    generator: nn.Module
    encoder: nn.Module
    discriminator: nn.Module
    g_ema: nn.Module
    e_ema: nn.Module
    g_optim: torch.optim.Optimizer
    e_optim: torch.optim.Optimizer
    d_optim: torch.optim.Optimizer
    noise: torch.Generator
    dist: DistInfo
    batch: int
    lpips: nn.Module | None = None
    augment: AdaptiveAugment | None = None
    g_fwd: Forward | None = None
    e_fwd: Forward | None = None
    d_fwd: Forward | None = None
    step: int = 0
    _ema_pairs: tuple[list[torch.Tensor], list[torch.Tensor]] | None = field(default=None, repr=False)

    # The networks and optimizers a checkpoint holds: attribute names here, keys in the payload
    # (the release's checkpoints use the same keys).
    CHECKPOINTED = ("generator", "encoder", "discriminator", "g_ema", "e_ema", "g_optim", "e_optim", "d_optim")

    def __post_init__(self) -> None:
        self.g_fwd = self.g_fwd or self.generator
        self.e_fwd = self.e_fwd or self.encoder
        self.d_fwd = self.d_fwd or self.discriminator

    @property
    def device(self) -> torch.device:
        return self.dist.device

    def state_dicts(self) -> dict[str, dict]:
        """The state dict of each network and optimizer of :attr:`CHECKPOINTED`, by name."""
        return {name: getattr(self, name).state_dict() for name in self.CHECKPOINTED}

    def load_state_dicts(self, payload: dict) -> None:
        """Load what :meth:`state_dicts` saved (``payload`` may hold more keys)."""
        for name in self.CHECKPOINTED:
            getattr(self, name).load_state_dict(payload[name])

    def autocast(self) -> contextlib.AbstractContextManager:
        """bfloat16 autocast for network forwards when ``--amp``; a no-op otherwise."""
        if not self.opts.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def sample_z(self, n: int) -> torch.Tensor:
        """z ~ N(0, I), drawn on the CPU from the run's own generator (same numbers on any device)."""
        z = torch.randn(n, self.opts.latent_channel_size, generator=self.noise)
        return z.to(self.device, non_blocking=True)


def make_optimizers(
    generator: nn.Module, encoder: nn.Module, discriminator: nn.Module, opts: TrainOptions
) -> tuple[torch.optim.Adam, torch.optim.Adam, torch.optim.Adam]:
    """Adam for G and E at (lr, betas); D's settings corrected for lazy R1 as in the release."""
    betas = (opts.beta1, opts.beta2)
    ratio = opts.d_reg_every / (opts.d_reg_every + 1) if opts.d_reg_every > 0 else 1.0
    g_optim = torch.optim.Adam(generator.parameters(), lr=opts.lr, betas=betas)
    e_optim = torch.optim.Adam(encoder.parameters(), lr=opts.lr, betas=betas)
    d_optim = torch.optim.Adam(
        discriminator.parameters(), lr=opts.lr * ratio, betas=(opts.beta1**ratio, opts.beta2**ratio)
    )
    return g_optim, e_optim, d_optim


def _d_view(state: TrainState, x: torch.Tensor) -> torch.Tensor:
    """What D sees of ``x``: augmented with ``--augment`` (differentiably), else ``x`` itself."""
    return x if state.augment is None else state.augment(x)


def _step(state: TrainState, loss: torch.Tensor, optims: list[torch.optim.Optimizer], modules: list[nn.Module]) -> None:
    """Zero, backward, average gradients over ranks, step."""
    for optim in optims:
        optim.zero_grad(set_to_none=False)
    loss.backward()
    all_reduce_gradients([p for m in modules for p in m.parameters()], state.dist)
    for optim in optims:
        optim.step()


def g_adversarial_step(state: TrainState) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """Step 1: G on ``softplus(-D(G(z)))``. Returns the stats, and the detached w and G(z) for step 2."""
    opts = state.opts
    state.discriminator.requires_grad_(False)
    z = state.sample_z(state.batch)
    with state.autocast():
        w = state.generator.map(z)
        fake = state.g_fwd(w)
        fake_pred = state.d_fwd(_d_view(state, fake))
    adv = losses.g_nonsaturating(fake_pred)
    _step(state, adv * opts.lambda_adv, [state.g_optim], [state.generator])
    w = w.detach().float()
    stats = {
        "g/adv": adv.detach(),
        "stylemap/std": w.std(),
        "stylemap/channel_std": w.std(dim=1).mean(),
        "stylemap/spatial_std": w.std(dim=(2, 3)).mean(),
    }
    return stats, w, fake.detach()


def e_latent_step(state: TrainState, fake: torch.Tensor, w: torch.Tensor) -> dict[str, torch.Tensor]:
    """Step 2: E learns to invert the mapping, ``MSE(E(G(z)), w)``."""
    with state.autocast():
        w_rec = state.e_fwd(fake)
    loss = losses.mse(w_rec, w)
    _step(state, loss * state.opts.lambda_w_rec, [state.e_optim], [state.encoder])
    return {"e/w_rec": loss.detach()}


def reconstruction_forward(state: TrainState, real: torch.Tensor) -> torch.Tensor:
    """G(E(x)) with its graph, shared by the D step (detached) and the reconstruction step."""
    with state.autocast():
        return state.g_fwd(state.e_fwd(real))


def d_step(state: TrainState, real: torch.Tensor, reconstruction: torch.Tensor) -> dict[str, torch.Tensor]:
    """Step 3: D on ``softplus(-D(x)) + softplus(D(G(z'))) + softplus(D(G(E(x))))``: reals, fresh fakes and
    the in-domain reconstructions."""
    opts = state.opts
    state.discriminator.requires_grad_(True)
    z = state.sample_z(state.batch)
    with torch.no_grad(), state.autocast():
        fake = state.g_fwd(state.generator.map(z))
    with state.autocast():
        real_pred = state.d_fwd(_d_view(state, real))
        fake_pred = state.d_fwd(_d_view(state, fake))
        rec_pred = state.d_fwd(_d_view(state, reconstruction.detach()))
    if state.augment is not None:
        state.augment.observe(real_pred)
    d_loss = losses.d_logistic(real_pred, fake_pred)
    indomain = losses.d_fake(rec_pred)
    _step(state, d_loss * opts.lambda_d + indomain * opts.lambda_indomain_d, [state.d_optim], [state.discriminator])
    state.discriminator.requires_grad_(False)
    return {
        "d/loss": d_loss.detach(),
        "d/indomain": indomain.detach(),
        "score/real": real_pred.detach().float().mean(),
        "score/fake": fake_pred.detach().float().mean(),
        "score/reconstruction": rec_pred.detach().float().mean(),
    }


def r1_step(state: TrainState, real: torch.Tensor) -> dict[str, torch.Tensor]:
    """Lazy R1: ``gamma/2 * |dD(x)/dx|^2 * d_reg_every``, in float32 on the eager D.

    Double backward is not supported through compiled graphs and is fragile in bfloat16,
    so this step always runs the uncompiled discriminator without autocast.

    With ``--augment`` the penalty is on D's gradient at the *augmented* reals (a fresh
    draw), taken with respect to those augmented images: R1 then regularises D on the
    distribution D is trained on, its size is D's own gradient (not rescaled by the scale
    op's Jacobian or zeroed by cutout's mask), and no double backward runs through
    ``grid_sample``.
    """
    opts = state.opts
    state.discriminator.requires_grad_(True)
    real = _d_view(state, real.detach()).detach().requires_grad_(True)
    real_pred = state.discriminator(real)
    r1 = losses.r1_penalty(real_pred, real)
    _step(state, r1 * (opts.r1 / 2 * opts.d_reg_every), [state.d_optim], [state.discriminator])
    state.discriminator.requires_grad_(False)
    return {"d/r1": r1.detach()}


def reconstruction_step(state: TrainState, real: torch.Tensor, reconstruction: torch.Tensor) -> dict[str, torch.Tensor]:
    """Step 4: E and G on ``MSE(x, G(E(x))) + LPIPS + softplus(-D(G(E(x))))`` (D frozen).

    ``real`` is what E was given: with ``--augment-rec``, the augmented copy (the target)."""
    opts = state.opts
    state.discriminator.requires_grad_(False)
    x_rec = losses.mse(reconstruction, real)
    loss = x_rec * opts.lambda_x_rec
    stats = {"e/x_rec": x_rec.detach()}
    if opts.lambda_indomain_e:
        with state.autocast():
            rec_pred = state.d_fwd(_d_view(state, reconstruction))
        indomain = losses.g_nonsaturating(rec_pred)
        loss = loss + indomain * opts.lambda_indomain_e
        stats["e/indomain"] = indomain.detach()
    if opts.lambda_perceptual:
        if state.lpips is None:
            raise RuntimeError("--lambda-perceptual is non-zero but no LPIPS network was loaded")
        with state.autocast():
            perceptual = state.lpips(real, reconstruction).float().mean()
        loss = loss + perceptual * opts.lambda_perceptual
        stats["e/perceptual"] = perceptual.detach()
    _step(state, loss, [state.e_optim, state.g_optim], [state.encoder, state.generator])
    return stats


@torch.no_grad()
def ema_step(state: TrainState) -> None:
    """Step 5: ``ema = decay * ema + (1 - decay) * live`` for G and E; buffers copied."""
    if state._ema_pairs is None:
        ema = [p for m in (state.g_ema, state.e_ema) for p in m.parameters()]
        live = [p for m in (state.generator, state.encoder) for p in m.parameters()]
        state._ema_pairs = (ema, live)
    ema, live = state._ema_pairs
    torch._foreach_lerp_(ema, live, 1.0 - state.opts.ema_decay)
    for target, source in ((state.g_ema, state.generator), (state.e_ema, state.encoder)):
        for b_ema, b in zip(target.buffers(), source.buffers()):
            b_ema.copy_(b)


def train_iteration(state: TrainState, real: torch.Tensor) -> dict[str, torch.Tensor]:
    """One iteration on the batch ``real`` (images in [-1, 1]); advances ``state.step``."""
    opts, augment = state.opts, state.augment
    stats, w, fake = g_adversarial_step(state)
    stats.update(e_latent_step(state, fake, w))
    # D's reals stay the data itself: only E's input (and its reconstruction target) is augmented.
    rec_input = augment.reconstruction_input(real) if augment is not None and opts.augment_rec else real
    reconstruction = reconstruction_forward(state, rec_input)
    stats.update(d_step(state, real, reconstruction))
    if augment is not None and augment.adaptive and (state.step + 1) % augment.interval == 0:
        stats["augment/rt"] = torch.tensor(augment.adjust(all_reduce_sum(augment.pending(), state.dist)))
    if state.opts.d_reg_every > 0 and state.step % state.opts.d_reg_every == 0:
        stats.update(r1_step(state, real))
    stats.update(reconstruction_step(state, rec_input, reconstruction))
    if augment is not None and augment.mode != "off":
        stats["augment/p"] = torch.tensor(augment.p)
    ema_step(state)
    state.step += 1
    return stats
