"""reconstruct: encode an image to its stylemap and decode it back."""

from __future__ import annotations

from smapgan.latent.metrics import psnr_from_mse
from smapgan.ops import ImageInput, ImageOutput, NumbersOutput, OpContext, Picture, op


@op(
    name="reconstruct",
    title="Reconstruct",
    description=(
        "Encode the image into its stylemap and decode it again: how well the model can represent it. "
        "MSE is on pixel values in [-1, 1] (the paper's convention); PSNR in dB on [0, 1]."
    ),
    inputs=[ImageInput("original", label="Image")],
    outputs=[ImageOutput("reconstruction"), NumbersOutput("metrics")],
    order=10,
    examples=[{"original": "heart_eyes.png"}],
)
def reconstruct(ctx: OpContext, original: Picture) -> dict:
    encoded = ctx.encode(original)
    image = ctx.render(encoded, base=encoded)
    mse = float(((image.clamp(-1, 1) - original.image.to(image)) ** 2).mean())
    return {"reconstruction": image, "metrics": {"mse": mse, "psnr_db": psnr_from_mse(mse)}}
