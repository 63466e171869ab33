"""local_transplant: paste brushed regions of reference images onto the original (aligned)."""

from __future__ import annotations

from typing import Any, Iterator

from torch import Tensor

from smapgan.latent import editing
from smapgan.ops import (
    ChoiceInput, FramesOutput, ImageInput, ImageOutput, OpContext, Picture, SliderInput, growing, op,
)

# Mask pooling: "max" is the paper's (a cell is taken where any pixel of it is brushed);
# "demo" is the official demo's (average-pooled, thresholded at 0.5).
POOLING = {"max": ("max", None), "demo": ("avg", 0.5)}


@op(
    name="local_transplant",
    title="Local transplant",
    description=(
        "Brush a region on each reference: its stylemap cells replace the original's there. "
        "Blend in w (the stylemap) or w+ (every pyramid level, the paper's CelebA-HQ setting). "
        "Strength 0 keeps the original; frames > 0 also renders the path from the original to the edit; "
        "feather softens the region's edge."
    ),
    inputs=[
        ImageInput("original", label="Original"),
        ImageInput("references", mask="required", count=3, label="Reference (brush the region to take)"),
        ChoiceInput("space", choices=("w+", "w"), default="w+", info="w+: blend every pyramid level; w: the stylemap"),
        SliderInput("strength", minimum=0.0, maximum=1.0, default=1.0, step=0.05),
        ChoiceInput("pooling", choices=tuple(POOLING), default="max", info="max: paper; demo: average >= 0.5"),
        SliderInput("frames", minimum=0, maximum=32, default=0, step=1, integer=True, info="0: no animation"),
        SliderInput(
            "feather", minimum=0, maximum=16, default=0, step=1, integer=True,
            info="soft edge in pixels: 0 = whole cells (as pooled above); > 0 blurs the mask and blends each "
            "level by the fraction of it covered (average pooling)",
        ),
    ],
    outputs=[ImageOutput("image"), FramesOutput("animation")],
    order=30,
    examples=[
        {
            "original": "neutral_face.png",
            "references": ["heart_eyes.png"],
            "references_mask": [(0.08, 0.16, 0.92, 0.56)],
            "frames": 8,
        }
    ],
)
def local_transplant(
    ctx: OpContext,
    original: Picture,
    references: list[Picture],
    space: str,
    strength: float,
    pooling: str,
    frames: int,
    feather: int = 0,
) -> Iterator[dict[str, Any]]:
    """Yields the edited image first (where the caller asks for previews, its local render before the exact
    one), then the animation as its frames are rendered: the app shows the edit at once instead of after
    the last frame."""
    pool, threshold = POOLING[pooling]
    if feather > 0:  # soft masks: the blurred brush, pooled to each level as a fractional weight
        pool, threshold = "avg", None
    base = ctx.encode(original)
    ts = [1.0 if frames == 1 else i / (frames - 1) for i in range(frames)]
    if space == "w+":
        edited = ctx.pyramid(base)
        for ref in references:
            weight = editing.feather(ref.mask, feather)  # itself when 0: whole cells
            edited = editing.blend_pyramid(edited, ctx.pyramid(ctx.encode(ref)), weight, pool, strength, threshold)
        for image in ctx.render_previewed(edited, base=base):  # the app's page: a local preview, then exact
            yield {"image": image}
        # The demo's path: the blend weight grows from 0 to the mask; its last frame is the image.
        yield from growing("animation", ctx.iter_path(base, edited, ts))
        return
    stylemap = base.stylemap
    for ref in references:
        weight = editing.feather(ref.mask, feather)  # itself when 0: whole cells
        stylemap = editing.blend_stylemap(stylemap, ctx.encode(ref).stylemap, weight, pool, strength, threshold)
    for image in ctx.render_previewed(ctx.expand(stylemap, base=base), base=base):
        yield {"image": image}

    def path() -> Iterator[Tensor]:
        for i, t in enumerate(ts):
            lerped = editing.lerp(base.stylemap, stylemap, t)
            frame = image if t == 1.0 else ctx.render(ctx.expand(lerped, base=base), base=base)
            ctx.report((i + 1) / frames, "rendering frames")
            yield frame

    yield from growing("animation", path())
