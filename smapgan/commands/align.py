"""``smapgan align PHOTO --size N --out CROP.png``: the FFHQ-aligned crop of a face, and its transform.

The transform (the crop's corners in the photo, its size, the photo's size, the face used)
is written as JSON beside the crop (``CROP.json``), so that a result made from the crop can
be put back into the photo later (:func:`smapgan.intake.align.paste_back`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photo", help="the photo (any image file)")
    parser.add_argument("--size", type=int, default=256, metavar="N", help="side of the crop in pixels (default: 256)")
    parser.add_argument("--out", required=True, metavar="CROP.png", help="the crop; the transform goes to CROP.json")
    parser.add_argument(
        "--align", choices=("face", "none"), default="face",
        help="face: FFHQ alignment (needs smapgan[faces]); none: the largest centered square",
    )
    parser.add_argument(
        "--face", type=int, default=0, metavar="I", help="which face when there are several (0: the largest and surest)"
    )


def run(args: argparse.Namespace) -> int:
    from ..intake.align import align_photo, open_photo

    if args.size < 8:
        raise ValueError(f"--size must be at least 8, got {args.size}")
    aligned = align_photo(
        open_photo(args.photo), args.size, align="center" if args.align == "none" else "face", face=args.face
    )
    if aligned.note:
        print(aligned.note, file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    aligned.crop.save(out)
    transform_path = aligned.transform.save(out.with_suffix(".json"), **aligned.face_info())
    print(f"wrote {out} and {transform_path}")
    return 0
