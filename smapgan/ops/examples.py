"""An op's declared examples as the values ``Op.run`` takes (scripts, tests, notebooks).

The app turns an example into widget values (``smapgan.app.examples``); outside the
app the same example becomes :class:`Picture` objects built by
:meth:`OpContext.picture` -- the path ``smapgan edit`` takes -- so a figure or a test
made from an example shows exactly what a user gets from the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..intake import images as imageio
from .context import OpContext
from .picture import Picture
from .spec import ImageInput, Op

EXAMPLES_DIR: Path = Path(__file__).resolve().parent.parent / "assets" / "examples"


def example_mask(mask: Any, size: int) -> torch.Tensor | None:
    """A declared mask (a box ``(x0, y0, x1, y1)`` in fractions, or a mask file) as (1,1,S,S)."""
    if mask is None:
        return None
    if isinstance(mask, (tuple, list)) and len(mask) == 4 and all(isinstance(v, (int, float)) for v in mask):
        return imageio.box_mask(tuple(float(v) for v in mask), size)
    return imageio.load_mask(mask, size)


def example_values(found: Op, ctx: OpContext) -> dict[str, Any]:
    """Keyword values for ``found.run(ctx, **values)`` from its first example.

    Image file names are relative to :data:`EXAMPLES_DIR`; ``<input>_mask`` entries give
    masks (boxes or files) paired in order with the images. Other inputs are passed
    as declared and parsed by the op (missing ones take their defaults).
    """
    if not found.examples:
        raise ValueError(f"op {found.name!r} declares no example")
    example = found.examples[0]
    values: dict[str, Any] = {}
    for item in found.inputs:
        value = example.get(item.name)
        if not isinstance(item, ImageInput):
            if value is not None:
                values[item.name] = value
            continue
        if value is None:
            continue
        files = list(value) if isinstance(value, (list, tuple)) else [value]
        masks = example.get(f"{item.name}_mask")
        masks = list(masks) if item.count > 1 and masks is not None else [masks]
        pictures: list[Picture] = []
        for i, name in enumerate(files):
            path = Path(name) if Path(name).is_absolute() else EXAMPLES_DIR / name
            mask = masks[i] if i < len(masks) else None
            pictures.append(ctx.picture(path, example_mask(mask, ctx.size)))
        values[item.name] = pictures if item.count > 1 else pictures[0]
    return values
