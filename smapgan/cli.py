"""The ``smapgan`` command: a thin dispatcher over ``smapgan.commands.*``.

Each sub-command lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; modules import heavy dependencies inside ``run`` so that
``smapgan --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# name -> (module, one-line help). Order is the order shown in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("smapgan.commands.info", "describe a model (config, parameters, levels)"),
    "convert": ("smapgan.commands.convert", "convert an official release .pt to a smapgan folder"),
    "ops": ("smapgan.commands.ops", "list the registered editing ops and their inputs"),
    "align": ("smapgan.commands.align", "crop a photo's face the way the training faces were aligned"),
    "edit": ("smapgan.commands.edit", "run an editing op headless"),
    "direction": ("smapgan.commands.direction", "learn a semantic direction from two image folders, or SeFa ones without labels"),
    "prior": ("smapgan.commands.prior", "fit the encoded prior (random generation) to a folder of images"),
    "train": ("smapgan.commands.train", "train a StyleMapGAN on a folder of images"),
    "space": ("smapgan.commands.space", "deploy the Gradio app as a Hugging Face Space"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smapgan", description="smapgan: the StyleMapGAN toolkit.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, ValueError, FileNotFoundError, OSError) as exc:
        # Expected failures (bad input, missing weights, offline Hub) get one clear line, no traceback.
        print(f"smapgan {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
