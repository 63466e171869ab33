"""random: generate an image from the model's prior (or its mapping network), with truncation."""

from __future__ import annotations

import torch

from smapgan import StyleMapGAN
from smapgan.ops import ChoiceInput, ImageOutput, NumberInput, OpContext, OpError, SliderInput, op

PRIOR = "prior"
MAPPING = "mapping"
# Best of 5 by StyleMapGAN.candidate_score (cycle error over the picture's detail): the bundled model's
# clean faces among the card's 32 samples, counted strictly alike, 18 for best of 4 by cycle error alone,
# 20 for best of 4 by this score, 22 for best of 5 (6: 24, 8: 27, but past ~0.5 s on 2 CPU threads).
CANDIDATES = 5
# Then one round of projection onto the encoder's codes (StyleMapGAN.project): fewer mottled and smeared features
# (the model card counts both, and compares the samplers tried).
PROJECT = 1


def _sources(model: StyleMapGAN) -> list[str]:
    """The prior first (the default) when the model has one; the mapping network always."""
    return [PRIOR, MAPPING] if model.prior is not None else [MAPPING]


@op(
    name="random",
    title="Random",
    description=(
        "Draw a new stylemap. 'prior' (the default when the model has one) samples the density fitted to "
        "the encoder's stylemaps of real images (`smapgan prior fit`), truncated toward the mean of the "
        "face type drawn; 'mapping' maps z ~ N(0, I) through the mapping network, truncated toward the "
        "average stylemap: mean + psi * (w - mean). psi 1 is the raw sample, smaller values are tamer. "
        "'candidates' draws several and keeps the one the encoder maps back closest to its draw, blank "
        "faces penalised (clean faces more often); 'project' then decodes and re-encodes it that many times, moving it onto the "
        "codes the encoder gives real pictures (cleaner features)."
    ),
    inputs=[
        NumberInput("seed", default=0, integer=True),
        SliderInput("truncation", minimum=0.0, maximum=1.0, default=0.7, step=0.05, info="psi"),
        ChoiceInput("source", choices=_sources, info="prior: the encoded prior (default when the model has one)"),
        SliderInput("candidates", minimum=1, maximum=8, default=CANDIDATES, step=1, integer=True,
                    info="prior: draws per image, the most self-consistent kept; each costs a decode and an encode "
                         "(on a 2-core CPU about 0.1 s for the bundled model, seconds for a 256 px release model)"),
        SliderInput("project", minimum=0, maximum=3, default=PROJECT, step=1, integer=True,
                    info="prior: rounds of decode and encode that move the sample onto the encoder's codes; "
                         "each costs as much as a candidate (with several candidates, the first round comes with the pick)"),
    ],
    outputs=[ImageOutput("image")],
    order=60,
    examples=[{"seed": 19, "truncation": 0.7}],
)
def random(ctx: OpContext, seed: int, truncation: float, source: str, candidates: int, project: int) -> dict:
    if source == PRIOR and ctx.model.prior is None:
        raise OpError("this model has no prior; choose source 'mapping', or fit one with `smapgan prior fit`")
    generator = torch.Generator().manual_seed(int(seed) % 2**63)
    mean = ctx.mean_stylemap() if source == MAPPING and truncation != 1.0 else None
    with torch.inference_mode():
        # The mapping network's draws are not faces to pick among (0 clean of 32 either way) and picking
        # cut their diversity to 0.13x: candidates (and the projection after them) are for the prior.
        stylemap = ctx.model.sample(1, truncation, source=source, generator=generator, mean_stylemap=mean,
                                    candidates=candidates if source == PRIOR else 1,
                                    project=project if source == PRIOR else 0)
    return {"image": ctx.render(ctx.expand(stylemap, base=None), base=None)}
