"""``smapgan train``: train a StyleMapGAN on a folder of images (see ``smapgan.train``)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from smapgan.train.options import add_arguments as add_train_arguments

    add_train_arguments(parser)
    parser.epilog = (
        "Several processes: torchrun --nproc_per_node K -m smapgan.train ... (gloo on CPU, nccl on CUDA). "
        "--lambda-perceptual 0 trains without LPIPS (no VGG weights needed)."
    )


def run(args: argparse.Namespace) -> int:
    """Train; expected failures (bad data, missing LPIPS weights) print one line and return 2."""
    from smapgan.train.data import DataError
    from smapgan.train.options import TrainOptions
    from smapgan.train.trainer import StartupError, run_training

    try:
        options = TrainOptions.from_args(args)
        return run_training(options)
    except (StartupError, DataError, ValueError) as exc:
        print(f"smapgan train: error: {exc}", file=sys.stderr)
        return 2
