"""Where a model runs, and the renderer that fits there.

``auto`` takes CUDA when torch sees a GPU. On CUDA the renderer is the reference one
(plain model calls on the GPU): the fast renderer's prepared networks, bf16 choice and
per-cell caches are CPU paths, measured against a CPU's matrix units and memory. On the CPU
the fast renderer is used when this build has it.
"""

from __future__ import annotations

import torch

from .model import StyleMapGAN
from .render import ReferenceRenderer, Renderer

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(choice: str = "auto") -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` as a torch device; CUDA asked for but absent is a clear error."""
    choice = (choice or "auto").strip().lower()
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cpu":
        return torch.device("cpu")
    if choice == "cuda" or choice.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device {choice!r} was asked for, but this torch sees no CUDA GPU "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); use --device cpu or auto"
            )
        device = torch.device(choice)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RuntimeError(f"device {choice!r} was asked for, but there are {torch.cuda.device_count()} CUDA GPUs")
        return device
    raise ValueError(f"device must be one of {', '.join(DEVICE_CHOICES)} (or cuda:N), got {choice!r}")


def renderer_for_device(
    model: StyleMapGAN, device: torch.device | str = "auto", *, fill_when_idle: bool = False
) -> Renderer:
    """``model`` moved to ``device`` (a choice of :func:`resolve_device` or a device), with its renderer:
    the reference renderer on CUDA, the fast one on the CPU when this build has it.

    ``fill_when_idle``: the fast renderer completes a render's maps while nobody waits (for an app).
    """
    device = resolve_device(device) if isinstance(device, str) else torch.device(device)
    model.to(device)
    if device.type != "cpu":
        return ReferenceRenderer(model)
    try:
        from .fast import FastRenderer
    except ImportError:
        return ReferenceRenderer(model)
    return FastRenderer(model, fill_when_idle=fill_when_idle)
