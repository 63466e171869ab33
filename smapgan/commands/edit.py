"""``smapgan edit OP ...``: run any registered op headless; one sub-command per op.

Images: ``--<input> FILE`` (repeatable for multi-image inputs, which also take the
singular, e.g. ``--reference``). Masks: ``--mask FILE`` is paired, in order, with
the given images that take a mask (any non-black or non-transparent pixel is
selected). Other inputs: ``--set key=value``. Outputs: the first image output to
``--out``; frames to ``<out stem>_<name>.gif``; numbers printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def _image_flags(item: Any) -> list[str]:
    flags = [f"--{item.name.replace('_', '-')}"]
    if item.count > 1 and item.name.endswith("s"):
        flags.append(f"--{item.name[:-1].replace('_', '-')}")
    return flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..ops import discover
    from ..ops.spec import ImageInput, ImageOutput

    registry = discover()
    sub = parser.add_subparsers(dest="op", metavar="OP", required=True)
    for found in registry.sorted():
        help_text = found.description.split(". ")[0]
        cmd = sub.add_parser(
            found.name,
            help=help_text,
            description=found.description,
            epilog="inputs:\n" + "\n".join("  " + line for line in found.usage().splitlines()),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        cmd.add_argument("--model", help="model folder or Hub repo id (default: the bundled model)")
        cmd.add_argument("--revision", help="Hub revision (branch, tag or commit)")
        for item in found.inputs:
            if isinstance(item, ImageInput):
                cmd.add_argument(
                    *_image_flags(item),
                    dest=f"image_{item.name}",
                    action="append" if item.count > 1 else "store",
                    required=not item.optional,
                    metavar="FILE",
                    help=item.title + (f" (up to {item.count})" if item.count > 1 else ""),
                )
        if any(i.mask != "none" for i in found.image_inputs):
            cmd.add_argument(
                "--mask", action="append", default=[], metavar="FILE",
                help="mask for the images that take one, in order (non-black/non-transparent = selected)",
            )
        keys = [i.name for i in found.inputs if not isinstance(i, ImageInput)]
        if keys:
            cmd.add_argument(
                "--set", action="append", default=[], metavar="KEY=VALUE", help=f"other inputs: {', '.join(keys)}"
            )
        if found.image_inputs:
            cmd.add_argument(
                "--refine-steps", type=int, default=0, metavar="N",
                help="refine each input image's stylemap by N optimisation steps before editing "
                "(0: the encoder alone; see smapgan.invert)",
            )
        has_image = any(isinstance(o, ImageOutput) for o in found.outputs)
        cmd.add_argument("--out", required=has_image, help="output image (PNG); frames go to <stem>_<name>.gif")
        cmd.set_defaults(_op=found)
    if registry.errors:
        parser.epilog = "broken plugins (skipped): " + "; ".join(str(e) for e in registry.errors)


def collect_values(found: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Op input values from parsed arguments: images with their masks paired in order, --set values."""
    from ..ops import OpError
    from ..ops.spec import ImageInput

    values: dict[str, Any] = {}
    masks = list(getattr(args, "mask", []) or [])
    for item in found.inputs:
        if not isinstance(item, ImageInput):
            continue
        given = getattr(args, f"image_{item.name}")
        files = given if isinstance(given, list) else ([given] if given else [])
        if len(files) > item.count:  # before any file is read
            raise OpError(f"{item.name} takes at most {item.count} images, got {len(files)}")
        pairs = []
        for path in files:
            mask = masks.pop(0) if item.mask != "none" and masks else None
            pairs.append((path, mask))
        values[item.name] = pairs if item.count > 1 else (pairs[0] if pairs else None)
    if masks:
        raise OpError(f"{len(masks)} --mask file(s) left over: there are fewer images that take a mask")
    keys = {i.name for i in found.inputs if not isinstance(i, ImageInput)}
    for setting in getattr(args, "set", []) or []:
        key, sep, value = setting.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in keys:
            raise OpError(f"--set {setting!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(keys))}")
        values[key] = value
    return values


def run(args: argparse.Namespace) -> int:
    from .. import StyleMapGAN, imageio
    from ..defaults import default_model_path
    from ..ops import OpContext
    from ..ops.inversion import Inversion
    from ..ops.spec import FramesOutput, ImageOutput, NumbersOutput

    found = args._op
    raw = collect_values(found, args)
    model = StyleMapGAN.from_pretrained(args.model or default_model_path(), revision=args.revision)
    found.parse_settings(raw, model)  # report a bad --set before decoding any image
    inversion = Inversion(steps=getattr(args, "refine_steps", 0) or 0)

    def progress(fraction: float, desc: str) -> None:
        if desc.startswith("refining") and sys.stderr.isatty():
            print(f"\r{desc}", end="\n" if fraction >= 1 else "", file=sys.stderr, flush=True)

    ctx = OpContext(model, progress=progress, inversion=inversion)

    def picture(pair: tuple[str, str | None]) -> Any:
        return ctx.picture(pair[0], pair[1])

    values = {
        name: ([picture(p) for p in v] if isinstance(v, list) else picture(v) if isinstance(v, tuple) else v)
        for name, v in raw.items()
    }
    result = found.run(ctx, **values)
    out = Path(args.out) if args.out else None
    wrote_image = False
    for output in found.outputs:
        value = result[output.name]
        if isinstance(output, ImageOutput):
            path = out if not wrote_image else out.with_name(f"{out.stem}_{output.name}{out.suffix or '.png'}")
            path.parent.mkdir(parents=True, exist_ok=True)
            imageio.tensor_to_image(value).save(path)
            wrote_image = True
            print(f"{output.name}: wrote {path}")
        elif isinstance(output, FramesOutput) and value:
            base = out if out is not None else Path(found.name)
            path = base.with_name(f"{base.stem}_{output.name}.gif")
            imageio.save_gif([imageio.tensor_to_image(f) for f in value], path, output.duration_ms)
            print(f"{output.name}: wrote {path} ({len(value)} frames)")
        elif isinstance(output, NumbersOutput):
            print(f"{output.name}: " + " ".join(f"{k}={v:.6g}" for k, v in value.items()))
    sys.stdout.flush()
    return 0
