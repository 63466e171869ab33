"""random: generate an image from noise, with truncation."""

from __future__ import annotations

import torch

from smapgan.latent import editing
from smapgan.ops import ImageOutput, NumberInput, OpContext, SliderInput, op


@op(
    name="random",
    title="Random",
    description=(
        "Sample z ~ N(0, I), map it to a stylemap and truncate it toward the average stylemap: "
        "mean + psi * (w - mean). psi 1 is the raw sample, smaller values are tamer."
    ),
    inputs=[
        NumberInput("seed", default=0, integer=True),
        SliderInput("truncation", minimum=0.0, maximum=1.0, default=0.7, step=0.05, info="psi"),
    ],
    outputs=[ImageOutput("image")],
    order=60,
    examples=[{"seed": 3, "truncation": 0.7}],
)
def random(ctx: OpContext, seed: int, truncation: float) -> dict:
    generator = torch.Generator().manual_seed(int(seed) % 2**63)
    z = torch.randn(1, ctx.model.config.latent_channel_size, generator=generator).to(ctx.model.device)
    with torch.inference_mode():
        stylemap = ctx.model.map(z)
    if truncation != 1.0:
        stylemap = editing.truncate(stylemap, ctx.mean_stylemap().to(stylemap), truncation)
    return {"image": ctx.render(ctx.expand(stylemap, base=None), base=None)}
