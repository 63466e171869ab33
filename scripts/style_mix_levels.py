"""Which pyramid levels carry the layout and which the colours: the measure behind Style mix's modes.

    python scripts/style_mix_levels.py --model smapgan/assets/default_model [--release-layout]

Bundled model: for pairs whose silhouettes differ (a round smiley and an animal head), in both
orders, the second image gives one group of pyramid levels (by resolution) and the first the
rest. For each group: how much the result's silhouette (its non-white pixels, holes filled)
overlaps each image's (intersection over union), and whose face colour the result has.

``--release-layout``: the release's 256 px, 8x8 layout with random weights. Random weights draw
no faces, so there is no silhouette to measure; what they can show is *where in frequency*
each level acts: how much of the change from swapping a level group is coarse (it survives a
16x16 average) rather than fine detail.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from typing import Sequence

import torch
import torch.nn.functional as F

SMILEYS = ("grinning.png", "slightly_smiling_face.png", "neutral_face.png")
ANIMALS = ("panda_face.png", "cat.png", "bear.png", "dog.png")


def silhouette(image: torch.Tensor, threshold: float = 0.25) -> torch.Tensor:
    """The image's non-white region (1,H,W bool) with its holes filled (a white-faced panda is its head)."""
    from scipy.ndimage import binary_fill_holes

    ink = (1 - image.clamp(-1, 1)).amax(1)[0] > threshold
    return torch.from_numpy(binary_fill_holes(ink.numpy()))


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a & b).sum()) / max(1, int((a | b).sum()))


def side_taken(result: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> float:
    """Where the two silhouettes differ (ears, chin, corners): the fraction where the result's follows the first's."""
    differ = first ^ second
    return float((result[differ] == first[differ]).float().mean()) if differ.any() else 0.5


def face_colour(image: torch.Tensor) -> torch.Tensor:
    """Mean colour (3,) of the non-white pixels."""
    mask = silhouette(image)
    return image.clamp(-1, 1)[0][:, mask].mean(1)


def groups(resolutions: Sequence[int]) -> dict[str, list[int]]:
    """Level groups by resolution: each resolution alone and every contiguous run of them."""
    sides = sorted(set(resolutions))
    found = {}
    for i, j in itertools.combinations(range(len(sides) + 1), 2):
        chosen = sides[i:j]
        if len(chosen) < len(sides):
            found["+".join(map(str, chosen))] = [k for k, r in enumerate(resolutions) if r in chosen]
    return found


def bundled(model_dir: str) -> None:
    from smapgan import StyleMapGAN
    from smapgan.intake import images as imageio
    from smapgan.ops.examples import EXAMPLES_DIR

    model = StyleMapGAN.from_pretrained(model_dir)
    load = lambda name: imageio.image_to_tensor(imageio.load_image(EXAMPLES_DIR / name, model.config.size))  # noqa: E731
    pairs = [(s, a) for s in SMILEYS for a in ANIMALS]
    pairs += [(a, s) for s, a in pairs]
    with torch.inference_mode():
        pyramids = {n: model.expand(model.encode(load(n))) for n in {*SMILEYS, *ANIMALS}}
        recon = {n: model.synthesize(p) for n, p in pyramids.items()}
    resolutions = [level.shape[-1] for level in next(iter(pyramids.values()))]
    print(f"levels by resolution: {resolutions}; {len(pairs)} ordered pairs (smiley, animal) and (animal, smiley)")
    print("second gives | silhouette IoU with first / second | where they differ, follows the first | "
          "IoU nearer the first's (pairs) | colour nearer the second's (pairs)")
    for name, chosen in groups(resolutions).items():
        first_iou, second_iou, nearer_first, colour_second, follows = [], [], 0, 0, []
        for first, second in pairs:
            mixed = [pyramids[second][i] if i in chosen else level for i, level in enumerate(pyramids[first])]
            with torch.inference_mode():
                result = model.synthesize(mixed)
            shape = silhouette(result)
            a, b = iou(shape, silhouette(recon[first])), iou(shape, silhouette(recon[second]))
            follows.append(side_taken(shape, silhouette(recon[first]), silhouette(recon[second])))
            first_iou.append(a)
            second_iou.append(b)
            nearer_first += a > b
            colour = face_colour(result)
            colour_second += (colour - face_colour(recon[second])).norm() < (colour - face_colour(recon[first])).norm()
        print(f"{name:>12} | {sum(first_iou) / len(pairs):.2f} / {sum(second_iou) / len(pairs):.2f} | "
              f"{sum(follows) / len(pairs):.0%} | {nearer_first}/{len(pairs)} | {colour_second}/{len(pairs)}")


def release_layout() -> None:
    from smapgan.networks.config import StyleMapGANConfig
    from smapgan.networks.generator import Generator

    torch.manual_seed(0)
    config = StyleMapGANConfig(size=256, latent_spatial_size=8, latent_channel_size=64)
    generator = Generator(config).eval()
    decoder = generator.decoder
    a, b = torch.randn(2, 64, 8, 8).chunk(2)
    with torch.inference_mode():
        pa, pb = decoder.expand(a), decoder.expand(b)
        base = decoder.synthesize(pa)
        resolutions = [level.shape[-1] for level in pa]
        print(f"release layout, random weights: levels by resolution {resolutions}")
        print("second gives | share of the change that survives a 16x16 average (coarse) | change RMS")
        for name, chosen in groups(resolutions).items():
            if "+" in name:
                continue
            mixed = decoder.synthesize([pb[i] if i in chosen else level for i, level in enumerate(pa)])
            change = mixed - base
            coarse = F.interpolate(F.adaptive_avg_pool2d(change, 16), size=change.shape[-1], mode="nearest")
            print(f"{name:>12} | {float(coarse.pow(2).sum() / change.pow(2).sum()):.2f} | "
                  f"{float(change.pow(2).mean().sqrt()):.3f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model folder (default: the bundled model)")
    parser.add_argument("--release-layout", action="store_true", help="also the release's 256/8x8 layout, random weights")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    from smapgan import DEFAULT_MODEL

    bundled(args.model or str(DEFAULT_MODEL))
    if args.release_layout:
        release_layout()
    return 0


if __name__ == "__main__":
    sys.exit(main())
