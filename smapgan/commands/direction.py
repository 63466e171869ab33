"""``smapgan direction``: learn a semantic direction from two image folders and store it with the model.

``smapgan direction --sefa K`` instead computes K directions without labels from
the weights (SeFa, :func:`smapgan.latent.directions.sefa`), stored as ``sefa_0 ...``
with their eigenvalues in the file's metadata (replacing earlier ``sefa_*``).

The direction is saved next to the model's weights (``directions.safetensors``)
so ``semantic_edit`` offers it and ``push_to_hub`` carries it. See
:mod:`smapgan.latent.directions` for the methods and the unit-norm-per-cell convention.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from ..model import StyleMapGAN

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--positive", help="folder of images with the attribute (required unless --sefa)")
    parser.add_argument("--negative", help="folder of images without it (required unless --sefa)")
    parser.add_argument("--name", help="direction name (shown in the semantic edit op; required unless --sefa)")
    parser.add_argument(
        "--sefa", type=int, metavar="K",
        help="no labels: store the K strongest closed-form directions (SeFa) as sefa_0..sefa_{K-1}",
    )
    parser.add_argument("--model", help="model folder or Hub repo id (default: the bundled model)")
    parser.add_argument("--revision", help="Hub revision (branch, tag or commit)")
    parser.add_argument("--out", help="folder to save the model with its new direction (default: the model folder)")
    parser.add_argument(
        "--method", choices=("logistic", "mean"), default="logistic",
        help="logistic: L2-regularized logistic regression normal (default); mean: difference of class means",
    )
    parser.add_argument("--steps", type=int, default=300, help="L-BFGS iterations for logistic (default: %(default)s)")
    parser.add_argument("--l2", type=float, default=1e-2, help="L2 penalty for logistic (default: %(default)s)")
    parser.add_argument("--max-images", type=int, default=2000, help="per folder (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing direction of that name")


def image_files(folder: str, limit: int, recursive: bool = False) -> list[Path]:
    """Image files of a folder (sorted; below it too when ``recursive``), at most ``limit``."""
    path = Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    found = path.rglob("*") if recursive else path.iterdir()
    files = sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"{folder} contains no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files[:limit]


def encode_files(model: "StyleMapGAN", files: list[Path], batch_size: int, mirror: bool = False) -> "torch.Tensor":
    """Stylemaps (N,C,L,L) of image files, center-cropped and resized to the model, followed by those
    of their mirror images when ``mirror``."""
    import torch

    from ..intake import images as imageio

    codes, mirrored = [], []
    with torch.inference_mode():
        for start in range(0, len(files), batch_size):
            batch = torch.cat([imageio.image_to_tensor(imageio.load_image(f, model.config.size))
                               for f in files[start:start + batch_size]]).to(model.device)
            codes.append(model.encode(batch).cpu())
            if mirror:
                mirrored.append(model.encode(batch.flip(-1)).cpu())
    return torch.cat(codes + mirrored)


def run(args: argparse.Namespace) -> int:
    from .. import StyleMapGAN
    from ..defaults import default_model_path
    from ..latent.directions import learn_direction

    source = args.model or default_model_path()
    out = args.out or (source if Path(source).is_dir() else None)
    if out is None:
        raise ValueError(f"{source} is not a local folder: pass --out DIR to save the model with its direction")
    if getattr(args, "sefa", None) is not None:
        return run_sefa(source, out, args.sefa, args.revision)
    if not (args.positive and args.negative):
        raise ValueError("pass --positive and --negative image folders (or --sefa K for directions without labels)")
    if not args.name or not args.name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"--name must be letters, digits, '-' or '_', got {args.name!r}")
    model = StyleMapGAN.from_pretrained(source, revision=args.revision)
    if args.name in model.directions and not args.overwrite:
        raise ValueError(f"the model already has a direction {args.name!r}; pass --overwrite to replace it")
    positives = encode_files(model, image_files(args.positive, args.max_images), args.batch_size)
    negatives = encode_files(model, image_files(args.negative, args.max_images), args.batch_size)
    fit = learn_direction(positives, negatives, args.method, args.steps, args.l2)
    model.add_direction(args.name, fit.direction)
    model.save_pretrained(out)
    print(
        f"direction {args.name!r} ({args.method}) from {len(positives)} positive and {len(negatives)} negative images: "
        f"training accuracy {fit.accuracy:.0%}; strength {fit.gap:.2f} moves the average negative to the average "
        f"positive. Saved with the model in {out}"
    )
    return 0


def run_sefa(source: str, out: str, count: int, revision: str | None = None) -> int:
    """Compute SeFa directions and store them with the model (in place on a local folder: only
    ``directions.safetensors`` is rewritten)."""
    import json
    import time

    from .. import StyleMapGAN
    from ..latent.directions import SEFA_PREFIX, SEFA_WEIGHT_KEY, sefa, sefa_maps

    start = time.perf_counter()
    model = StyleMapGAN.from_pretrained(source, revision=revision)
    fit = sefa(model.generator.decoder.convs_latent[0].conv.weight.detach().cpu(), count)
    for name in [n for n in model.directions if n.startswith(SEFA_PREFIX)]:
        del model.directions[name]
    model.directions.update(sefa_maps(fit, model.config.latent_spatial_size))
    model.directions_metadata["sefa_eigenvalues"] = json.dumps([round(float(e), 6) for e in fit.eigenvalues])
    model.directions_metadata["sefa_layer"] = SEFA_WEIGHT_KEY
    if Path(source).is_dir() and Path(out).resolve() == Path(source).resolve():
        model.save_directions(out)
    else:
        model.save_pretrained(out)
    eig = ", ".join(f"{float(e):.3g}" for e in fit.eigenvalues)
    print(
        f"{count} SeFa directions sefa_0..sefa_{count - 1} (eigenvalues {eig}) saved with the model in {out} "
        f"({time.perf_counter() - start:.2f} s)"
    )
    return 0
