"""lerp: interpolate between two images' stylemaps."""

from __future__ import annotations

from typing import Any, Iterator

import torch

from smapgan.latent import editing
from smapgan.ops import FramesOutput, ImageInput, ImageOutput, OpContext, Picture, SliderInput, growing, op


@op(
    name="lerp",
    title="Interpolate",
    description=(
        "Linear interpolation (1 - t) * w1 + t * w2 of the two images' stylemaps: the image at the "
        "slider's position, and the whole path as frames and an animated GIF."
    ),
    inputs=[
        ImageInput("first", label="First image"),
        ImageInput("second", label="Second image"),
        SliderInput("frames", minimum=2, maximum=32, default=8, step=1, integer=True, info="frames along the path"),
        SliderInput(
            "position", minimum=0.0, maximum=1.0, default=0.5, step=0.05, previews="animation",
            info="t of the single image (moving it previews the nearest rendered frame; Run renders t exactly)",
        ),
    ],
    outputs=[ImageOutput("image"), FramesOutput("animation")],
    order=20,
    examples=[{"first": "neutral_face.png", "second": "heart_eyes.png", "frames": 8, "position": 0.5}],
)
def lerp(ctx: OpContext, first: Picture, second: Picture, frames: int, position: float) -> Iterator[dict[str, Any]]:
    """Yields the image at ``position`` first, then the path as its frames are rendered."""
    start, end = ctx.encode(first), ctx.encode(second)

    def at(t: float) -> torch.Tensor:
        return ctx.render(ctx.expand(editing.lerp(start.stylemap, end.stylemap, t), base=start), base=start)

    yield {"image": at(position)}

    def path() -> Iterator[torch.Tensor]:
        for i, t in enumerate(torch.linspace(0, 1, frames).tolist()):
            frame = at(0.0 if i == 0 else 1.0 if i == frames - 1 else t)  # exact endpoints
            ctx.report((i + 1) / frames, "interpolating")
            yield frame

    yield from growing("animation", path())
