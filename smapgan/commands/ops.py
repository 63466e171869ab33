"""``smapgan ops``: list the registered editing ops, their inputs and outputs, and broken plugins."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", "-v", action="store_true", help="also show tracebacks of broken plugins")


def run(args: argparse.Namespace) -> int:
    from ..ops import discover

    registry = discover()
    for found in registry.sorted():
        print(f"{found.name}: {found.title}  [{found.source}]")
        for line in found.usage().splitlines():
            print(f"    {line}")
    for error in registry.errors:
        print(f"broken plugin {error}", file=sys.stderr)
        if args.verbose and error.details:
            print(error.details, file=sys.stderr)
    return 0
