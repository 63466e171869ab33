"""unaligned_transplant: move a region of the reference to chosen places of the original."""

from __future__ import annotations

import torch

from smapgan.latent import editing
from smapgan.intake import images as imageio
from smapgan.ops import (
    BoxInput,
    ChoiceInput,
    ImageInput,
    ImageOutput,
    OpContext,
    OpError,
    Picture,
    PointsInput,
    SliderInput,
    op,
)


def region_center(mask: torch.Tensor) -> tuple[float, float]:
    """Center (y, x) in pixels of the bounding box of a (1,1,S,S) mask."""
    ys, xs = torch.nonzero(mask[0, 0] > 0, as_tuple=True)
    return (float(ys.min() + ys.max() + 1) / 2, float(xs.min() + xs.max() + 1) / 2)


def placement_offset(mask: torch.Tensor, point: tuple[float, float], size: int, cell: int) -> tuple[int, int]:
    """Pixel offset (dy, dx) moving the region's center to ``point`` (x, y fractions), in whole cells.

    Offsets snap to whole stylemap cells so that every pyramid level moves by the
    same amount (the paper moves rectangles of stylemap cells).
    """
    cy, cx = region_center(mask)
    dy, dx = point[1] * size - cy, point[0] * size - cx
    return int(round(dy / cell)) * cell, int(round(dx / cell)) * cell


REFERENCE = ImageInput("reference", mask="optional", label="Reference (brush the region)")


@op(
    name="unaligned_transplant",
    title="Unaligned transplant",
    description=(
        "Select a region on the reference (brush, or a box x0,y0,x1,y1) and click where its center should go "
        "on the original (several places allowed; none = the same place). The reference's stylemap cells are "
        "moved there whole, so size and pose adapt to the surroundings (paper, Fig. 8)."
    ),
    inputs=[
        ImageInput("original", label="Original (click to place)"),
        REFERENCE,
        BoxInput("box", on="reference", info="optional rectangle x0,y0,x1,y1 in [0,1], added to the brushed region"),
        PointsInput("placements", on="original", info="centers x,y in [0,1]; empty: the region stays in place"),
        ChoiceInput("space", choices=("w+", "w"), default="w+"),
        SliderInput("strength", minimum=0.0, maximum=1.0, default=1.0, step=0.05),
        SliderInput(
            "feather", minimum=0, maximum=16, default=0, step=1, integer=True,
            info="soft edge in pixels: 0 = whole cells; > 0 blurs the region and blends each level by the "
            "fraction of it covered",
        ),
    ],
    outputs=[ImageOutput("image")],
    order=40,
    examples=[
        {
            "original": "neutral_face.png",
            "reference": "sunglasses.png",
            "box": "0.1,0.2,0.9,0.55",
            "placements": "0.5,0.45",
        }
    ],
)
def unaligned_transplant(
    ctx: OpContext,
    original: Picture,
    reference: Picture,
    box: tuple[float, float, float, float] | None,
    placements: list[tuple[float, float]],
    space: str,
    strength: float,
    feather: int = 0,
) -> dict:
    size = ctx.size
    region = reference.mask if reference.mask is not None else torch.zeros(1, 1, size, size)
    if box is not None:
        region = torch.maximum(region, imageio.box_mask(box, size))
    if not bool(region.any()):
        raise OpError(
            "brush a region on the reference first (or give a box)", REFERENCE,
            cli="{field} needs a region: give a --mask FILE for it (non-black pixels select), or --set box=x0,y0,x1,y1",
        )
    cell = size // ctx.model.config.latent_spatial_size
    if placements:
        offsets = [placement_offset(region, p, size, cell) for p in placements]
    else:
        offsets = [(0, 0)]
    pooling = "max"
    if feather > 0:  # soft masks: the blurred region, pooled to each level as a fractional weight
        region, pooling = editing.feather(region, feather), "avg"
    base, ref = ctx.encode(original), ctx.encode(reference)
    if space == "w+":
        edited = ctx.pyramid(base)
        for offset in offsets:
            edited = editing.transplant_pyramid(edited, ctx.pyramid(ref), region, offset, size, pooling, strength)
    else:
        stylemap = base.stylemap
        for offset in offsets:
            stylemap = editing.transplant(stylemap, ref.stylemap, region, offset, size, pooling, strength)
        edited = ctx.expand(stylemap, base=base)
    return {"image": ctx.render(edited, base=base)}
