"""The Hugging Face Space: serve the smapgan editing app on the Space's CPU.

The Space holds smapgan's source (``smapgan/``, with the built-in ops as ``smapgan/builtin_ops``)
next to this file, so nothing of smapgan is pip-installed: ``requirements.txt`` only brings its
third-party dependencies. The models are, in order of precedence: ``--model`` (repeatable), the
``SMAPGAN_MODELS`` variable (Hub repo ids, comma-separated, set in the Space's settings), the older
``SMAPGAN_MODEL`` (one id), the models chosen at deploy time; the bundled model is always offered too.
The device is ``--device`` or ``SMAPGAN_DEVICE`` (auto: CUDA when the Space has a GPU); on a ZeroGPU
Space the ops run under ``spaces.GPU`` (:mod:`smapgan.app.zerogpu`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # `gradio app.py` (hot reload) does not put the app folder on sys.path
    sys.path.insert(0, str(HERE))

MODELS_ENV = "SMAPGAN_MODELS"
MODEL_ENV = "SMAPGAN_MODEL"
DEVICE_ENV = "SMAPGAN_DEVICE"
# Written by `smapgan space deploy --model REPO ...`; empty serves the model bundled with smapgan.
DEPLOYED_MODELS: tuple[str, ...] = ()


def model_sources(models: list[str] | None = None) -> list[str]:
    """The model folders or Hub repo ids to serve, the default first (empty: the bundled model alone)."""
    if models:
        return list(models)
    listed = [m.strip() for m in os.environ.get(MODELS_ENV, "").split(",") if m.strip()]
    if listed:
        return listed
    if os.environ.get(MODEL_ENV):
        return [os.environ[MODEL_ENV]]
    return list(DEPLOYED_MODELS)


def cpu_quota() -> int | None:
    """CPUs granted by the container's cgroup limit: torch sizes its thread pool from the host's
    cores instead, and oversubscribing a 2-vCPU Space makes every edit several times slower."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, int(int(quota) // int(period)))


def build_demo(models: list[str] | None = None, device: str | None = None, max_models: int = 2) -> Any:
    """The Gradio app for ``models`` (see :func:`model_sources`) on ``device``, built but not launched."""
    from smapgan.app import build_demo as build_app
    from smapgan.app.launcher import model_choices

    device = device or os.environ.get(DEVICE_ENV) or "auto"
    return build_app(model_choices(model_sources(models), max_models=max_models, device=device), title="StyleMapGAN")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="smapgan's Hugging Face Space")
    parser.add_argument(
        "--model", action="append", default=[],
        help=f"model folder or Hub repo id, repeatable (default: ${MODELS_ENV}, comma-separated; the bundled model is "
        "always offered)",
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help=f"default: ${DEVICE_ENV}, else auto")
    parser.add_argument("--max-models", type=int, default=2, metavar="K", help="models kept in memory at once")
    args = parser.parse_args(argv)

    import torch

    from smapgan.app.launcher import guard, tune_gradio

    cpus = cpu_quota()
    if cpus is not None and cpus < torch.get_num_threads():
        torch.set_num_threads(cpus)
    tune_gradio()
    # Spaces route to 0.0.0.0 on GRADIO_SERVER_PORT (7860), which Gradio reads itself; no share link.
    # guard: the upload cap (HTTP 413 before storing), the request-body limit, the sessions kept, and
    # the watches over connections (read timeouts) and idle sessions.
    demo = build_demo(args.model, args.device, args.max_models)
    demo.launch(server_name="0.0.0.0", **guard(demo))


if __name__ == "__main__":
    main()
