"""``smapgan data``: prepare training data for the bundled models (``smapgan data emoji --out DIR``)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the dataset sub-commands; nothing heavy is imported until :func:`run`."""
    sub = parser.add_subparsers(dest="data_command", metavar="DATASET", required=True)
    emoji = sub.add_parser(
        "emoji",
        help="emoji faces of nine openly licensed styles from npm, framed alike on white",
        description=(
            "Fetch each set's npm package with `npm pack` (vector sets are rendered at any size) and "
            "write OUT/images/<source>/<unified>.png, OUT/metadata.jsonl and OUT/LICENSES.md. "
            "Apple, Facebook, Samsung and OpenMoji (CC-BY-SA) images are never used."
        ),
    )
    emoji.add_argument("--out", required=True, help="output directory")
    emoji.add_argument(
        "--cache",
        default="~/.cache/smapgan/npm",
        help="where npm tarballs are kept and reused (default: %(default)s)",
    )
    emoji.add_argument(
        "--categories",
        default=None,
        help=(
            "comma-separated GROUP[:NAME] globs; GROUP matches the category or subcategory, NAME any "
            "short name or the Unicode name as a short name (default: face-*,cat-face,animal-mammal:*_face)"
        ),
    )
    emoji.add_argument(
        "--sources",
        default="noto,noto-v1,twemoji,fluent-emoji-flat,fluent-color,fluent-3d,fxemoji,emojione,streamline-emojis",
        help="image sets, comma-separated; also the PNG sets google and twitter (default: %(default)s)",
    )
    emoji.add_argument(
        "--holdout-style",
        default=None,
        help="one source held out whole (split 'style'), for figures on a style never trained on",
    )
    emoji.add_argument("--size", type=int, default=64, help="output size in pixels (default: %(default)s)")
    emoji.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="fraction of emoji (not images) held out, by a hash of the code point (default: %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen dataset; user errors print one message and return 2."""
    if getattr(args, "data_command", None) != "emoji":
        print(f"smapgan data: unknown dataset {getattr(args, 'data_command', None)!r}", file=sys.stderr)
        return 2
    from smapgan.data import emoji

    try:
        sources = emoji.parse_sets(args.sources)
        tarballs = emoji.fetch_tarballs(sources, args.cache)
        png_sets = [s for s in sources if emoji.SETS[s].layout == "datasource"]
        catalogue = tarballs[png_sets[0]] if png_sets else emoji.fetch_catalogue(args.cache)
        records = emoji.build_dataset(
            tarballs,
            args.out,
            selectors=emoji.parse_selectors(args.categories),
            size=args.size,
            val_fraction=args.val_fraction,
            catalogue=catalogue,
            holdout_style=args.holdout_style,
        )
    except (ValueError, emoji.EmojiDataError) as exc:
        print(f"smapgan data emoji: error: {exc}", file=sys.stderr)
        return 2
    print(emoji.summarize(records))
    print(f"wrote {args.out}/metadata.jsonl and {args.out}/LICENSES.md")
    return 0 if records else 1
