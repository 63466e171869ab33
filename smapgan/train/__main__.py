"""``python -m smapgan.train ...`` and ``torchrun --nproc_per_node K -m smapgan.train ...``."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from smapgan.commands import train as command
    from smapgan.train.options import build_parser

    parser = build_parser(prog="python -m smapgan.train")
    return command.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
