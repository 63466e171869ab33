"""Per-image refinement of the encoder's inversion (a pure function on tensors, no UI, no I/O).

StyleMapGAN inverts an image in one encoder pass; an image unlike the training
set reconstructs poorly and every edit inherits that error. :func:`refine`
starts from ``model.encode(images)`` and optimises the code for a few dozen
steps against the image (Adam on the code, the networks frozen), in the spirit
of Image2StyleGAN++'s masked embedding:

    loss = masked MSE(G(code), image) [+ LPIPS]
           + proximity * mean((code - encoder code)^2)

``space="w"`` refines the stylemap, which every edit of every op (blends in w or w+,
lerps, directions) then starts from; ``space="w+"`` each level of the pyramid, closer,
but only pyramid edits can use it. A ``mask`` limits the loss to its pixels and the update
to the code cells it touches. The proximity term keeps the code near the encoder's, where
the generator and the editing directions were trained, so that edits stay semantic
(:data:`DEFAULT_PROXIMITY`, measured with ``bench/refine.py``: docs/refine.md).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterator, Literal, Protocol, Sequence

import torch

from .adam import Adam
from .editing import pool_mask
from ..model import StyleMapGAN

Space = Literal["w", "w+"]
Code = torch.Tensor | list[torch.Tensor]

DEFAULT_STEPS = 100
DEFAULT_LR = 0.05
# Weight of mean((code - encoder code)^2) against the pixel MSE (images in [-1,1]). 0.1 keeps the
# refined code three times closer to the encoder's than 0.01 (where the generator, the blends and
# the directions were trained) for 0.6-0.9 dB less PSNR, and gives the best MSE_ref: the sweep of
# bench/refine.py on the bundled model is in docs/refine.md.
DEFAULT_PROXIMITY = 0.1


@dataclass
class RefineStep:
    """What the progress callback sees after each step."""

    step: int  # steps done (1..steps)
    steps: int
    loss: float  # mean objective over the batch at the code before this step's update
    best_loss: float  # mean of the per-image best objectives so far


@dataclass
class RefineTrace:
    """Optional record of a run (pass ``trace=RefineTrace()``): losses per evaluation, and why it ended."""

    losses: list[float] = field(default_factory=list)  # mean objective per evaluation (steps + 1 when not stopped)
    fit_losses: list[float] = field(default_factory=list)  # the masked reconstruction term alone
    steps_done: int = 0
    stopped: bool = False


ProgressCallback = Callable[[RefineStep], "bool | None"]


class Differentiable(Protocol):
    """What :func:`refine` back-propagates through: the model's own modules, or a renderer's faster twin of
    them (``Renderer.gradient_decoder()``)."""

    def expand(self, stylemap: torch.Tensor) -> list[torch.Tensor]: ...

    def synthesize(self, pyramid: Sequence[torch.Tensor]) -> torch.Tensor: ...


@contextlib.contextmanager
def frozen(*modules: torch.nn.Module) -> Iterator[None]:
    """Switch ``requires_grad`` off on every parameter of ``modules`` and restore each flag after."""
    params = [p for m in modules if m is not None for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


def _masked_mse(y: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Per-image MSE, averaged over the masked pixels (all pixels without a mask)."""
    err = (y - x).pow(2)
    if mask is None:
        return err.flatten(1).mean(1)
    m = mask.expand_as(err)
    return (err * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1.0)


def _cell_masks(mask: torch.Tensor | None, codes: Sequence[torch.Tensor]) -> list[torch.Tensor | None]:
    """Which cells of each code may change: the mask max-pooled to the code's resolution."""
    if mask is None:
        return [None] * len(codes)
    return [pool_mask(mask, c.shape[-2:], "max").to(c.dtype) for c in codes]


def _perceptual_module(perceptual: object, device: torch.device) -> torch.nn.Module | None:
    if perceptual is None:
        return None
    if isinstance(perceptual, torch.nn.Module):
        return perceptual.to(device).eval()
    if perceptual == "lpips":
        from ..networks.lpips import LPIPS  # raises PerceptualWeightsUnavailable with a clear message

        return LPIPS(pretrained=True).to(device).eval()
    raise ValueError(f"perceptual must be None, 'lpips' or an LPIPS module, got {perceptual!r}")


def refine(
    model: StyleMapGAN,
    images: torch.Tensor,
    steps: int = DEFAULT_STEPS,
    space: Space = "w",
    mask: torch.Tensor | None = None,
    lr: float = DEFAULT_LR,
    proximity: float = DEFAULT_PROXIMITY,
    perceptual: object = None,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    seed: int = 0,
    init: torch.Tensor | None = None,
    trace: RefineTrace | None = None,
    decoder: Differentiable | None = None,
) -> Code:
    """Refine the encoder's code of ``images`` (N,3,S,S in [-1,1]) by ``steps`` Adam steps.

    Returns a stylemap (N,C,L,L) for ``space="w"`` or a pyramid (list of levels)
    for ``space="w+"``, detached, on the model's device. ``steps=0`` returns the
    encoder's code itself (bit for bit). ``mask`` (N or 1,1,S,S), 1 = fit here.
    ``perceptual="lpips"`` adds LPIPS (VGG16 v0.1) when its weights are
    available (see :mod:`smapgan.networks.lpips`); an ``nn.Module`` taking two
    image batches is used as given. ``progress(RefineStep)`` is called after
    every step; returning False stops, like setting ``stop``: the best code per
    image so far is returned. ``init`` replaces ``model.encode(images)`` as the
    start and anchor (e.g. an encoding already cached). Deterministic for a fixed
    ``seed`` on a given device and thread count. ``decoder``: what the image is
    made with, differentiably (default: the model); ``renderer.gradient_decoder()``
    gives the fast renderer's (1.2-1.6x less CPU time, equal within float tolerance).
    """
    if space not in ("w", "w+"):
        raise ValueError(f"space must be 'w' or 'w+', got {space!r}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    device = model.device
    images = images.to(device)
    model._check_images(images)
    if mask is not None:
        if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[0] not in (1, len(images)):
            raise ValueError(f"mask must be (N,1,H,W) or (1,1,H,W), got {tuple(mask.shape)}")
        mask = pool_mask(mask.to(device), images.shape[-2:], "avg") if mask.shape[-2:] != images.shape[-2:] else mask
        mask = mask.to(device=device, dtype=images.dtype)
    with torch.no_grad():
        start = init.to(device) if init is not None else model.encode(images)
        anchors: list[torch.Tensor] = [start] if space == "w" else list(model.expand(start))
    if steps == 0:
        return start if space == "w" else anchors
    loss_fn = _perceptual_module(perceptual, device)
    decoder = model if decoder is None else decoder

    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.inference_mode(False))
        stack.enter_context(torch.enable_grad())
        stack.enter_context(frozen(model, loss_fn) if loss_fn is not None else frozen(model))
        stack.enter_context(torch.random.fork_rng(devices=[device] if device.type == "cuda" else []))
        torch.manual_seed(seed)
        anchors = [a.detach().clone() for a in anchors]
        codes = [a.clone().requires_grad_(True) for a in anchors]
        cells = _cell_masks(mask, codes)
        if mask is not None:
            for code, cell in zip(codes, cells):
                code.register_hook(lambda g, c=cell: g * c)
        optimizer = Adam(codes, lr=lr)  # torch.optim's, without its first-use import of torch._dynamo
        n = len(images)
        best_loss = torch.full((n,), float("inf"), device=device)
        best = [a.clone() for a in anchors]
        numel = sum(a[0].numel() for a in anchors)

        def objective() -> tuple[torch.Tensor, torch.Tensor]:
            pyramid = codes if space == "w+" else decoder.expand(codes[0])
            y = decoder.synthesize(pyramid)
            fit = _masked_mse(y, images, mask)
            if loss_fn is not None:
                y_in, x_in = y, images
                if mask is not None:  # perceptual term on the masked region only (outside: the target itself)
                    y_in = torch.lerp(images, y, mask.expand_as(y))
                fit = fit + loss_fn(y_in, x_in).reshape(n, -1).mean(1)
            prox = sum((c - a).pow(2).flatten(1).sum(1) for c, a in zip(codes, anchors)) / numel
            return fit + proximity * prox, fit

        def measure() -> torch.Tensor:
            """The objective at the current codes, per image; the best code per image is kept."""
            total, fit = objective()
            better = total.detach() < best_loss
            if bool(better.any()):
                best_loss.copy_(torch.where(better, total.detach(), best_loss))
                for b, c in zip(best, codes):
                    b.copy_(torch.where(better.view(-1, *[1] * (c.ndim - 1)), c.detach(), b))
            if trace is not None:
                trace.losses.append(float(total.detach().mean()))
                trace.fit_losses.append(float(fit.detach().mean()))
            return total

        stopped = False
        done = 0
        for step in range(steps):
            optimizer.zero_grad()
            total = measure()
            total.sum().backward()
            optimizer.step()
            done = step + 1
            info = RefineStep(done, steps, float(total.detach().mean()), float(best_loss.mean()))
            if (progress is not None and progress(info) is False) or (stop is not None and stop.is_set()):
                stopped = done < steps
                break
        if not stopped:  # the code after the last update has not been measured yet
            with torch.no_grad():
                measure()
        if trace is not None:
            trace.steps_done, trace.stopped = done, stopped
        out = []
        for b, a, cell in zip(best, anchors, cells):
            # Cells outside the mask stay the anchor's bit for bit (Adam's update there is already 0).
            out.append(b if cell is None else torch.where(cell.bool().expand_as(b), b, a))
    return out[0] if space == "w" else out


def step_gflop(model: StyleMapGAN) -> float:
    """GFLOP of one refinement step in w (decoder forward and backward to the stylemap, batch 1): what
    the app charges a client per step and image. Counted by torch's FlopCounterMode on a copy of the
    model's architecture on the meta device (shapes only: no weights copied, nothing computed)."""
    from torch.utils.flop_counter import FlopCounterMode

    config = model.config
    with torch.device("meta"):
        shape = type(model)(config, with_discriminator=False)
        code = torch.zeros(1, config.latent_channel_size, config.latent_spatial_size, config.latent_spatial_size)
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.inference_mode(False))
        stack.enter_context(torch.enable_grad())
        stack.enter_context(frozen(shape))
        counter = stack.enter_context(FlopCounterMode(display=False))
        code.requires_grad_(True)
        shape.decode(code).pow(2).mean().backward()
    return float(counter.get_total_flops()) / 1e9


def psnr(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of ``y`` (clamped to [-1,1]) against ``x``, peak-to-peak 2."""
    mse = (y.clamp(-1, 1) - x).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(4.0 / mse.clamp_min(1e-12))


def reconstruct(model: StyleMapGAN, code: Code) -> torch.Tensor:
    """The image of a code returned by :func:`refine` (stylemap or pyramid), unclamped."""
    with torch.no_grad():
        return model.synthesize(code) if isinstance(code, list) else model.decode(code)
