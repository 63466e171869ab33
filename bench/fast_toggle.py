"""Is the app's "fast" renderer mode faster on a given model? Times one op through the app's path.

``python bench/fast_toggle.py [--model DIR] [--size 256]``: a local transplant of two example
images, exact vs fast, each image encoded once (as in the app), median of ``--rounds`` edits.
``--size N`` uses a random-weight release-layout model of that size instead of a model folder.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

EXAMPLES = Path(__file__).resolve().parent.parent / "smapgan" / "assets" / "examples"


def build_model(args: argparse.Namespace):
    from smapgan import StyleMapGAN, StyleMapGANConfig
    from smapgan.defaults import default_model_path

    if args.size:
        config = StyleMapGANConfig(size=args.size, latent_spatial_size=8)
        torch.manual_seed(0)
        return StyleMapGAN(config, with_discriminator=False).eval()
    return StyleMapGAN.from_pretrained(args.model or default_model_path())


def main() -> None:
    from smapgan.app.builder import default_renderer
    from smapgan.ops import OpContext, discover

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--size", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = build_model(args)
    op = discover(paths=[])["local_transplant"]
    base = default_renderer(model)
    size = model.config.size
    mask = torch.zeros(1, 1, size, size)
    mask[..., size // 8 : size // 2, size // 8 : size - size // 8] = 1
    print(f"model {size} px, {model.config.latent_spatial_size}x{model.config.latent_spatial_size} stylemap, "
          f"{args.threads} threads, torch {torch.__version__}")
    for mode in ("exact", "fast"):
        ctx = OpContext(model, base.with_mode(mode))
        original = ctx.picture(EXAMPLES / "neutral_face.png")
        reference = ctx.picture(EXAMPLES / "heart_eyes.png")
        from smapgan.ops.spec import Picture

        reference = Picture(reference.image, mask, reference.key)
        times = []
        for i in range(args.rounds + 1):
            start = time.perf_counter()
            op.run(ctx, original=original, references=[reference], strength=1.0 - 0.01 * i)
            times.append(time.perf_counter() - start)
        print(f"{mode:5s}: first edit (encodes both) {times[0] * 1000:.1f} ms, "
              f"then median {statistics.median(times[1:]) * 1000:.1f} ms per edit")


if __name__ == "__main__":
    main()
