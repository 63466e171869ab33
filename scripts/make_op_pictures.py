"""One small picture per op for the README: the op's first example, inputs -> outputs.

    python scripts/make_op_pictures.py --model smapgan/assets/default_model --out docs/ops

Each picture is one row of ``make_readme_figure.py`` (same layout, same example), so the
README's op list and its big figure always show the same runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_readme_figure import compose, op_row  # noqa: E402  (a sibling script, not a package)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    parser.add_argument("--out", default="docs/ops", help="folder for <op>.png (default: %(default)s)")
    args = parser.parse_args(argv)
    from smapgan import DEFAULT_MODEL, StyleMapGAN
    from smapgan.ops import OpContext, discover

    torch.set_num_threads(1)
    model = StyleMapGAN.from_pretrained(args.model or DEFAULT_MODEL)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for found in discover().sorted():
        if not found.examples:
            continue
        label, subtitle, cells = op_row(found, OpContext(model))
        path = out / f"{found.name}.png"
        compose([(label, subtitle, cells)], "").save(path, optimize=True)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
