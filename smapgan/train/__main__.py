"""``python -m smapgan.train ...`` and ``torchrun --nproc_per_node K -m smapgan.train ...``."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from smapgan.train.options import build_parser
    from smapgan.train.trainer import run_from_args

    parser = build_parser(prog="python -m smapgan.train")
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
