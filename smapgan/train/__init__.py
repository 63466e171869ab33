"""The StyleMapGAN trainer (``smapgan train``, ``python -m smapgan.train``, ``torchrun -m smapgan.train``).

Importing this package is cheap: the training machinery is imported by :func:`train`.
"""

from __future__ import annotations

from .options import TrainOptions


def train(options: TrainOptions) -> int:
    """Run a training job described by ``options``; returns the process exit code."""
    from .trainer import run_training

    return run_training(options)


__all__ = ["TrainOptions", "train"]
