"""``smapgan train``: train a StyleMapGAN on a folder of images (see ``smapgan.train``)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from smapgan.train.options import add_arguments as add_train_arguments

    add_train_arguments(parser)
    parser.epilog = (
        "Several processes: torchrun --nproc_per_node K -m smapgan.train ... (gloo on CPU, nccl on CUDA). "
        "--lambda-perceptual 0 trains without LPIPS (no VGG weights needed)."
    )


def run(args: argparse.Namespace) -> int:
    from smapgan.train.trainer import run_from_args

    return run_from_args(args)
