"""Draw the package's import graph by layer (docs/layers.png), the way tests/test_layers.py checks it.

    python scripts/import_graph.py --out docs/layers.png

One box per package (or top-level module), one row per layer of ``tests.test_layers.LAYERS``, lowest
at the bottom; an arrow per importing pair. An import that runs back up the layers is drawn red
(the test fails on it), so the picture shows at a glance whether the house still stands.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.test_layers import LAYERS, graph, layer  # noqa: E402  (the checker's own view of the code)

BOX_H, GAP_X, ROW_H, MARGIN = 34, 18, 96, 24


def unit(module: str) -> str:
    """The box a module is drawn in: its package below ``smapgan`` (``smapgan.fast.cache`` -> ``smapgan.fast``)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/layers.png")
    args = parser.parse_args(argv)
    edges: dict[tuple[str, str], bool] = {}
    units: set[str] = set()
    for a, targets in graph().items():
        units.add(unit(a))
        for b in targets:
            if unit(a) != unit(b):
                edges[(unit(a), unit(b))] = edges.get((unit(a), unit(b)), False) or layer(b) > layer(a)
    rows: dict[int, list[str]] = {}
    for u in sorted(units):
        rows.setdefault(layer(u), []).append(u)
    face = ImageFont.load_default(size=13)
    widths = {u: int(face.getlength(u.removeprefix("smapgan.") or u)) + 20 for u in units}
    width = max(sum(widths[u] + GAP_X for u in row) for row in rows.values()) + 2 * MARGIN
    height = len(LAYERS) * ROW_H + 2 * MARGIN
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    where: dict[str, tuple[int, int, int, int]] = {}
    for level, row in rows.items():
        y = height - MARGIN - (level + 1) * ROW_H + (ROW_H - BOX_H) // 2
        x = (width - sum(widths[u] + GAP_X for u in row) + GAP_X) // 2
        for u in row:
            where[u] = (x, y, x + widths[u], y + BOX_H)
            x += widths[u] + GAP_X
    for (a, b), upward in sorted(edges.items(), key=lambda e: e[1]):
        ax, ay = (where[a][0] + where[a][2]) // 2, where[a][1]
        bx, by = (where[b][0] + where[b][2]) // 2, where[b][3]
        if layer(a) == layer(b):
            ay, by = where[a][3] - BOX_H // 2, where[b][3] - BOX_H // 2
        draw.line([ax, ay, bx, by], fill=(220, 40, 60) if upward else (150, 160, 175), width=3 if upward else 1)
        draw.ellipse([bx - 3, by - 3, bx + 3, by + 3], fill=(220, 40, 60) if upward else (90, 100, 115))
    for u, (x0, y0, x1, y1) in where.items():
        draw.rectangle([x0, y0, x1, y1], fill=(232, 238, 246), outline=(90, 100, 115))
        draw.text((x0 + 10, y0 + 9), u.removeprefix("smapgan.") or u, fill=(30, 30, 30), font=face)
    up = sum(edges.values())
    draw.text((MARGIN, 6), f"imports by layer, lowest at the bottom; {up} running back up (red)", fill=(30, 30, 30), font=face)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    image.save(args.out, optimize=True)
    print(f"wrote {args.out}: {len(units)} boxes, {len(edges)} arrows, {up} running back up")
    return 0


if __name__ == "__main__":
    sys.exit(main())
