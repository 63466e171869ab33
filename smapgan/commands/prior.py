"""``smapgan prior fit``: fit the encoded prior of a model to a folder of images and store it with the model.

Every image under ``--data`` (and its mirror image, as the trainer flips) is encoded, and
a density is fitted to the stylemaps (:class:`smapgan.model.prior.StylemapPrior`), saved
as ``prior.safetensors`` beside the weights: random generation then samples from it. A
converted release checkpoint gets one the same way, from the images of its domain.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .direction import encode_files, image_files


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="prior_command", metavar="ACTION", required=True)
    fit = sub.add_parser("fit", help="fit a prior to the stylemaps of a folder of images (recursive)")
    fit.add_argument("--data", required=True, help="folder of images (searched recursively)")
    fit.add_argument("--model", help="model folder or Hub repo id (default: the bundled model)")
    fit.add_argument("--revision", help="Hub revision (branch, tag or commit)")
    fit.add_argument("--out", help="folder to save the model with its prior (default: the model folder)")
    fit.add_argument("--rank", type=int, default=64, help="PCA dimensions the mixture lives in (default: %(default)s)")
    fit.add_argument("--components", type=int, default=64, help="Gaussians in the mixture (default: %(default)s)")
    fit.add_argument("--iterations", type=int, default=60, help="EM iterations (default: %(default)s)")
    fit.add_argument("--no-mirror", action="store_true", help="do not add each image's mirror image")
    fit.add_argument("--max-images", type=int, default=20000, help="at most this many files (default: %(default)s)")
    fit.add_argument("--batch-size", type=int, default=32)
    fit.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from .. import StyleMapGAN
    from ..defaults import default_model_path
    from ..model.prior import StylemapPrior

    source = args.model or default_model_path()
    out = args.out or (source if Path(source).is_dir() else None)
    if out is None:
        raise ValueError(f"{source} is not a local folder: pass --out DIR to save the model with its prior")
    files = image_files(args.data, args.max_images, recursive=True)
    model = StyleMapGAN.from_pretrained(source, revision=args.revision)
    stylemaps = encode_files(model, files, args.batch_size, mirror=not args.no_mirror)
    model.prior = StylemapPrior.fit(
        stylemaps, rank=args.rank, components=args.components, iterations=args.iterations, seed=args.seed
    )
    in_place = Path(source).is_dir() and Path(out).resolve() == Path(source).resolve()
    if in_place:
        model.save_prior(out)  # only the prior file changes
    else:
        model.save_pretrained(out)
    print(
        f"prior fitted to {len(stylemaps)} stylemaps of {len(files)} images: {model.prior.components} Gaussians in "
        f"{model.prior.rank} PCA dimensions. Saved with the model in {out}"
    )
    return 0
