"""The README's picture: held-out reconstructions, then every op on its default example.

    python scripts/make_readme_figure.py --model smapgan/assets/default_model --out docs/figure.png

Top: held-out emoji (never seen in training) and their reconstructions; then the
refinement row (``--refine-images``: input, encoder only, refined by
``smapgan.latent.invert.refine``, PSNR each; a style the model never saw shows it best). Below, one
row per registered op (``smapgan.ops.discover``, in the app's order): the op's first
declared example run through ``Op.run`` as ``smapgan edit`` runs it, shown as
inputs -> outputs. Brushed regions are shown by dimming everything else; boxes and
placement points are drawn on the image they belong to.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image, ImageDraw, ImageFont

SCALE = 2  # nearest upscale: every model pixel stays visible
GAP = 8
LABEL_W = 190
CAPTION_H = 18
ARROW_W = 28
MAX_FRAMES = 6
BACKGROUND = (255, 255, 255)
INK = (30, 30, 30)
MUTED = (110, 110, 110)
ACCENT = (220, 40, 60)


def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """PIL's default font (scalable where Pillow has FreeType)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1 or no FreeType: the fixed bitmap font
        return ImageFont.load_default()


class Cell:
    """One picture of the grid with a caption; ``arrow`` draws an arrow in front of it."""

    def __init__(self, image: Image.Image, caption: str = "", arrow: bool = False) -> None:
        self.image, self.caption, self.arrow = image, caption, arrow


def to_pil(tensor: torch.Tensor) -> Image.Image:
    from smapgan.intake import images as imageio

    return imageio.tensor_to_image(tensor)


def enlarge(image: Image.Image) -> Image.Image:
    return image.resize((image.width * SCALE, image.height * SCALE), Image.Resampling.NEAREST)


def with_mask(picture: Any) -> Image.Image:
    """The picture, with everything outside its mask dimmed (the brushed region stands out)."""
    image = to_pil(picture.image)
    if picture.mask is None or not bool(picture.mask.any()):
        return enlarge(image)
    dim = Image.blend(image, Image.new("RGB", image.size, (40, 40, 40)), 0.6)
    keep = Image.fromarray((picture.mask[0, 0].numpy() > 0).astype("uint8") * 255)
    return enlarge(Image.composite(image, dim, keep))


def draw_box(image: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    out = image.copy()
    w = out.width
    ImageDraw.Draw(out).rectangle([box[0] * w, box[1] * w, box[2] * w - 1, box[3] * w - 1], outline=ACCENT, width=2)
    return out


def draw_points(image: Image.Image, points: Sequence[tuple[float, float]]) -> Image.Image:
    out = image.copy()
    draw, w = ImageDraw.Draw(out), out.width
    for x, y in points:
        cx, cy, r = x * w, y * w, 5
        draw.line([cx - r, cy, cx + r, cy], fill=ACCENT, width=2)
        draw.line([cx, cy - r, cx, cy + r], fill=ACCENT, width=2)
    return out


def held_out_rows(model: Any, files: Sequence[tuple[Path, str]], note: str = "",
                  label: str = "Held-out emoji", about: str = "not seen in training") -> list[tuple[str, str, list[Cell]]]:
    """Two rows: held-out images (file, caption) and their reconstructions, with per-image MSE."""
    from smapgan.intake import images as imageio

    images = torch.cat([imageio.image_to_tensor(imageio.load_image(f, model.config.size)) for f, _ in files])
    with torch.inference_mode():
        recon = model.decode(model.encode(images)).clamp(-1, 1)
    errors = (recon - images).pow(2).flatten(1).mean(1).tolist()
    originals = [Cell(enlarge(to_pil(x)), caption) for x, (_, caption) in zip(images, files)]
    recons = [Cell(enlarge(to_pil(y)), f"MSE {e:.3f}") for y, e in zip(recon, errors)]
    mean = sum(errors) / len(errors)
    return [
        (label, about + (f"; {note}" if note else ""), originals),
        ("Reconstruction", f"decode(encode(x)), MSE {mean:.3f}", recons),
    ]


def refinement_row(model: Any, files: Sequence[Path], steps: int) -> tuple[str, str, list[Cell]]:
    """One row: for each image, the input, the encoder's reconstruction and the refined one (PSNR in dB)."""
    from smapgan.intake import images as imageio
    from smapgan.latent.invert import psnr, reconstruct, refine

    images = torch.cat([imageio.image_to_tensor(imageio.load_image(f, model.config.size)) for f in files])
    with torch.inference_mode():
        encoder = model.decode(model.encode(images)).clamp(-1, 1)
    refined = reconstruct(model, refine(model, images, steps=steps)).clamp(-1, 1)
    cells = []
    for x, a, b in zip(images, encoder, refined):
        cells += [
            Cell(enlarge(to_pil(x)), "input"),
            Cell(enlarge(to_pil(a)), f"encoder {float(psnr(a[None], x[None])):.1f} dB", arrow=True),
            Cell(enlarge(to_pil(b)), f"refined {float(psnr(b[None], x[None])):.1f} dB"),
        ]
    return ("Refined inversion", f"input, encoder only, {steps} refinement steps (smapgan.latent.invert.refine)", cells)


def op_row(found: Any, ctx: Any) -> tuple[str, str, list[Cell]]:
    """One op's first example: image inputs (masks, boxes, points drawn), then its outputs."""
    from smapgan.ops import BoxInput, FramesOutput, ImageInput, ImageOutput, NumbersOutput, PointsInput
    from smapgan.ops.examples import example_values

    values = example_values(found, ctx)
    settings = found.parse_settings(values, ctx.model)
    result = found.run(ctx, **values)
    cells: list[Cell] = []
    overlays: dict[str, list[Any]] = {}
    for item in found.inputs:
        if isinstance(item, (BoxInput, PointsInput)) and item.on and settings.get(item.name):
            overlays.setdefault(item.on, []).append((item, settings[item.name]))
    for item in found.inputs:
        if not isinstance(item, ImageInput) or item.name not in values:
            continue
        pictures = values[item.name] if isinstance(values[item.name], list) else [values[item.name]]
        for picture in pictures:
            image = with_mask(picture)
            for overlay, value in overlays.get(item.name, []):
                image = draw_box(image, value) if isinstance(overlay, BoxInput) else draw_points(image, value)
            cells.append(Cell(image, item.name.replace("_", " ")))
    notes = []
    first_output = True
    # frames end on the edit (or pass through it): show them instead of the single image
    animated = any(isinstance(o, FramesOutput) and result[o.name] for o in found.outputs)
    for output in found.outputs:
        value = result[output.name]
        if isinstance(output, ImageOutput) and not animated:
            cells.append(Cell(enlarge(to_pil(value)), output.name, arrow=first_output and bool(cells)))
            first_output = False
        elif isinstance(output, FramesOutput) and value:
            picks = sorted({round(i * (len(value) - 1) / (MAX_FRAMES - 1)) for i in range(MAX_FRAMES)})
            for n, i in enumerate(picks):
                cells.append(Cell(enlarge(to_pil(value[i])), f"{output.name} {i + 1}/{len(value)}", arrow=n == 0))
        elif isinstance(output, NumbersOutput):
            notes.append(", ".join(f"{k} {v:.3g}" for k, v in value.items()))
    shown = [f"{k} {format_value(v)}" for k, v in settings.items() if v not in (None, [], ())]
    subtitle = "; ".join(shown + notes)
    return found.title, subtitle, cells


def directions_row(found: Any, ctx: Any, gaps: dict[str, float]) -> tuple[str, str, list[Cell]]:
    """``semantic_edit``'s example image pushed along every stored direction (and one of them back).

    Each push is twice the direction's measured gap (the strength that moves the average
    negative onto the average positive, from ``figures.json``) when known: a scale at which
    that direction's attribute shows without overshooting; otherwise the example's strength.
    """
    from smapgan.ops.examples import example_values

    values = example_values(found, ctx)
    default = float(found.parse_settings(values, ctx.model)["strength"]) or 3.0
    original = values["original"]
    cells = [Cell(with_mask(original), "original")]
    names = sorted(ctx.model.directions)
    limit = next(i.maximum for i in found.inputs if i.name == "strength")  # the op refuses more
    strengths = {n: min(round(2 * gaps[n], 2), limit) if gaps.get(n, 0) > 0 else default for n in names}
    back = "smile" if "smile" in names else names[0]  # one push the other way: a frown reads at a glance
    pushes = [(back, 0.0), (back, -strengths[back])] + [(name, strengths[name]) for name in names]
    for i, (name, s) in enumerate(pushes):
        image = found.run(ctx, **{**values, "direction": name, "strength": s})["image"]
        cells.append(Cell(enlarge(to_pil(image)), f"{name} {s:+g}" if s else "strength 0", arrow=i == 0))
    how = "2x each direction's negative-to-positive gap" if gaps else f"strength {default:g}"
    return "Directions", f"semantic edit of the same image along each stored direction; {how}", cells


def direction_gaps(model_dir: Path) -> dict[str, float]:
    """Each direction's measured negative-to-positive strength, from the model's ``figures.json``."""
    path = model_dir / "figures.json"
    if not path.is_file():
        return {}
    figures = json.loads(path.read_text())
    return {d["name"]: float(d["strength_neg_to_pos"]) for d in figures.get("directions", [])}


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(format_value(v) for v in value) + ")"
    return str(value)


def wrap(text: str, face: Any, width: int) -> list[str]:
    """Greedy word wrap of ``text`` to ``width`` pixels."""
    lines: list[str] = []
    for word in text.replace(";", "; ").split():
        trial = f"{lines[-1]} {word}" if lines else word
        if lines and face.getlength(trial) <= width:
            lines[-1] = trial
        else:
            lines.append(word)
    return lines


def compose(rows: Sequence[tuple[str, str, list[Cell]]], title: str) -> Image.Image:
    """Lay the rows out on a white canvas: a label column, then the cells with captions."""
    side = 0
    for _, _, cells in rows:
        side = max([side] + [c.image.width for c in cells])
    title_font, label_font, small_font = font(18), font(14), font(11)
    widths = [sum(side + GAP + (ARROW_W if c.arrow else 0) for c in cells) for _, _, cells in rows]
    width = LABEL_W + max(widths) + GAP
    row_h = CAPTION_H + side + GAP * 2
    top = 40
    canvas = Image.new("RGB", (width, top + row_h * len(rows)), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((GAP, 10), title, fill=INK, font=title_font)
    for r, (label, subtitle, cells) in enumerate(rows):
        y = top + r * row_h
        if r:
            draw.line([GAP, y - GAP // 2, width - GAP, y - GAP // 2], fill=(225, 225, 225), width=1)
        draw.text((GAP, y + CAPTION_H), label, fill=INK, font=label_font)
        for i, line in enumerate(wrap(subtitle, small_font, LABEL_W - 2 * GAP)[:7]):
            draw.text((GAP, y + CAPTION_H + 20 + 14 * i), line, fill=MUTED, font=small_font)
        x = LABEL_W
        for cell in cells:
            if cell.arrow:
                mid = y + CAPTION_H + side // 2
                draw.line([x + 4, mid, x + ARROW_W - 8, mid], fill=INK, width=2)
                tip = x + ARROW_W - 6
                draw.polygon([(tip, mid), (tip - 6, mid - 5), (tip - 6, mid + 5)], fill=INK)
                x += ARROW_W
            text = cell.caption
            while text and small_font.getlength(text) > side:
                text = text[:-2] + "…" if len(text) > 2 else ""
            draw.text((x + (side - small_font.getlength(text)) / 2, y + 3), text, fill=MUTED, font=small_font)
            canvas.paste(cell.image, (x, y + CAPTION_H))
            x += side + GAP
    return canvas


def held_out_files(examples_dir: Path, count: int) -> list[tuple[Path, str]]:
    """Held-out example images of the package (``split == "val"`` in ``index.json``)."""
    index = json.loads((examples_dir / "index.json").read_text())
    return [(examples_dir / e["file"], e["short_name"]) for e in index if e.get("split") == "val"][:count]


def data_held_out_files(data: Path, count: int, animals: int = 2, split: str = "val") -> list[tuple[Path, str]]:
    """Held-out images of an emoji folder: distinct emoji, sources alternating, a few non-faces last."""
    rows = [json.loads(line) for line in (data / "metadata.jsonl").read_text().splitlines() if line.strip()]
    emoji: dict[str, list[dict[str, Any]]] = {}
    for r in sorted((r for r in rows if r["split"] == split), key=lambda r: (r["unified"], r["source"])):
        emoji.setdefault(r["unified"], []).append(r)
    faces = [v for v in emoji.values() if v[0]["subcategory"].startswith("face-")]
    others = [v for v in emoji.values() if not v[0]["subcategory"].startswith("face-")]
    chosen = faces[: count - min(animals, len(others))]
    chosen += others[: count - len(chosen)]
    picked = []
    for i, renderings in enumerate(chosen):
        r = renderings[i % len(renderings)]
        picked.append((data / r["file"], r["short_names"][0]))
    return picked


def make_figure(
    model_dir: str | Path,
    data: str | Path | None = None,
    held_out: int = 8,
    refine_files: Sequence[Path] = (),
    refine_steps: int = 100,
) -> Image.Image:
    """The whole figure for the model in ``model_dir``; ``refine_files`` adds the refinement row."""
    from smapgan import StyleMapGAN
    from smapgan.ops import OpContext, discover
    from smapgan.ops.examples import EXAMPLES_DIR

    model = StyleMapGAN.from_pretrained(model_dir)
    if data:
        rows = held_out_rows(model, data_held_out_files(Path(data), held_out), "the training styles alternate")
        style = data_held_out_files(Path(data), held_out, split="style")
        if style:
            rows += held_out_rows(model, style, label="Held-out style", about="a design never trained on")
    else:
        rows = held_out_rows(model, held_out_files(EXAMPLES_DIR, held_out), "Noto")
    if refine_files and refine_steps > 0:
        rows.append(refinement_row(model, refine_files, refine_steps))
    registry = discover()
    for found in registry.sorted():
        if found.examples:
            rows.append(op_row(found, OpContext(model)))
            if found.name == "semantic_edit" and model.directions:
                rows.append(directions_row(found, OpContext(model), direction_gaps(Path(model_dir))))
    step = ""
    meta = Path(model_dir) / "training.json"
    if meta.is_file():
        info = json.loads(meta.read_text())
        step = f", {info.get('images_seen', 0):,} training images seen"
    title = f"smapgan: the bundled emoji StyleMapGAN ({model.config.size} px, {model.config.latent_spatial_size}x" \
            f"{model.config.latent_spatial_size}x{model.config.latent_channel_size} stylemap{step})"
    return compose(rows, title)


def samples_grid(model: Any, count: int = 16, truncation: float = 0.7, seed: int = 0, columns: int = 8) -> Image.Image:
    """``count`` random samples (z from ``seed``, truncation toward the mean stylemap), for the model card."""
    z = torch.randn(count, model.config.latent_channel_size, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        mean = model.mean_stylemap()
        images = model.generate(z, truncation=truncation, mean_stylemap=mean).clamp(-1, 1)
    side = model.config.size * 2
    rows = (count + columns - 1) // columns
    grid = Image.new("RGB", (columns * side, rows * side), BACKGROUND)
    for i, x in enumerate(images):
        grid.paste(to_pil(x).resize((side, side), Image.Resampling.NEAREST), ((i % columns) * side, (i // columns) * side))
    return grid


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model folder")
    parser.add_argument("--out", default="docs/figure.png", help="PNG to write (default: %(default)s)")
    parser.add_argument("--data", help="emoji folder to take held-out images from (default: the package's examples)")
    parser.add_argument(
        "--refine-images", nargs="*", default=None, metavar="FILE",
        help="images for the refinement row (input, encoder only, refined); default: 3 held-out images; "
        "a style the model never saw shows the gain best",
    )
    parser.add_argument("--refine-steps", type=int, default=100, help="0 leaves the row out (default: %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    if args.refine_images is None:
        from smapgan.ops.examples import EXAMPLES_DIR

        held = data_held_out_files(Path(args.data), 3) if args.data else held_out_files(EXAMPLES_DIR, 3)
        refine_files = [f for f, _ in held]
    else:
        refine_files = [Path(f) for f in args.refine_images[:4]]
    image = make_figure(args.model, args.data, refine_files=refine_files, refine_steps=args.refine_steps)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    image.save(args.out, optimize=True)
    print(f"wrote {args.out} ({image.width}x{image.height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
