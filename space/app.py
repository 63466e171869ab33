"""The Hugging Face Space: serve the smapgan editing app on the Space's CPU.

The Space holds smapgan's source (``smapgan/``, with the built-in ops as ``smapgan/builtin_ops``)
next to this file, so nothing of smapgan is pip-installed: ``requirements.txt`` only brings its
third-party dependencies. The model is, in order: ``--model``, the ``SMAPGAN_MODEL`` variable
(a Hub repo id, set in the Space's settings), the model chosen at deploy time, the bundled one.
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

MODEL_ENV = "SMAPGAN_MODEL"
# Written by `smapgan space deploy --model REPO`; None serves the model bundled with smapgan.
DEPLOYED_MODEL: str | None = None


def model_source(model: str | None = None) -> str | None:
    """The model folder or Hub repo id to serve; None means the bundled model."""
    return model or os.environ.get(MODEL_ENV) or DEPLOYED_MODEL


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


def build_demo(model: str | None = None) -> Any:
    """The Gradio app for ``model`` (see :func:`model_source`), built but not launched."""
    from smapgan.app import build_demo as build_app
    from smapgan.app.launcher import load_model

    return build_app(load_model(model_source(model)), title="StyleMapGAN")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="smapgan's Hugging Face Space")
    parser.add_argument("--model", help=f"model folder or Hub repo id (default: ${MODEL_ENV}, then the bundled model)")
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
    demo = build_demo(args.model)
    demo.launch(server_name="0.0.0.0", **guard(demo))


if __name__ == "__main__":
    main()
