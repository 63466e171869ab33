"""Quality figures of a model on the emoji data: reconstruction and local editing (paper Table 4).

    python scripts/evaluate_model.py --model smapgan/assets/default_model --data /work/data/emoji --json figures.json

* Reconstruction MSE / PSNR of ``decode(encode(x))`` on the held-out split (and on the
  training split, for comparison), per source and per image.
* Table 4: for a fixed, seeded set of (source, reference) pairs of held-out faces and
  each mask of ``smapgan.latent.metrics.local_editing_masks``, blend the reference into the
  source and measure MSE_src (unmasked pixels vs the source) and MSE_ref (masked pixels
  vs the reference), in w+ (the paper's CelebA-HQ setting) and in w.

Images are read through ``smapgan.intake.images`` (the app's and the CLI's path) and live in
[-1, 1]; MSE is on that scale, like the paper's.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

GOALS = {"val_mse": 0.02, "style_mse": 0.03, "mse_src": 0.03, "mse_ref": 0.10}
PAIR_SEED = 0
PAIR_COUNT = 24


def read_rows(data: Path) -> list[dict[str, Any]]:
    with open(data / "metadata.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_images(data: Path, rows: Sequence[dict[str, Any]], size: int) -> torch.Tensor:
    """(N,3,S,S) in [-1,1], each image decoded, center-cropped and resized by ``smapgan.intake.images``."""
    from smapgan.intake import images as imageio

    return torch.cat([imageio.image_to_tensor(imageio.load_image(data / r["file"], size)) for r in rows])


def image_id(row: dict[str, Any]) -> str:
    return f"{row['source']}/{row['unified']}"


def is_face(row: dict[str, Any]) -> bool:
    """Human-like smiley faces (not animals, cats or costumes): the aligned part of the data."""
    return row["subcategory"].startswith("face-") and row["subcategory"] != "face-costume"


def editing_pairs(
    rows: Sequence[dict[str, Any]], count: int = PAIR_COUNT, seed: int = PAIR_SEED
) -> list[tuple[int, int]]:
    """A fixed, seeded list of (source, reference) index pairs: distinct emoji of the same source.

    The pairs depend only on the rows (sorted by id) and the seed, so every model is
    measured on the same cases.
    """
    order = sorted(range(len(rows)), key=lambda i: image_id(rows[i]))
    candidates = [
        (a, b) for a in order for b in order
        if a != b and rows[a]["source"] == rows[b]["source"] and rows[a]["unified"] != rows[b]["unified"]
    ]
    if not candidates:
        raise ValueError("need at least two held-out faces of one source for local-editing pairs")
    return random.Random(seed).sample(candidates, min(count, len(candidates)))


def reconstruction(model: Any, images: torch.Tensor, rows: Sequence[dict[str, Any]], per_image: bool) -> dict[str, Any]:
    """Headline figures from ``smapgan.latent.metrics.reconstruction_figures``, by source, and optionally per image."""
    from smapgan.latent.metrics import reconstruction_figures

    overall = reconstruction_figures(model, images)
    result: dict[str, Any] = {"mse": overall.mse, "psnr": overall.psnr, "count": overall.count, "by_source": {}}
    for source in sorted({r["source"] for r in rows}):
        index = [i for i, r in enumerate(rows) if r["source"] == source]
        part = reconstruction_figures(model, images[index])
        result["by_source"][source] = {"mse": part.mse, "psnr": part.psnr, "count": part.count}
    if per_image:
        errors = [reconstruction_figures(model, images[i : i + 1]).mse for i in range(len(images))]
        result["mse_std"] = float(torch.tensor(errors).std()) if len(errors) > 1 else 0.0
        result["mse_max"] = max(errors)
        result["per_image"] = {image_id(r): e for r, e in zip(rows, errors)}
    return result


def local_editing(model: Any, images: torch.Tensor, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Table 4 over the seeded pairs and every mask, in w+ and w, with a per-mask breakdown."""
    from smapgan.latent.metrics import local_editing_figures, local_editing_masks

    pairs = editing_pairs(rows)
    sources = images[[a for a, _ in pairs]]
    references = images[[b for _, b in pairs]]
    masks = local_editing_masks(model.config.size)
    result: dict[str, Any] = {
        "pairs": [[image_id(rows[a]), image_id(rows[b])] for a, b in pairs],
        "masks": list(masks),
        "seed": PAIR_SEED,
    }
    for space in ("w+", "w"):
        overall = local_editing_figures(model, sources, references, list(masks.values()), space=space)
        per_mask = {}
        for name, mask in masks.items():
            one = local_editing_figures(model, sources, references, [mask], space=space)
            per_mask[name] = {"mse_src": one.mse_src, "mse_ref": one.mse_ref}
        result[space] = {"mse_src": overall.mse_src, "mse_ref": overall.mse_ref, "count": overall.count,
                         "per_mask": per_mask}
    return result


def training_info(model_dir: Path) -> dict[str, Any]:
    """Step and images seen, from the export's ``training.json`` when there is one."""
    path = model_dir / "training.json"
    if not path.is_file():
        return {}
    meta = json.loads(path.read_text())
    return {"step": meta.get("step"), "images_seen": meta.get("images_seen")}


def evaluate(model_dir: str | Path, data: str | Path, device: str = "cpu") -> dict[str, Any]:
    """Every figure of this script as a JSON-ready dict (the model runs on ``device``)."""
    from smapgan import StyleMapGAN

    model_dir, data = Path(model_dir), Path(data)
    model = StyleMapGAN.from_pretrained(model_dir).to(device)
    size = model.config.size
    rows = read_rows(data)
    val_rows = [r for r in rows if r["split"] == "val"]
    train_rows = [r for r in rows if r["split"] == "train"]
    style_rows = [r for r in rows if r["split"] == "style"]  # a whole emoji style never trained on
    if not val_rows:
        raise ValueError(f"{data}/metadata.jsonl has no held-out (split 'val') image")
    val_images = load_images(data, val_rows, size)
    faces = [i for i, r in enumerate(val_rows) if is_face(r)]
    recon = {
        "val": reconstruction(model, val_images, val_rows, per_image=True),
        "train": reconstruction(model, load_images(data, train_rows, size), train_rows, per_image=False),
    }
    if style_rows:
        recon["style"] = reconstruction(model, load_images(data, style_rows, size), style_rows, per_image=True)
    return {
        "model": training_info(model_dir),
        "data": {"name": data.name, "train_images": len(train_rows), "val_images": len(val_rows),
                 "val_faces": len(faces), "style_images": len(style_rows),
                 "style": sorted({r["source"] for r in style_rows})},
        "reconstruction": recon,
        "local_editing": local_editing(model, val_images[faces], [val_rows[i] for i in faces]),
        "goals": GOALS,
        "scale": "images in [-1, 1]; PSNR in dB for a peak-to-peak of 2",
    }


def summary(figures: dict[str, Any]) -> str:
    """The figures as a few lines of text."""
    rec, edit = figures["reconstruction"], figures["local_editing"]
    lines = [
        f"reconstruction, held-out ({rec['val']['count']} images): MSE {rec['val']['mse']:.4f}  "
        f"PSNR {rec['val']['psnr']:.2f} dB  (goal MSE <= {GOALS['val_mse']})",
        f"reconstruction, training ({rec['train']['count']} images): MSE {rec['train']['mse']:.4f}  "
        f"PSNR {rec['train']['psnr']:.2f} dB",
    ]
    if "style" in rec:
        lines.insert(1, f"reconstruction, held-out style {figures['data']['style']} ({rec['style']['count']} images): "
                     f"MSE {rec['style']['mse']:.4f}  PSNR {rec['style']['psnr']:.2f} dB  (goal MSE <= {GOALS['style_mse']})")
    for space in ("w+", "w"):
        e = edit[space]
        lines.append(
            f"local editing ({space}, {len(edit['pairs'])} pairs x {len(edit['masks'])} masks): "
            f"MSE_src {e['mse_src']:.4f}  MSE_ref {e['mse_ref']:.4f}  "
            f"(goal <= {GOALS['mse_src']} / <= {GOALS['mse_ref']})"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model folder")
    parser.add_argument("--data", required=True, help="emoji folder (metadata.jsonl, images/)")
    parser.add_argument("--json", help="write the figures here (e.g. MODEL/figures.json)")
    parser.add_argument("--device", default="cpu", help="torch device of the model (default: %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    figures = evaluate(args.model, args.data, args.device)
    print(summary(figures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
