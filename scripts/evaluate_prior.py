"""Measure a model's random generation: the encoded prior against the mapping network; write the card's grids.

    python scripts/evaluate_prior.py --model smapgan/assets/default_model --data /work/data/emoji

For each source, 32 samples (seed i for sample i, truncation 0.7, as the Random op draws them),
as one plain draw and as the Random op's default best of ``candidates`` (``StyleMapGAN.sample``):

* memorisation: the fraction of samples closer (pixel MSE) to their nearest training image
  than the median held-out image is to its nearest training image (the issue's measure); the
  same with every image first averaged down to 16x16 pixels, so that a smooth sample gains
  nothing from missing the fine detail every real emoji has; and the fraction closer than the
  training images' own reconstruction error (a copy would be);
* diversity: mean pixel MSE between pairs of samples over the same for 32 training images;
* realism: the model's discriminator logit, averaged (training images score higher).

``--compare`` also fits the candidate densities (one Gaussian, mixtures, a per-cell
Gaussian) and reports the same figures plus held-out log-likelihood, which chose the
estimator. ``--grids DIR`` writes ``samples_prior.png`` and ``samples_mapping.png`` (what the op
draws by default: best of ``candidates`` from the prior, one draw from the mapping network),
``samples_prior_single.png`` (one draw per seed from the prior) and ``style_mix.png``. ``--json`` writes everything for the model card.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image

SEEDS = 32
TRUNCATION = 0.7
SCALE = 2
BLURRED_SIDE = 16  # pixels per side for the blurred memorisation measure


def op_default(name: str) -> int:
    """The Random op's default ``candidates`` or ``project``: the sampler the app ships."""
    from smapgan.ops import discover

    return int(next(i.default for i in discover(paths=[])["random"].inputs if i.name == name))


def blurred(images: torch.Tensor) -> torch.Tensor:
    """Images averaged down to BLURRED_SIDE pixels a side: detail finer than a sample's is gone from both."""
    return torch.nn.functional.adaptive_avg_pool2d(images, BLURRED_SIDE)


def read_split(data: Path, split: str) -> list[Path]:
    rows = [json.loads(line) for line in (data / "metadata.jsonl").read_text().splitlines() if line.strip()]
    return [data / r["file"] for r in rows if r["split"] == split]


def load_images(files: Sequence[Path], size: int) -> torch.Tensor:
    from smapgan.intake import images as imageio

    return torch.cat([imageio.image_to_tensor(imageio.load_image(f, size)) for f in files])


def decode(model: Any, stylemaps: torch.Tensor, batch: int = 16) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([model.decode(stylemaps[i:i + batch]) for i in range(0, len(stylemaps), batch)]).clamp(-1, 1)


def nearest_mse(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Each image's pixel MSE to its nearest reference image."""
    a, b = images.flatten(1), reference.flatten(1)
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T
    return (d2 / a.shape[1]).min(1).values


def pairwise_mse(images: torch.Tensor) -> float:
    a = images.flatten(1)
    d2 = ((a * a).sum(1)[:, None] + (a * a).sum(1)[None] - 2 * a @ a.T) / a.shape[1]
    return float(d2[~torch.eye(len(a), dtype=torch.bool)].mean())


def seeded_samples(
    model: Any, source: str, truncation: float = TRUNCATION, seeds: int = SEEDS, candidates: int = 1, project: int = 0
) -> torch.Tensor:
    """Sample i from seed i, as the Random op draws it."""
    mean = model.mean_stylemap() if source == "mapping" else None
    return torch.cat([
        model.sample(1, truncation, source=source, generator=torch.Generator().manual_seed(s), mean_stylemap=mean,
                     candidates=candidates, project=project)
        for s in range(seeds)
    ])


def encode(model: Any, images: torch.Tensor, batch: int = 16) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([model.encode(images[i:i + batch]) for i in range(0, len(images), batch)])


def nearest_code(codes: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Each stylemap's distance (RMS per value) to its nearest reference stylemap."""
    return torch.cdist(codes.flatten(1), reference.flatten(1)).min(1).values / codes[0].numel() ** 0.5


class Reference:
    """The training and held-out images the measures compare against.

    Pixel MSE favours blur, and the model's images are blurrier than the training images,
    so the issue's threshold (the held-out images' median nearest-training MSE) makes any
    smooth face look like a copy. Two fairer references sit beside it: the held-out images
    *as the model redraws them* (``decode(encode(x))``, as blurred as a sample), and the
    same comparison in the encoder's space (a sample re-encoded against the training codes).
    """

    def __init__(self, model: Any, data: Path) -> None:
        self.train = load_images(read_split(data, "train"), model.config.size)
        val = load_images(read_split(data, "val"), model.config.size)
        self.val_median = float(nearest_mse(val, self.train).median())
        self.val_blurred_median = float(nearest_mse(blurred(val), blurred(self.train)).median())
        self.train_codes = encode(model, self.train)
        val_codes = encode(model, val)
        self.val_redrawn_median = float(nearest_mse(decode(model, val_codes), self.train).median())
        self.val_code_median = float(nearest_code(val_codes, self.train_codes).median())
        with torch.inference_mode():
            picked = self.train[torch.randperm(len(self.train), generator=torch.Generator().manual_seed(0))[:SEEDS]]
            self.train_diversity = pairwise_mse(picked)
            recon = torch.cat([model.decode(model.encode(picked[i:i + 16])) for i in range(0, SEEDS, 16)]).clamp(-1, 1)
            self.recon_mse = float((recon - picked).pow(2).flatten(1).mean(1).median())
            self.train_d = float(model.discriminator(picked).mean()) if model.discriminator is not None else None

    def measure(self, model: Any, images: torch.Tensor) -> dict[str, float]:
        near = nearest_mse(images, self.train)
        near_blurred = nearest_mse(blurred(images), blurred(self.train))
        near_code = nearest_code(encode(model, images), self.train_codes)
        out = {
            "closer_than_held_out_median": float((near < self.val_median).float().mean()),
            "closer_blurred_than_held_out_median": float((near_blurred < self.val_blurred_median).float().mean()),
            "closer_than_redrawn_held_out_median": float((near < self.val_redrawn_median).float().mean()),
            "closer_in_code_than_held_out_median": float((near_code < self.val_code_median).float().mean()),
            "closer_than_reconstruction_error": float((near < self.recon_mse).float().mean()),
            "nearest_training_mse_median": float(near.median()),
            "nearest_training_mse_min": float(near.min()),
            "diversity_vs_training": pairwise_mse(images) / self.train_diversity,
        }
        if model.discriminator is not None:
            with torch.inference_mode():
                out["discriminator"] = float(model.discriminator(images).mean())
        return out


def grid(images: torch.Tensor, columns: int = 8) -> Image.Image:
    from smapgan.intake import images as imageio

    side = images.shape[-1] * SCALE
    rows = (len(images) + columns - 1) // columns
    canvas = Image.new("RGB", (columns * side, rows * side), (255, 255, 255))
    for i, x in enumerate(images):
        canvas.paste(imageio.tensor_to_image(x).resize((side, side), Image.Resampling.NEAREST),
                     ((i % columns) * side, (i // columns) * side))
    return canvas


def palette(image: Image.Image) -> Image.Image:
    """256 colours: the card's grids at a third of their size (the model folder has a size budget)."""
    return image.quantize(256, method=Image.Quantize.MEDIANCUT)


def nearest_pairs(images: torch.Tensor, train: torch.Tensor, count: int = 8) -> Image.Image:
    """The ``count`` samples nearest to a training image (top row) above that training image: copies show."""
    a, b = images.flatten(1), train.flatten(1)
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T
    distance, neighbour = d2.min(1)
    closest = distance.argsort()[:count]
    return grid(torch.cat([images[closest], train[neighbour[closest]]]), columns=count)


STYLE_MIX_PAIRS = (("grinning.png", "panda_face.png"), ("slightly_smiling_face.png", "cat.png"),
                   ("neutral_face.png", "dog.png"), ("grinning.png", "bear.png"), ("cat.png", "grinning.png"))


def style_mix_grid(model: Any) -> Image.Image:
    """Rows: first image, second image, 'coarse', 'fine' (the Style mix op, as the app runs it)."""
    from smapgan.ops import OpContext, discover
    from smapgan.ops.examples import EXAMPLES_DIR

    op, ctx = discover(paths=[])["style_mix"], OpContext(model)
    cells = []
    for first, second in STYLE_MIX_PAIRS:
        a, b = ctx.picture(EXAMPLES_DIR / first), ctx.picture(EXAMPLES_DIR / second)
        cells += [a.image, b.image] + [op.run(ctx, content=a, style=b, mix=mix)["image"] for mix in ("coarse", "fine")]
    return grid(torch.cat(cells), columns=4)


def compare(model: Any, data: Path, reference: Reference) -> dict[str, dict[str, float]]:
    """Fit the candidate densities to the training stylemaps (and mirrors) and measure each."""
    from smapgan.commands.direction import encode_files
    from smapgan.model.prior import StylemapPrior

    codes = encode_files(model, read_split(data, "train"), 32, mirror=True)
    held_out = encode_files(model, read_split(data, "val"), 32, mirror=False)
    results: dict[str, dict[str, float]] = {}
    saved = model.prior
    for name, rank, components in (("gaussian-pca64", 64, 1), ("gaussian-pca256", 256, 1),
                                   ("mixture8-pca64", 64, 8), ("mixture24-pca64", 64, 24)):
        model.prior = StylemapPrior.fit(codes, rank=rank, components=components)
        images = decode(model, seeded_samples(model, "prior"))
        results[name] = reference.measure(model, images)
        results[name]["held_out_log_likelihood_per_dim"] = float(model.prior.log_prob(held_out).mean()) / rank
        print(name, json.dumps(results[name]), flush=True)
    # rejection: 4 draws of the 24-Gaussian mixture per seed, the discriminator's favourite kept
    model.prior = StylemapPrior.fit(codes, rank=64, components=24)
    picked = []
    for s in range(SEEDS):
        draws = model.prior.sample(4, TRUNCATION, torch.Generator().manual_seed(s))
        with torch.inference_mode():
            picked.append(draws[model.discriminator(decode(model, draws)).flatten().argmax()][None])
    results["mixture24-pca64-discriminator-best-of-4"] = reference.measure(model, decode(model, torch.cat(picked)))
    print("mixture24-pca64-discriminator-best-of-4", json.dumps(results["mixture24-pca64-discriminator-best-of-4"]))
    model.prior = saved
    # per cell: every stylemap cell its own C-dimensional Gaussian, cells independent
    cells = codes.permute(2, 3, 0, 1).reshape(-1, len(codes), codes.shape[1])
    mean = cells.mean(1)
    centred = cells - mean[:, None]
    cov = centred.transpose(1, 2) @ centred / (len(codes) - 1) + 1e-4 * torch.eye(codes.shape[1])
    chol = torch.linalg.cholesky(cov)
    side = codes.shape[-1]
    samples = []
    for s in range(SEEDS):
        eps = torch.randn(side * side, codes.shape[1], 1, generator=torch.Generator().manual_seed(s))
        cell = mean + TRUNCATION * (chol @ eps)[..., 0]
        samples.append(cell.reshape(side, side, -1).permute(2, 0, 1)[None])
    results["per-cell-gaussian"] = reference.measure(model, decode(model, torch.cat(samples)))
    print("per-cell-gaussian", json.dumps(results["per-cell-gaussian"]), flush=True)
    return results


def evaluate(model_dir: Path, data: Path, grids: Path | None, with_compare: bool) -> dict[str, Any]:
    from smapgan import StyleMapGAN

    model = StyleMapGAN.from_pretrained(model_dir)
    reference = Reference(model, data)
    figures: dict[str, Any] = {
        "seeds": SEEDS, "truncation": TRUNCATION,
        "held_out_median_nearest_training_mse": reference.val_median,
        "held_out_median_nearest_training_mse_blurred": reference.val_blurred_median,
        "blurred_side": BLURRED_SIDE,
        "candidates": op_default("candidates"),
        "project": op_default("project"),
        "redrawn_held_out_median_nearest_training_mse": reference.val_redrawn_median,
        "held_out_median_nearest_training_code": reference.val_code_median,
        "training_reconstruction_mse_median": reference.recon_mse,
        "training_discriminator": reference.train_d,
        "sources": {},
    }
    if model.prior is not None:
        figures["prior"] = {"components": model.prior.components, "rank": model.prior.rank}
    best_of, rounds = figures["candidates"], figures["project"]
    for source in (["prior"] if model.prior is not None else []) + ["mapping"]:
        for candidates in dict.fromkeys((1, best_of)):
            project = rounds if source == "prior" and candidates == best_of else 0  # the op's default for the prior
            name = source if candidates == 1 else f"{source}, best of {candidates}"
            name += f", projected {project}x" if project else ""
            images = decode(model, seeded_samples(model, source, candidates=candidates, project=project))
            figures["sources"][name] = reference.measure(model, images)
            print(name, json.dumps(figures["sources"][name]), flush=True)
            if grids is None:
                continue
            grids.mkdir(parents=True, exist_ok=True)
            shipped = candidates == (best_of if source == "prior" else 1)  # the op picks among prior draws only
            if shipped:  # the op's default: what a person sees
                palette(grid(images)).save(grids / f"samples_{source}.png", optimize=True)
            if source == "prior" and shipped:
                palette(nearest_pairs(images, reference.train)).save(grids / "nearest_prior.png", optimize=True)
            if source == "prior" and not shipped:
                palette(grid(images)).save(grids / "samples_prior_single.png", optimize=True)
    if grids is not None:
        palette(style_mix_grid(model)).save(grids / "style_mix.png", optimize=True)
    if with_compare:
        figures["compare"] = compare(model, data, reference)
    return figures


def card_section(figures: dict[str, Any]) -> list[str]:
    """The model card's "Random samples" section: both sources' grids and figures, and the estimator comparison."""
    prior, sources = figures.get("prior"), figures["sources"]
    best_of, rounds = figures.get("candidates", 1), figures.get("project", 0)
    shipped = f"best of {best_of}" + (f", projected {rounds}x" if rounds else "")
    lines = ["## Random samples", ""]
    if prior:
        lines += [
            f"`prior.safetensors` is the encoded prior: a mixture of {prior['components']} Gaussians (full "
            f"covariances) in the first {prior['rank']} PCA dimensions of the stylemaps that the encoder gives "
            "the training images and their mirror images (`smapgan prior fit`; Ghosh et al. 2020 fit such "
            "densities to an autoencoder's codes after training). `model.sample(n, truncation)` and the Random "
            "op draw from it; truncation pulls a sample toward the mean of the Gaussian it was drawn from. The "
            "mapping network stays available (`source=\"mapping\"`): trained on few images for a short time, it "
            "lands where the decoder was not taught.",
            "",
            f"The Random op draws {best_of} candidates per image and keeps the one whose picture, encoded again, "
            f"lands nearest its draw (`model.sample(n, truncation, candidates={best_of})`, "
            "`StyleMapGAN.cycle_error`): the encoder knows only real images, so a draw it maps back onto itself is "
            "one both networks agree is a face. A blank face (a plain disc, a blob with only a blush) re-encodes "
            "best of all, so the error is divided by the picture's detail (the luminance variance of its central "
            "half, capped at the value a face with eyes and mouth reaches: `StyleMapGAN.candidate_score`); among "
            "faces with features cycle error alone decides. Best of 4 by the discriminator's logit was tried too "
            f"and gave fewer clean faces. It then moves the kept draw onto the encoder's codes ({rounds} round(s) of "
            f"`w <- E(clamp(G(w)))`, `model.sample(..., project={rounds})`, `StyleMapGAN.project`): a prior draw "
            "lies slightly off the codes the encoder gives real pictures, where the decoder smears and mottles "
            "features, and the round trip lands it on them.",
            "",
            f"{figures['seeds']} samples each (seed i for sample i, truncation {figures['truncation']}): the Random "
            f"op's default ({shipped} from the prior, one draw from the mapping network), and one draw per seed "
            "from the prior:",
            "",
            f"| prior, {shipped} (the op's default) | mapping network, one draw (the op's default) |",
            "|---|---|",
            "| ![samples from the prior](samples_prior.png) | ![samples from the mapping network](samples_mapping.png) |",
            "",
            "![one draw per seed from the prior](samples_prior_single.png)",
            "",
        ]
        counted = figures.get("clean_faces_counted")
        if counted:
            lines += [
                "Clean emoji faces among those 32 (a face a person would accept as an emoji: a clear outline, "
                "eyes and mouth in place, no smears), counted by looking at the grids (where two numbers, the "
                "first counts only faces whose every feature is plain, the second also those with a faint "
                "mouth or a slight smear): "
                + "; ".join(f"{name}: {count} of {figures['seeds']}" for name, count in counted.items())
                + ". The issue's target is 28 of 32. How the op's sampler was chosen, counted alike on the same "
                "seeds (strict count): best of 4 by cycle error alone 18 (3 plain yellow discs and 4 featureless "
                "blobs among the failures), best of 4 by the score above 20, best of 5 22, best of 6 24, best of 8 "
                "27 (with the detail cap at 0.15; but about 0.75 s a sample on 2 CPU threads, where best of 5 takes "
                "about 0.5 s); a second projection round changed no count.",
                "",
            ]
    else:
        lines += [f"{figures['seeds']} samples of the mapping network (truncation {figures['truncation']}):", "",
                  "![samples from the mapping network](samples_mapping.png)", ""]
    lines += [
        "Measured by `scripts/evaluate_prior.py` on those samples. *Memorisation*, four ways, each the fraction "
        "of samples nearer their nearest training image than the median held-out emoji (never trained on) is "
        "to its own, so 50% would be \"as near as a new emoji\" and the issue's target is at most 10%: "
        f"(1) in pixel MSE ({figures['held_out_median_nearest_training_mse']:.3f}: the issue's measure; it "
        "favours smooth images); (2) in pixel MSE with every image first averaged down to "
        f"{figures.get('blurred_side', '?')}x{figures.get('blurred_side', '?')} pixels "
        f"({figures.get('held_out_median_nearest_training_mse_blurred', float('nan')):.3f}), so that a sample "
        "gains nothing from lacking the fine detail real emoji have (LPIPS would be the usual choice, but its "
        "VGG16 weights could not be had offline); (3) against the held-out images as the model redraws them, "
        "`decode(encode(x))`, as blurred as a sample "
        f"({figures.get('redrawn_held_out_median_nearest_training_mse', float('nan')):.3f}); (4) in the "
        "encoder's space (a sample re-encoded, against the training images' stylemaps). What none of them "
        "separates: a sample of a density fitted to the training set lies *among* the training images, where a "
        "new emoji design does not, so all four stay high without any copying. Copies are what the next column "
        "counts: samples nearer a training image than that image's own reconstruction is "
        f"({figures.get('training_reconstruction_mse_median', float('nan')):.3f}); and the nearest pairs are "
        "shown below. *Diversity*: the mean pixel MSE between pairs of samples over the same for 32 training "
        f"images (target at least 0.5x). The discriminator's mean logit (training images: "
        f"{figures['training_discriminator']:.2f}).",
        "",
        "| sampler | (1) pixel MSE | (2) blurred | (3) redrawn held-out | (4) encoder's space | nearer than a "
        "reconstruction | nearest training MSE (median, min) | diversity | discriminator |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, f in sources.items():
        lines.append(
            f"| {name} | {f['closer_than_held_out_median']:.0%} | "
            f"{f.get('closer_blurred_than_held_out_median', float('nan')):.0%} | "
            f"{f.get('closer_than_redrawn_held_out_median', float('nan')):.0%} | "
            f"{f.get('closer_in_code_than_held_out_median', float('nan')):.0%} | "
            f"{f.get('closer_than_reconstruction_error', float('nan')):.0%} | "
            f"{f['nearest_training_mse_median']:.3f}, {f['nearest_training_mse_min']:.3f} | "
            f"{f['diversity_vs_training']:.2f}x | {f.get('discriminator', float('nan')):.2f} |"
        )
    lines += [
        "",
        "The 8 samples of the op's default sampler nearest to a training image (top) above that training "
        "image, to judge copies by eye:",
        "",
        "![the samples nearest to a training image, above it](nearest_prior.png)",
        "",
    ]
    compare = figures.get("compare")
    if compare:
        lines += [
            "How the density was chosen (the same measures, each fitted to the same stylemaps; held-out "
            "log-likelihood of the held-out emoji's stylemaps in the PCA basis, per dimension):",
            "",
            "| density | held-out log-lik / dim | closer than held-out median | diversity | discriminator |",
            "|---|---|---|---|---|",
        ]
        for name, f in compare.items():
            ll = f.get("held_out_log_likelihood_per_dim")
            lines.append(f"| {name} | {'' if ll is None else f'{ll:.2f}'} | {f['closer_than_held_out_median']:.0%} | "
                         f"{f['diversity_vs_training']:.2f}x | {f.get('discriminator', float('nan')):.2f} |")
        lines.append("")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model folder")
    parser.add_argument("--data", required=True, help="emoji folder (metadata.jsonl with train/val splits)")
    parser.add_argument("--grids", help="folder to write the sample and style-mix grids into")
    parser.add_argument("--compare", action="store_true", help="also fit and measure the candidate densities")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    figures = evaluate(Path(args.model), Path(args.data), Path(args.grids) if args.grids else None, args.compare)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
