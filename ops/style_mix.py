"""style_mix: one image's layout in another's colours, by swapping pyramid levels."""

from __future__ import annotations

from smapgan.latent import editing
from smapgan.ops import ChoiceInput, ImageInput, ImageOutput, OpContext, Picture, op


@op(
    name="style_mix",
    title="Style mix",
    description=(
        "Combine two images level by level in the w+ pyramid. 'coarse' takes the second image's coarse "
        "levels: the first image's eyes and mouth in the second's colours. 'fine' takes its finer levels: the "
        "second image's eyes and mouth, often in its colours too. Neither mode carries the head's outline: on "
        "the bundled model a round smiley mixed with a cat or a dog keeps a round silhouette in both modes and "
        "either order ('fine' may draw the animal's ears inside it; scripts/style_mix_levels.py, "
        "tests/test_style_mix.py)."
    ),
    inputs=[
        ImageInput("content", label="First image"),
        ImageInput("style", label="Second image"),
        ChoiceInput("mix", choices=("coarse", "fine"), default="coarse",
                    info="coarse: first's eyes and mouth, second's colours; fine: second's eyes and mouth"),
    ],
    outputs=[ImageOutput("image")],
    order=70,
    examples=[{"content": "grinning.png", "style": "panda_face.png", "mix": "coarse"}],
)
def style_mix(ctx: OpContext, content: Picture, style: Picture, mix: str) -> dict:
    base = ctx.encode(content)
    pyramid = ctx.pyramid(base)
    levels = editing.style_mix_levels([level.shape[-1] for level in pyramid], mix)
    mixed = editing.style_mix(pyramid, ctx.pyramid(ctx.encode(style)), levels)
    return {"image": ctx.render(mixed, base=base)}
