"""style_mix: take some pyramid levels from a second image."""

from __future__ import annotations

from smapgan.latent import editing
from smapgan.ops import ChoiceInput, ImageInput, ImageOutput, OpContext, Picture, op


@op(
    name="style_mix",
    title="Style mix",
    description=(
        "Combine two images level by level in the w+ pyramid: 'coarse' keeps the first image's two "
        "coarsest levels (layout) and takes every finer level (texture, colour) from the second; "
        "'fine' takes only the two coarsest levels from the second (the release's two modes)."
    ),
    inputs=[
        ImageInput("content", label="First image"),
        ImageInput("style", label="Second image"),
        ChoiceInput("mix", choices=("coarse", "fine"), default="coarse"),
    ],
    outputs=[ImageOutput("image")],
    order=70,
    examples=[{"content": "grinning.png", "style": "panda_face.png", "mix": "coarse"}],
)
def style_mix(ctx: OpContext, content: Picture, style: Picture, mix: str) -> dict:
    base = ctx.encode(content)
    pyramid = ctx.pyramid(base)
    levels = range(2, len(pyramid)) if mix == "coarse" else range(0, 2)
    mixed = editing.style_mix(pyramid, ctx.pyramid(ctx.encode(style)), list(levels))
    return {"image": ctx.render(mixed, base=base)}
