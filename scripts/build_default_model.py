"""Turn a training run's latest export into the bundled default model, in one command.

    python scripts/build_default_model.py --run /work/runs/emoji64 --data /work/data/emoji

1. copies the run's EMA export (``RUN/model``: config.json, model.safetensors with the
   discriminator, training.json) into a staging folder;
2. learns the semantic directions from emoji keywords (``scripts/emoji_directions.py``);
   fits the encoded prior to the training split (``smapgan prior fit``);
3. measures it (``scripts/evaluate_model.py``, ``scripts/evaluate_prior.py``) into ``figures.json``;
4. writes the model card (``README.md``) and the figure (``figure.png``, also ``docs/figure.png``);
5. replaces ``smapgan/assets/default_model/`` with the staging folder.

Idempotent: every run rebuilds the folder from the export, so running it again on
the same export gives the same files (up to float noise in the figures).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
sys.path.insert(0, str(SCRIPTS))

import emoji_directions  # noqa: E402  (sibling scripts)
import evaluate_model  # noqa: E402
import evaluate_prior  # noqa: E402
import make_readme_figure  # noqa: E402

MAX_MODEL_BYTES = 30 * 1024 * 1024
EXPORT_FILES = ("config.json", "model.safetensors", "training.json")


def copy_export(export: Path, staging: Path, attempts: int = 5) -> dict[str, Any]:
    """Copy the export's files; retry if the trainer replaced the export while we copied."""
    for _ in range(attempts):
        before = (export / "training.json").read_text()
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        for name in EXPORT_FILES:
            shutil.copy2(export / name, staging / name)
        if (export / "training.json").read_text() == before == (staging / "training.json").read_text():
            return json.loads(before)
        time.sleep(2)
    raise RuntimeError(f"{export} kept changing while it was copied; try again")


def training_command(options: dict[str, Any]) -> str:
    """The ``smapgan train`` command line that reproduces the run (non-default flags only)."""
    from smapgan.train.options import TrainOptions, flag_name, upgrade

    options = upgrade(options)  # training.json files written before the model options took the release's names
    defaults = TrainOptions()
    args = ["smapgan", "train"]
    for f in dataclasses.fields(TrainOptions):
        if f.name not in options or options[f.name] == getattr(defaults, f.name) or f.name == "resume":
            continue
        value = options[f.name]
        if isinstance(value, bool):
            args.append(flag_name(f.name) if value else "--no-" + flag_name(f.name)[2:])
        elif value is not None:
            args += [flag_name(f.name), str(value)]
    return shlex.join(args)


def last_metrics(run: Path, step: int) -> dict[str, Any]:
    """The run's last logged validation MSE at or before ``step`` (from metrics.jsonl)."""
    path = run / "metrics.jsonl"
    found: dict[str, Any] = {}
    if not path.is_file():
        return found
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("step", 0) <= step and "val/mse" in row:
            found = {"step": row["step"], "val_mse": row["val/mse"]}
    return found


def fit_prior(model_dir: Path, data: Path) -> None:
    """``smapgan prior fit`` on the training split (a folder of symlinks), in place."""
    import tempfile

    from smapgan.cli import main as smapgan_main

    with tempfile.TemporaryDirectory(prefix="smapgan-prior-") as tmp:
        for row in evaluate_model.read_rows(data):
            if row["split"] == "train":
                (Path(tmp) / f"{row['source']}_{Path(row['file']).name}").symlink_to((data / row["file"]).resolve())
        if smapgan_main(["prior", "fit", "--model", str(model_dir), "--data", tmp]) != 0:
            raise RuntimeError("smapgan prior fit failed")


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def data_section(figures: dict[str, Any], rows: Sequence[dict[str, Any]]) -> list[str]:
    """The card's data paragraph: every set with its license as the package states it, and the splits."""
    from emoji_dataset import SETS

    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        counts.setdefault(row["source"], {}).setdefault(row["split"], 0)
        counts[row["source"]][row["split"]] += 1
    data = figures["data"]
    lines = [
        f"{data['train_images']} training images, {data['val_images']} held-out images of emoji never trained on "
        f"(in any style) and {data.get('style_images', 0)} images of a style never trained on "
        f"({', '.join(data.get('style', [])) or 'none'}): the face emoji (smileys, cat faces, animal faces) of "
        f"{len(counts)} openly licensed sets, framed alike and composited on white (`scripts/emoji_dataset.py`; "
        "vector sets rendered with resvg):",
        "",
        "| set | npm package | license (as the package states it) | attribution | train / held-out / style |",
        "|---|---|---|---|---|",
    ]
    for source, split in counts.items():
        info = SETS[source]
        lines.append(
            f"| {info.title} | `{info.spec}` | {info.license} | {info.attribution} | "
            f"{split.get('train', 0)} / {split.get('val', 0)} / {split.get('style', 0)} |"
        )
    lines += [
        "",
        "Apple, Facebook and Samsung emoji are not openly licensed, and OpenMoji is CC-BY-SA (ShareAlike would "
        "bind the weights): none was used. An emoji is held out in every set at once (the split hashes the code "
        "point), so held-out figures measure emoji the model never saw in any style; the held-out style measures "
        "a design it never saw.",
        "",
        "The weights are released under the Apache License 2.0, like smapgan. They were trained on the images "
        "above: keep the attributions with the weights, and with images you publish that reproduce emoji designs.",
        "",
    ]
    return lines


def comparison_section(summary: dict[str, Any] | None) -> list[str]:
    """The side-by-side configuration runs (scripts/train_default_model.sh) that chose this model."""
    if not summary:
        return []
    lines = [
        "## How the configuration was chosen",
        "",
        f"Six configurations trained side by side on one GPU for {summary['train_seconds'] / 60:.1f} minutes of "
        "wall time each (`scripts/train_default_model.sh`; the processes time-sliced the GPU, so each saw few "
        "images), then measured by `scripts/evaluate_model.py`:",
        "",
        "| run | arguments | steps | images seen | held-out MSE | held-out style MSE | Table 4 w+ MSE_src / MSE_ref |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in summary["ranking"]:
        result = summary["results"][name]
        speed = result.get("speed", {})
        fig = result.get("figures")
        if fig:
            rec, edit = fig["reconstruction"], fig["local_editing"]["w+"]
            cells = (f"{rec['val']['mse']:.4f} | {rec.get('style', {}).get('mse', float('nan')):.4f} | "
                     f"{edit['mse_src']:.4f} / {edit['mse_ref']:.4f}")
        else:
            cells = "no export yet | | "
        lines.append(f"| {name} | `{summary['candidates'][name]}` | {speed.get('step')} | "
                     f"{speed.get('speed/images_seen')} | {cells} |")
    lines += [
        "",
        "16x16 stylemaps reconstructed better than 8x8 at equal time (the 8x8 run's reconstruction loss was higher "
        "throughout and it had no export by the end), the 128-wide network better than the 64-wide one, and "
        "adaptive augmentation without `--augment-rec` best of the three 16x16/128 variants at this length; "
        "128 px was too slow to compare in the time. The winner was then trained alone "
        "(`scripts/train_default_model_long.sh`).",
        "",
    ]
    return lines


def direction_grids_section(directions: list[dict[str, Any]]) -> list[str]:
    """Each shipped direction on 8 held-out faces (columns: strength 0, 1 (the default), 1.5, 2, -1)."""
    if not directions:
        return []
    lines = [
        f"Each direction on {emoji_directions.GRID_FACES} held-out faces, through the semantic edit op; columns: "
        f"strength {', '.join(f'{s:g}' for s in (0.0, *emoji_directions.GRID_STRENGTHS))} (1 is the op's "
        f"default; its slider stops at +-{emoji_directions.MAX_STRENGTH:g}, where artifacts start):",
        "",
    ]
    for d in directions:
        lines += [f"`{d['name']}`:", "", f"![{d['name']}]({emoji_directions.grid_file(d['name'])})", ""]
    return lines


def model_card(
    figures: dict[str, Any], directions: list[dict[str, Any]], training: dict[str, Any], run_metrics: dict[str, Any],
    config: dict[str, Any], weights_bytes: int, trained_on: str | None = None,
    data_rows: Sequence[dict[str, Any]] = (), comparison: dict[str, Any] | None = None,
    previous_comparison: str | None = None,
) -> str:
    """README.md of the bundled model: what it is, the data and licenses, how it was made, how good it is."""
    options = training.get("options", {})
    rec, edit = figures["reconstruction"], figures["local_editing"]
    val, train = rec["val"], rec["train"]
    goals = figures["goals"]
    step, seen = training.get("step", 0), training.get("images_seen", 0)
    lines = [
        "---",
        "library_name: smapgan",
        "license: apache-2.0",
        "pipeline_tag: image-to-image",
        "tags:",
        "- stylemapgan",
        "- gan",
        "- image-editing",
        "- emoji",
        "---",
        "",
        "# smapgan default model: emoji StyleMapGAN",
        "",
        f"A small StyleMapGAN (Kim et al., CVPR 2021, [arXiv 2104.14754](https://arxiv.org/abs/2104.14754)) trained "
        f"on open-licensed emoji faces at {config['size']} px with an {config['latent_spatial_size']}x"
        f"{config['latent_spatial_size']}x{config['latent_channel_size']} stylemap. It ships inside the `smapgan` "
        "package (`smapgan.DEFAULT_MODEL`) so that `python app.py`, `smapgan edit` and the tests work offline on a "
        "CPU: transplant one emoji's eyes onto another, morph one face into another, or push a semantic direction.",
        "",
        "```python",
        "import smapgan",
        "model = smapgan.StyleMapGAN.from_pretrained(smapgan.DEFAULT_MODEL)",
        "```",
        "",
        "![held-out reconstructions and every op on its default example](figure.png)",
        "",
        "## Files",
        "",
        f"* `model.safetensors` ({weights_bytes / 1e6:.1f} MB): the EMA encoder and generator (`encoder`, "
        "`generator`) and the training discriminator (`discriminator`). The discriminator is not needed for "
        "editing; it is kept because it costs little at this size and lets the model be fine-tuned or used as "
        "a realism score.",
        "* `config.json`: the network configuration; `training.json`: the trainer's options, step and images seen.",
        "* `directions.safetensors`: the semantic directions below.",
        "* `prior.safetensors`: the encoded prior that random generation samples (below); its basis in float16.",
        "* `figures.json`: every figure of this card, with the held-out pairs and per-image errors.",
        "* `figure.png`, `samples_*.png`, `nearest_prior.png`, `style_mix.png`, `direction_*.webp`: this card's "
        "pictures (`scripts/build_default_model.py`).",
        "",
        "## Training data and licenses",
        "",
        *data_section(figures, data_rows),
        "## Training",
        "",
        f"{step:,} steps, {seen:,} images seen (batch {options.get('batch', '?')}), EMA decay "
        f"{options.get('ema_decay', '?')}"
        + (
            "; no perceptual (LPIPS) loss: its VGG16 weights could not be downloaded where it was trained. "
            if not options.get("lambda_perceptual", 1.0)
            else ". "
        )
        + (f"Trained on {trained_on}. " if trained_on else "")
        + "The training folder is the `train` split of `metadata.jsonl` (every set but the held-out style), "
        "the validation folder the `val` split:",
        "",
        "```bash",
        training_command(options),
        "```",
        "",
        "Rebuild this folder from a run's latest export (directions, figures, card, figure):",
        "",
        "```bash",
        "python scripts/build_default_model.py --run RUN_DIR --data EMOJI_DIR",
        "```",
        "",
        *(comparison_section(comparison) if comparison or not previous_comparison
          else previous_comparison.rstrip("\n").split("\n") + [""]),
        "## Figures",
        "",
        "Images in [-1, 1]; MSE on that scale (the paper's convention), PSNR in dB for a peak-to-peak of 2.",
        "",
        "Reconstruction, `decode(encode(x))`:",
        "",
        "| split | images | MSE | PSNR | goal |",
        "|---|---|---|---|---|",
        f"| held-out | {val['count']} | {val['mse']:.4f} | {val['psnr']:.2f} dB | MSE <= {goals['val_mse']} |",
        f"| training | {train['count']} | {train['mse']:.4f} | {train['psnr']:.2f} dB | |",
    ]
    if "style" in rec:
        style = rec["style"]
        lines.append(f"| held-out style ({', '.join(figures['data']['style'])}) | {style['count']} | "
                     f"{style['mse']:.4f} | {style['psnr']:.2f} dB | MSE <= {goals.get('style_mse', 0.03)} |")
    for source, part in val["by_source"].items():
        lines.append(f"| held-out, {source} | {part['count']} | {part['mse']:.4f} | {part['psnr']:.2f} dB | |")
    if run_metrics:
        lines += ["", f"(The trainer's own validation MSE at step {run_metrics['step']}: "
                      f"{run_metrics['val_mse']:.4f}.)"]
    masks = edit["masks"]
    lines += [
        "",
        f"Local editing (paper Table 4): {len(edit['pairs'])} fixed (source, reference) pairs of held-out faces "
        f"(seed {edit['seed']}, same set) x {len(masks)} masks ({', '.join(masks)}); MSE_src on the unmasked "
        "pixels against the source, MSE_ref on the masked pixels against the reference. The paper reports "
        "0.039 / 0.105 on CelebA-HQ.",
        "",
        "| blend | MSE_src | MSE_ref | " + " | ".join(masks) + " |",
        "|---|---|---|" + "---|" * len(masks),
    ]
    for space in ("w+", "w"):
        e = edit[space]
        per = " | ".join(f"{e['per_mask'][m]['mse_src']:.3f} / {e['per_mask'][m]['mse_ref']:.3f}" for m in masks)
        lines.append(f"| {space} | {e['mse_src']:.4f} | {e['mse_ref']:.4f} | {per} |")
    lines += [f"| goal | <= {goals['mse_src']} | <= {goals['mse_ref']} | |" + " |" * (len(masks) - 1)]
    lines += [
        "",
        "## Semantic directions",
        "",
        "`heart_eyes` is not shipped: learned from every heart-eyed emoji of every training style (20 images) it "
        "put pink smudges over the face at any strength (transplant heart eyes with Local transplant instead). "
        f"The semantic edit slider stops at +-{emoji_directions.MAX_STRENGTH:g}: past it the directions smear colour.",
        "",
        "Learned with `smapgan direction` from the training split's emoji, chosen by short name "
        "(`scripts/emoji_directions.py`). Negatives are matched to the positives, so that the two sides differ "
        "mostly in the attribute. Directions have unit norm per stylemap cell; *strength* is the strength that "
        "moves the average negative onto the average positive. Separation: the fraction of images on their side "
        "of the midpoint between the two training means (held-out: only emoji whose names put them on a side).",
        "",
        "| direction | what | method | training images (+/-) | training separation | held-out separation "
        "| leave-one-emoji-out, mean / logistic | strength |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in directions:
        t, v = d["train"], d["val"]
        held = f"{v['separation']:.0%} of {v['positive_images']}+/{v['negative_images']}-" if v else "n/a"
        loo = d.get("leave_one_emoji_out")
        loo_text = f"{loo['mean']:.0%} / {loo['logistic']:.0%}" if loo else "n/a"
        lines.append(
            f"| `{d['name']}` | {d['about']} | {d['method']} | {t['positive_images']}/{t['negative_images']} | "
            f"{t['separation']:.0%} | {held} | {loo_text} | {d['strength_neg_to_pos']:.2f} |"
        )
    if not directions and training.get("directions_summary"):
        lines += ["", "```", *training["directions_summary"], "```"]
    lines += [
        "",
        f"Method: the difference of class means when a side has fewer than {emoji_directions.MIN_EMOJI_FOR_LOGISTIC} "
        "distinct emoji (the two renderings of an emoji are near-duplicates), the logistic normal otherwise. "
        "Leave-one-emoji-out: balanced accuracy on each training emoji's images of a direction learned without it.",
        "",
        *direction_grids_section(directions),
        *evaluate_prior.card_section(figures["generation"]),
        "## Style mix",
        "",
        "The Style mix op on pairs whose layouts differ (first image, second image, `coarse`, `fine`). Measured "
        "on this model by `scripts/style_mix_levels.py` (24 ordered smiley/animal pairs, each level group taken "
        "from the second image): the 16 and 32 px levels carry most of the colour (the result's face colour is "
        "nearer the second image's in 19 of 24 pairs) while the eyes and mouth stay the first's; the 64 px "
        "levels carry the eyes and mouth and part of the colour. No group of levels carries the head's outline "
        "alone: where a smiley's and an animal's silhouettes differ (ears), the result follows each about half "
        "the time, and the to-RGB level moves outline and colour together. So `coarse` gives the first image's "
        "eyes and mouth in the second's colours, `fine` the second image's eyes and mouth; neither carries the "
        "outline. Through the op, a round smiley mixed with a cat or a dog keeps a round silhouette in both modes "
        "and either order (IoU with the smiley's 0.93-0.99, with the animal's 0.76-0.79; `tests/test_style_mix.py`); "
        "`fine` may draw the animal's ears inside it (rows 2 and 3 below).",
        "",
        "![style mix](style_mix.png)",
        "",
        "## Limitations",
        "",
        f"A {config['size']} px model trained on {figures['data']['train_images']} images ({seen:,} seen in all): "
        "compare the figures above with the goals before relying on fine details (tears, small hands, text), "
        "and expect random samples to be rougher than reconstructions. It is a demo of the editing operations, "
        "not a general image model.",
        "",
    ]
    return "\n".join(lines)


COMPARISON = "## How the configuration was chosen"
REFRESHED_SECTIONS = ("## Files", "## Semantic directions", "## Random samples", "## Style mix")


def sections(card: str) -> dict[str, str]:
    """The card's text by ``## `` heading (the text before the first heading under "")."""
    found: dict[str, str] = {}
    heading = ""
    for line in card.splitlines(keepends=True):
        if line.startswith("## "):
            heading = line.rstrip("\n")
        found[heading] = found.get(heading, "") + line
    return found


def splice(card: str, new_card: str, headings: Sequence[str]) -> str:
    """``card`` with the listed sections taken from ``new_card`` (the others, hand notes included, kept)."""
    new = sections(new_card)
    return "".join(new.get(h, text) if h in headings else text for h, text in sections(card).items())


def refresh(model_dir: Path, data: Path, figure: Path | None, refit_prior: bool,
            counted: dict[str, int | str] | None = None) -> dict[str, Any]:
    """Rebuild what depends on the prior and the ops, keeping the weights and directions of ``model_dir``.

    For a shipped model without its training run: optionally re-fits the prior, then redraws the
    direction, sample and style-mix grids and the figure, re-measures random generation, and
    replaces the card's sections in REFRESHED_SECTIONS (the rest of the card is kept as it is).
    ``counted``: clean faces counted by eye on the sample grids, by sampler, for the card.
    """
    staging = model_dir.with_name("." + model_dir.name + ".staging")
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(model_dir, staging)
    for stale in staging.glob("direction_*.png"):
        stale.unlink()
    if refit_prior:
        fit_prior(staging, data)
    emoji_directions.save_grids(staging, data)
    figures = json.loads((staging / "figures.json").read_text())
    figures["generation"] = evaluate_prior.evaluate(staging, data, staging, with_compare=False)
    if counted:
        figures["generation"]["clean_faces_counted"] = counted
    (staging / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    refine = [f for f, _ in make_readme_figure.data_held_out_files(data, 3)]  # as make_readme_figure.py's default
    evaluate_prior.palette(make_readme_figure.make_figure(staging, data, refine_files=refine)).save(
        staging / "figure.png", optimize=True)  # 256 colours: the folder has a size budget
    generated = model_card(
        figures, figures.get("directions", []), json.loads((staging / "training.json").read_text()), {},
        json.loads((staging / "config.json").read_text()), (staging / "model.safetensors").stat().st_size,
        data_rows=evaluate_model.read_rows(data),
    )
    (staging / "README.md").write_text(splice((staging / "README.md").read_text(), generated, REFRESHED_SECTIONS))
    return install(staging, model_dir, figure, figures)


def install(staging: Path, out: Path, figure: Path | None, figures: dict[str, Any]) -> dict[str, Any]:
    """Check the budget, then swap ``staging`` in for ``out``; copy the figure."""
    for path in staging.iterdir():
        path.chmod(0o644)  # safetensors writes 0600 files; the package ships them readable
    size = folder_bytes(staging)
    if size > MAX_MODEL_BYTES:
        raise RuntimeError(f"the model folder is {size / 1e6:.1f} MB, over the {MAX_MODEL_BYTES / 1e6:.0f} MB budget")
    old = out.with_name("." + out.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        out.rename(old)
    staging.rename(out)
    if old.exists():
        shutil.rmtree(old)
    if figure is not None:
        figure.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / "figure.png", figure)
    print(f"wrote {out} ({size / 1e6:.1f} MB)" + (f" and {figure}" if figure else ""))
    return figures


def build(run: Path, data: Path, out: Path, figure: Path | None, method: str = "auto",
          trained_on: str | None = None, comparison: Path | None = None,
          measured: Path | None = None, directions_from: Path | None = None) -> dict[str, Any]:
    """Rebuild ``out`` from the run's export; returns the figures."""
    export = run / "model"
    if not (export / "model.safetensors").is_file():
        raise FileNotFoundError(f"{export} has no export yet (the trainer writes one every --export-every steps)")
    staging = out.with_name("." + out.name + ".staging")
    training = copy_export(export, staging)
    if directions_from is not None and (directions_from / "directions.txt").is_file():
        training["directions_summary"] = (directions_from / "directions.txt").read_text().splitlines()
    print(f"export of step {training.get('step')} ({training.get('images_seen')} images seen) copied")
    if directions_from is not None:  # directions already learned for this very export
        shutil.copy2(directions_from / "directions.safetensors", staging / "directions.safetensors")
        found = directions_from / "directions.json"
        directions = json.loads(found.read_text()) if found.is_file() else []
    else:
        directions = emoji_directions.learn(staging, data, method=method)
    for d in directions:
        print(emoji_directions.describe(d))
    emoji_directions.save_grids(staging, data)
    fit_prior(staging, data)
    # `smapgan direction` saves through save_pretrained, which writes a generic card: ours replaces it
    if measured is not None:  # figures scripts/train_candidates.py measured on this export (same evaluate())
        summary = json.loads(measured.read_text())
        figures = summary["results"][summary["ranking"][0]]["figures"]
    else:
        figures = evaluate_model.evaluate(staging, data)
    figures["directions"] = directions
    print(evaluate_model.summary(figures))
    (staging / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    image = make_readme_figure.make_figure(staging, data)
    evaluate_prior.palette(image).save(staging / "figure.png", optimize=True)  # 256 colours: the size budget
    figures["generation"] = evaluate_prior.evaluate(staging, data, staging, with_compare=False)
    (staging / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    config = json.loads((staging / "config.json").read_text())
    card = model_card(
        figures, directions, training, last_metrics(run, int(training.get("step", 0))), config,
        (staging / "model.safetensors").stat().st_size, trained_on, evaluate_model.read_rows(data),
        json.loads(comparison.read_text()) if comparison else None,
        # without a new comparison, the configuration table of the model this one continues is kept
        previous_comparison=sections((out / "README.md").read_text()).get(COMPARISON)
        if (out / "README.md").is_file() else None,
    )
    (staging / "README.md").write_text(card)
    return install(staging, out, figure, figures)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="training run folder (its model/ export is used)")
    parser.add_argument("--refresh", action="store_true",
                        help="no run: keep --out's weights and directions, redraw its grids, figure and card sections")
    parser.add_argument("--refit-prior", action="store_true", help="with --refresh: fit the prior again")
    parser.add_argument("--counted", type=json.loads, default=None,
                        help="with --refresh: clean faces counted by eye on the sample grids (the same seeds give "
                             "the same grids as scripts/evaluate_prior.py --grids), as JSON by sampler, e.g. "
                             "'{\"prior\": \"10-16\", \"prior, best of 4\": \"17-23\"}'")
    parser.add_argument("--data", required=True, help="emoji folder (metadata.jsonl, images/)")
    parser.add_argument("--out", default=str(REPO / "smapgan" / "assets" / "default_model"),
                        help="model folder to (re)write (default: the package's bundled model)")
    parser.add_argument("--figure", default=str(REPO / "docs" / "figure.png"),
                        help="where the README figure goes (default: %(default)s); '' to skip")
    parser.add_argument("--method", choices=("auto", "mean", "logistic"), default="auto",
                        help="direction method (see scripts/emoji_directions.py)")
    parser.add_argument("--trained-on", default=None,
                        help="the hardware and schedule, for the model card (e.g. 'a 2-core CPU, 5 hours')")
    parser.add_argument("--comparison", default=None,
                        help="summary.json of scripts/train_candidates.py, for the card's configuration table")
    parser.add_argument("--measured", default=None,
                        help="summary.json of scripts/train_candidates.py whose best run is this export: reuse its "
                             "figures instead of measuring again (slow on a small CPU)")
    parser.add_argument("--directions-from", default=None,
                        help="a folder with directions.safetensors and directions.json learned for this export")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    figure = Path(args.figure) if args.figure else None
    if args.refresh:
        refresh(Path(args.out), Path(args.data), figure, args.refit_prior, args.counted)
        return 0
    if not args.run:
        parser.error("--run is required (or --refresh)")
    build(Path(args.run), Path(args.data), Path(args.out), Path(args.figure) if args.figure else None, args.method,
          args.trained_on, Path(args.comparison) if args.comparison else None,
          Path(args.measured) if args.measured else None, Path(args.directions_from) if args.directions_from else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
