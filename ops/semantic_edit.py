"""semantic_edit: move along a learned attribute direction, globally or inside a mask."""

from __future__ import annotations

from smapgan import StyleMapGAN
from smapgan.latent import editing
from smapgan.ops import ChoiceInput, ImageInput, ImageOutput, OpContext, OpError, Picture, SliderInput, op


def _directions(model: StyleMapGAN) -> list[str]:
    """Labelled directions by name, then the unlabelled SeFa ones (sefa_0, sefa_1, ...) by strength."""

    def key(name: str) -> tuple[int, int, str]:
        head, _, index = name.rpartition("_")
        return (1, int(index), "") if head == "sefa" and index.isdigit() else (0, 0, name)

    return sorted(model.directions, key=key)


@op(
    name="semantic_edit",
    title="Semantic edit",
    description=(
        "Add strength x a direction stored with the model (learned by `smapgan direction`) to the stylemap. "
        "Directions have unit norm per stylemap cell, so strength is the distance each cell moves. "
        "Brush on the image to limit the edit to that region; no strokes edits everywhere."
    ),
    inputs=[
        ImageInput("original", mask="optional", label="Image (brush to edit locally)"),
        ChoiceInput("direction", choices=_directions, info="directions stored with the model"),
        # +-1.5: where the bundled model's directions start to smear colour (its card shows 2 for comparison)
        SliderInput(
            "strength", minimum=-1.5, maximum=1.5, default=1.0, step=0.05,
            info="0: unchanged. Capped at ±1.5: beyond it the bundled model's directions show colour artifacts",
        ),
    ],
    outputs=[ImageOutput("image")],
    order=50,
    examples=[{"original": "slightly_smiling_face.png", "direction": "open_mouth", "strength": 1.5}],
)
def semantic_edit(ctx: OpContext, original: Picture, direction: str, strength: float) -> dict:
    if direction not in ctx.model.directions:
        raise OpError(f"the model has no direction {direction!r}; learn one with `smapgan direction`")
    base = ctx.encode(original)
    if strength == 0:
        return {"image": ctx.render(base, base=base)}
    mask = original.mask if original.has_mask else None
    edited = editing.apply_direction(base.stylemap, ctx.model.directions[direction], strength, mask)
    return {"image": ctx.render(ctx.expand(edited, base=base), base=base)}
