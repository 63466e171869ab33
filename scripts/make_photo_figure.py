"""The README's photo picture: photo -> aligned crop -> an op's result -> the result in the photo.

    python scripts/make_photo_figure.py --out docs/photo_figure.png

The photo is scikit-image's astronaut (``skimage.data.astronaut()``, a NASA portrait in
the public domain). The model has **random weights** in the release's 256 px / 8x8 layout
with ``alignment: ffhq`` (what ``smapgan convert`` writes for the CelebA-HQ checkpoint), so
the result itself is meaningless and labelled so: the picture shows the path a photo takes.
It runs what a user runs (docs/photos.md): ``smapgan align`` for the crop and its transform,
then ``smapgan edit reconstruct --photo-out`` for the result and the photo with it put back.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from PIL import Image, ImageDraw

PANEL = 360
GAP = 14
TITLE_H = 34
CAPTION_H = 40

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_readme_figure import ACCENT, BACKGROUND, INK, MUTED, font  # noqa: E402  (the README figure's look)


def random_release_model(folder: Path, seed: int) -> Path:
    """A 256 px, 8x8 model with random weights, saved as `smapgan convert` saves a release checkpoint."""
    from smapgan import StyleMapGAN, StyleMapGANConfig

    torch.manual_seed(seed)
    StyleMapGAN(StyleMapGANConfig(alignment="ffhq"), with_discriminator=False).eval().save_pretrained(folder)
    return folder


def outlined(photo: Image.Image, quad: list[list[float]]) -> Image.Image:
    """The photo with the crop's (turned) square drawn on it, its top edge thicker."""
    out = photo.copy()
    draw = ImageDraw.Draw(out)
    points = [tuple(p) for p in quad]
    draw.polygon(points, outline=ACCENT, width=3)
    draw.line([points[0], points[3]], fill=ACCENT, width=6)
    return out


def stamped(image: Image.Image, text: str = "random weights") -> Image.Image:
    """``image`` with ``text`` on a white band in its top-left corner."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    left, top, right, bottom = draw.textbbox((8, 8), text, font=font(15))
    draw.rectangle((left - 4, top - 3, right + 4, bottom + 3), fill=BACKGROUND)
    draw.text((8, 8), text, fill=ACCENT, font=font(15))
    return out


def panel(image: Image.Image) -> Image.Image:
    resample = Image.Resampling.LANCZOS if image.width > PANEL else Image.Resampling.BICUBIC
    return image.resize((PANEL, round(image.height * PANEL / image.width)), resample)


def compose(cells: list[tuple[Image.Image, str, str]], title: str, note: str) -> Image.Image:
    height = max(image.height for image, _, _ in cells)
    width = GAP + len(cells) * (PANEL + GAP)
    sheet = Image.new("RGB", (width, TITLE_H + height + CAPTION_H + GAP), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((GAP, 8), title, fill=INK, font=font(18))
    draw.text((width - GAP, 10), note, fill=ACCENT, font=font(15), anchor="ra")
    for i, (image, caption, detail) in enumerate(cells):
        x = GAP + i * (PANEL + GAP)
        sheet.paste(image, (x, TITLE_H))
        draw.text((x, TITLE_H + height + 4), caption, fill=INK, font=font(14))
        draw.text((x, TITLE_H + height + 22), detail, fill=MUTED, font=font(11))
        if i:
            y = TITLE_H + height // 2
            draw.polygon([(x - GAP + 2, y - 6), (x - 2, y), (x - GAP + 2, y + 6)], fill=INK)
    return sheet


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/photo_figure.png")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from skimage import data

    from smapgan.cli import main as smapgan

    work = Path(tempfile.mkdtemp(prefix="smapgan-photo-figure-"))
    photo_path = work / "astronaut.png"
    Image.fromarray(data.astronaut()).save(photo_path)
    model = random_release_model(work / "model", args.seed)
    crop_path = work / "crop.png"
    commands = [
        ["align", str(photo_path), "--size", "256", "--out", str(crop_path)],
        ["edit", "reconstruct", "--model", str(model), "--original", str(photo_path),
         "--out", str(work / "result.png"), "--photo-out", str(work / "photo_out.png")],
    ]
    for argv in commands:
        if smapgan(argv) != 0:
            print(f"smapgan {' '.join(argv)} failed", file=sys.stderr)
            return 1
    transform = json.loads(crop_path.with_suffix(".json").read_text())
    photo = Image.open(photo_path).convert("RGB")
    cells = [
        (panel(outlined(photo, transform["quad"])), "1. photo (512x512)", "the FFHQ square from dlib's 68 landmarks"),
        (panel(Image.open(crop_path)), "2. aligned crop (256x256)", "smapgan align: what the model sees"),
        (stamped(panel(Image.open(work / "result.png"))), "3. result (random weights)", "smapgan edit reconstruct"),
        (
            stamped(panel(Image.open(work / "photo_out.png"))),
            "4. result in the photo",
            "--photo-out: inverse transform, feathered seam",
        ),
    ]
    sheet = compose(
        cells,
        "A photo through smapgan: align, edit, paste back",
        "random weights: the result is noise; a converted CelebA-HQ checkpoint gives a real edit",
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)
    print(f"wrote {out} ({sheet.width}x{sheet.height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
