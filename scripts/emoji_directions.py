"""Learn the bundled model's semantic directions from emoji keywords.

    python scripts/emoji_directions.py --data /work/data/emoji --model smapgan/assets/default_model

For each direction, positive and negative image folders (symlinks in a temporary
folder) are built from the emoji short names of the training split, both sources,
and ``smapgan direction`` learns the direction and stores it with the model. Then
each direction is measured: the fraction of training and of held-out images that
fall on the right side of it, and a leave-one-emoji-out accuracy of both methods.

Negatives are *matched* to the positives (sad or laughing faces without tears against
tears, frowning faces against smiling ones) so that the two
sets differ mostly in the attribute itself: with a handful of emoji per side there
is too little data for a classifier to discount confounders on its own.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch


@dataclass(frozen=True)
class DirectionSpec:
    """A direction by emoji short names; an emoji whose short names hit neither set is left out."""

    name: str
    positives: frozenset[str]
    negatives: frozenset[str]
    about: str


SMILING = {
    "grinning", "smiley", "smile", "grin", "laughing", "sweat_smile", "slightly_smiling_face", "blush",
    "relaxed", "innocent", "smiley_cat", "smile_cat",
}
FROWNING = {
    "frowning", "white_frowning_face", "slightly_frowning_face", "worried", "disappointed", "pensive",
    "confused", "anguished", "persevere", "confounded", "weary", "tired_face", "disappointed_relieved",
    "cold_sweat", "sweat", "fearful", "unamused",
}
TEARS = {
    "joy", "rolling_on_the_floor_laughing", "cry", "sob", "joy_cat", "crying_cat_face", "smiling_face_with_tear",
    "face_holding_back_tears",
}
# No `heart_eyes` direction: learned from every heart-eyed emoji of every training style (20 images),
# it put pink smudges all over the face at any strength and hearts nowhere (issue 25). Heart eyes
# transplant well instead: local_transplant with heart_eyes.png's eyes as the reference.
OPEN_MOUTH = {
    "open_mouth", "hushed", "astonished", "scream", "scream_cat", "fearful", "anguished", "frowning", "cold_sweat",
    "exploding_head",
}
CLOSED_MOUTH = {
    "neutral_face", "expressionless", "relieved", "smirk", "unamused", "slightly_smiling_face",
    "slightly_frowning_face", "pensive", "confused", "worried", "blush", "relaxed", "disappointed", "smirk_cat",
}

DIRECTIONS: tuple[DirectionSpec, ...] = (
    DirectionSpec("smile", frozenset(SMILING), frozenset(FROWNING), "smiling mouths vs frowning ones"),
    DirectionSpec(
        "tears",
        frozenset(TEARS),
        # faces with the same moods (laughing, smiling, sad, pleading) but no tears
        frozenset({"laughing", "grin", "smile_cat", "slightly_smiling_face", "blush", "disappointed", "pensive",
                   "frowning", "anguished", "worried", "white_frowning_face", "slightly_frowning_face", "pleading_face",
                   "weary", "tired_face", "pouting_cat"}),
        "tears (of joy or sadness) vs the same moods without tears",
    ),
    DirectionSpec(
        "open_mouth", frozenset(OPEN_MOUTH), frozenset(CLOSED_MOUTH), "open, surprised mouths vs closed ones"
    ),
)

# A logistic normal needs enough distinct emoji per side to be more than noise: the two
# renderings (Noto, Twemoji) of one emoji are near-duplicates, so emoji are counted, not images.
# Below this the difference of class means is used (its leave-one-emoji-out accuracy is printed
# beside the logistic one as evidence).
MIN_EMOJI_FOR_LOGISTIC = 20


@dataclass
class Labelled:
    """Image files of one split with their labels (1 positive, 0 negative) and emoji ids (for grouping)."""

    files: list[Path] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def count(self, label: int) -> int:
        return sum(1 for y in self.labels if y == label)

    def emoji(self, label: int) -> int:
        return len({g for g, y in zip(self.groups, self.labels) if y == label})


def read_metadata(data: Path) -> list[dict[str, Any]]:
    """Rows of ``metadata.jsonl`` (one per image)."""
    with open(data / "metadata.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def label_of(row: dict[str, Any], spec: DirectionSpec) -> int | None:
    """1 for a positive, 0 for a negative, None for neither (or an emoji named on both sides)."""
    names = {s.lower() for s in row.get("short_names") or []}
    pos, neg = bool(names & spec.positives), bool(names & spec.negatives)
    if pos == neg:
        return None
    return 1 if pos else 0


def labelled(rows: Iterable[dict[str, Any]], spec: DirectionSpec, data: Path, split: str) -> Labelled:
    """The rows of ``split`` that the spec labels, in metadata order."""
    out = Labelled()
    for row in rows:
        label = label_of(row, spec)
        if row["split"] != split or label is None:
            continue
        out.files.append(data / row["file"])
        out.labels.append(label)
        out.groups.append(row["unified"])
        out.names.append((row.get("short_names") or [row["unified"]])[0])
    return out


def choose_method(train: Labelled, requested: str) -> str:
    """``auto``: logistic only when both sides have enough distinct emoji (see MIN_EMOJI_FOR_LOGISTIC)."""
    if requested != "auto":
        return requested
    enough = min(train.emoji(1), train.emoji(0)) >= MIN_EMOJI_FOR_LOGISTIC
    return "logistic" if enough else "mean"


def link_folders(root: Path, train: Labelled) -> tuple[Path, Path]:
    """positive/ and negative/ folders of symlinks named <source>_<file> (unique across sources)."""
    positive, negative = root / "positive", root / "negative"
    positive.mkdir(parents=True)
    negative.mkdir(parents=True)
    for path, label in zip(train.files, train.labels):
        folder = positive if label else negative
        (folder / f"{path.parent.name}_{path.name}").symlink_to(path.resolve())
    return positive, negative


def side_accuracy(stylemaps: torch.Tensor, labels: Sequence[int], direction: torch.Tensor, threshold: float) -> float:
    """Fraction of stylemaps on their label's side of ``threshold`` along ``direction``."""
    unit = direction.flatten() / direction.norm()
    scores = stylemaps.flatten(1) @ unit
    y = torch.tensor(labels, dtype=torch.bool)
    return float(((scores > threshold) == y).float().mean())


def midpoint(stylemaps: torch.Tensor, labels: Sequence[int], direction: torch.Tensor) -> float:
    """Threshold halfway between the two class means projected on the direction."""
    unit = direction.flatten() / direction.norm()
    scores = stylemaps.flatten(1) @ unit
    y = torch.tensor(labels, dtype=torch.bool)
    return float((scores[y].mean() + scores[~y].mean()) / 2)


def leave_one_emoji_out(stylemaps: torch.Tensor, labels: Sequence[int], groups: Sequence[str], method: str) -> float:
    """Balanced accuracy of predicting each emoji's images from a direction learned without that emoji."""
    from smapgan.latent.directions import learn_direction

    y = torch.tensor(labels, dtype=torch.bool)
    hits = {True: [], False: []}
    for group in sorted(set(groups)):
        held = torch.tensor([g == group for g in groups])
        rest_pos, rest_neg = stylemaps[~held & y], stylemaps[~held & ~y]
        if len(rest_pos) == 0 or len(rest_neg) == 0:
            continue
        fit = learn_direction(rest_pos, rest_neg, method)  # type: ignore[arg-type]
        threshold = midpoint(stylemaps[~held], [int(v) for v in y[~held]], fit.direction)
        unit = fit.direction.flatten() / fit.direction.norm()
        scores = stylemaps[held].flatten(1) @ unit
        for score, label in zip(scores.tolist(), y[held].tolist()):
            hits[label].append((score > threshold) == label)
    rates = [sum(h) / len(h) for h in hits.values() if h]
    return sum(rates) / len(rates)


def learn(
    model_dir: str | Path,
    data: str | Path,
    specs: Sequence[DirectionSpec] = DIRECTIONS,
    method: str = "auto",
    cv: bool = True,
) -> list[dict[str, Any]]:
    """Learn every direction with ``smapgan direction`` into ``model_dir``; return their measurements."""
    from smapgan.commands import direction as direction_command

    data, model_dir = Path(data), Path(model_dir)
    rows = read_metadata(data)
    results = []
    for spec in specs:
        train, val = labelled(rows, spec, data, "train"), labelled(rows, spec, data, "val")
        if not train.count(1) or not train.count(0):
            raise ValueError(f"direction {spec.name!r}: no positive or no negative training image in {data}")
        chosen = choose_method(train, method)
        with tempfile.TemporaryDirectory(prefix=f"smapgan-{spec.name}-") as tmp:
            positive, negative = link_folders(Path(tmp), train)
            parser = argparse.ArgumentParser()
            direction_command.add_arguments(parser)
            args = parser.parse_args([
                "--positive", str(positive), "--negative", str(negative), "--name", spec.name,
                "--model", str(model_dir), "--out", str(model_dir), "--method", chosen, "--overwrite",
            ])
            direction_command.run(args)
        results.append(measure(model_dir, spec, chosen, train, val, cv))
    return results


def measure(
    model_dir: Path, spec: DirectionSpec, method: str, train: Labelled, val: Labelled, cv: bool
) -> dict[str, Any]:
    """Separation of the stored direction on the training and held-out images it applies to."""
    from smapgan import StyleMapGAN
    from smapgan.commands.direction import encode_files

    model = StyleMapGAN.from_pretrained(model_dir)
    direction = model.directions[spec.name]
    s_train = encode_files(model, train.files, 32)
    threshold = midpoint(s_train, train.labels, direction)
    y = torch.tensor(train.labels, dtype=torch.bool)
    # the strength that moves the average negative onto the average positive along the direction
    strength = float((s_train[y].mean(0) - s_train[~y].mean(0)).flatten() @ direction.flatten()) / float(
        direction.norm() ** 2
    )
    result: dict[str, Any] = {
        "name": spec.name,
        "about": spec.about,
        "method": method,
        "positives": sorted(spec.positives),
        "negatives": sorted(spec.negatives),
        "train": {
            "positive_images": train.count(1), "negative_images": train.count(0),
            "positive_emoji": train.emoji(1), "negative_emoji": train.emoji(0),
            "separation": side_accuracy(s_train, train.labels, direction, threshold),
        },
        "val": None,
        "strength_neg_to_pos": strength,
        "norm": float(direction.norm()),
    }
    if val.files:
        s_val = encode_files(model, val.files, 32)
        result["val"] = {
            "positive_images": val.count(1), "negative_images": val.count(0),
            "separation": side_accuracy(s_val, val.labels, direction, threshold),
            "emoji": sorted(set(val.names)),
        }
    if cv:
        result["leave_one_emoji_out"] = {
            m: leave_one_emoji_out(s_train, train.labels, train.groups, m) for m in ("mean", "logistic")
        }
    return result


def describe(result: dict[str, Any]) -> str:
    """One line per direction for the console."""
    t, v = result["train"], result["val"]
    text = (
        f"{result['name']:<11} {result['method']:<8} train {t['positive_images']}+/{t['negative_images']}- "
        f"({t['positive_emoji']}/{t['negative_emoji']} emoji) separation {t['separation']:.0%}"
    )
    if v:
        text += f"; val {v['positive_images']}+/{v['negative_images']}- separation {v['separation']:.0%}"
    else:
        text += "; val: no labelled held-out image"
    if "leave_one_emoji_out" in result:
        loo = result["leave_one_emoji_out"]
        text += f"; leave-one-emoji-out mean {loo['mean']:.0%} logistic {loo['logistic']:.0%}"
    return text + f"; strength {result['strength_neg_to_pos']:.2f} moves negatives to positives"


GRID_FACES = 8
GRID_STRENGTHS = (0.5, 1.0, 1.5, -1.0)  # within the op's slider (MAX_STRENGTH): the op refuses more
# The semantic edit op's slider limit (ops/semantic_edit.py): colour fringes start past it (grids in the card).
MAX_STRENGTH = 1.5


def held_out_faces(data: Path, count: int = GRID_FACES) -> list[Path]:
    """``count`` held-out smiley faces (distinct emoji, the training styles alternating), for the grids."""
    rows = [r for r in read_metadata(data) if r["split"] == "val" and r["subcategory"].startswith("face-")]
    by_emoji: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r["unified"], r["source"])):
        by_emoji.setdefault(row["unified"], []).append(row)
    picked = [renderings[i % len(renderings)] for i, renderings in enumerate(by_emoji.values())][:count]
    return [data / r["file"] for r in picked]


def direction_grid(model: Any, faces: Sequence[Path], name: str, strengths: Sequence[float]) -> Any:
    """One row per face: the reconstruction, then the face pushed along ``name`` at each strength (semantic_edit)."""
    from PIL import Image

    from smapgan.ops import OpContext, discover

    op, ctx = discover(paths=[])["semantic_edit"], OpContext(model)
    side = model.config.size * 2
    canvas = Image.new("RGB", (side * (len(strengths) + 1), side * len(faces)), (255, 255, 255))
    from smapgan.intake import images as imageio

    for r, face in enumerate(faces):
        picture = ctx.picture(face)
        images = [op.run(ctx, original=picture, direction=name, strength=s)["image"] for s in [0.0, *strengths]]
        for c, image in enumerate(images):
            tile = imageio.tensor_to_image(image).resize((side, side), Image.Resampling.NEAREST)
            canvas.paste(tile, (c * side, r * side))
    return canvas


def grid_file(name: str) -> str:
    """The card's grid of a direction: lossy WebP, a few tens of kB (the model folder has a size budget)."""
    return f"direction_{name}.webp"


def save_grids(model_dir: Path, data: Path) -> None:
    """:func:`grid_file` in the model folder for every stored direction (the card shows them)."""
    from smapgan import StyleMapGAN

    model = StyleMapGAN.from_pretrained(model_dir)
    faces = held_out_faces(Path(data))
    for name in sorted(model.directions):
        grid = direction_grid(model, faces, name, GRID_STRENGTHS)
        grid.save(Path(model_dir) / grid_file(name), quality=90, method=6)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="emoji folder (metadata.jsonl, images/)")
    parser.add_argument("--model", required=True, help="model folder; the directions are stored in it")
    parser.add_argument("--method", choices=("auto", "mean", "logistic"), default="auto",
                        help=f"auto: mean below {MIN_EMOJI_FOR_LOGISTIC} emoji per side, else logistic")
    parser.add_argument("--only", nargs="*", help="learn only these directions")
    parser.add_argument("--no-cv", action="store_true", help="skip the leave-one-emoji-out comparison")
    parser.add_argument("--json", help="write the measurements here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    specs = [s for s in DIRECTIONS if not args.only or s.name in args.only]
    results = learn(args.model, args.data, specs, args.method, cv=not args.no_cv)
    for result in results:
        print(describe(result))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
