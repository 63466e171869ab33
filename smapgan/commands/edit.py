"""``smapgan edit OP ...``: run any registered op headless; one sub-command per op.

Each input kind adds its own flags or is given as ``--set key=value`` (and reads its
values: :meth:`smapgan.ops.Input.add_cli_arguments`, ``cli_value``, ``parse_cli``).
Images: ``--<input> FILE`` (repeatable for multi-image inputs, which also take the
singular, e.g. ``--reference``). Masks: ``--mask FILE`` is paired, in order, with
the given images that take a mask (any non-black or non-transparent pixel is
selected). Outputs: the first image output to ``--out``; frames to
``<out stem>_<name>.gif``; numbers printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..ops import discover
    from ..ops.spec import ImageOutput

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
        keys = [item.name for item in found.inputs if not item.add_cli_arguments(cmd)]
        if any(i.mask != "none" for i in found.image_inputs):
            cmd.add_argument(
                "--mask", action="append", default=[], metavar="FILE",
                help="mask for the images that take one, in order (non-black/non-transparent = selected)",
            )
        if keys:
            cmd.add_argument(
                "--set", action="append", default=[], metavar="KEY=VALUE", help=f"other inputs: {', '.join(keys)}"
            )
        if found.image_inputs:
            cmd.add_argument(
                "--refine-steps", type=int, default=0, metavar="N",
                help="refine each input image's stylemap by N optimisation steps before editing "
                "(0: the encoder alone; see smapgan.latent.invert)",
            )
        has_image = any(isinstance(o, ImageOutput) for o in found.outputs)
        cmd.add_argument("--out", required=has_image, help="output image (PNG); frames go to <stem>_<name>.gif")
        cmd.set_defaults(_op=found, _set_keys=tuple(keys))
    if registry.errors:
        parser.epilog = "broken plugins (skipped): " + "; ".join(str(e) for e in registry.errors)


def collect_values(found: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Op input values from parsed arguments, before any file is read: each kind's own flags
    (images with their masks paired in order), and ``--set`` texts."""
    from ..ops import OpError

    values: dict[str, Any] = {}
    masks = list(getattr(args, "mask", []) or [])
    keys = set(args._set_keys)  # the inputs with no flags of their own
    for item in found.inputs:
        if item.name not in keys:
            values[item.name] = item.cli_value(args, masks)
    if masks:
        raise OpError(f"{len(masks)} --mask file(s) left over: there are fewer images that take a mask")
    for setting in getattr(args, "set", []) or []:
        key, sep, value = setting.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in keys:
            raise OpError(f"--set {setting!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(keys))}")
        values[key] = value
    return values


def run(args: argparse.Namespace) -> int:
    from .. import StyleMapGAN
    from ..intake import images as imageio
    from ..defaults import default_model_path
    from ..ops import OpContext
    from ..ops.inversion import Inversion
    from ..ops.spec import FramesOutput, ImageOutput, NumbersOutput

    found = args._op
    raw = collect_values(found, args)
    model = StyleMapGAN.from_pretrained(args.model or default_model_path(), revision=args.revision)
    inversion = Inversion(steps=getattr(args, "refine_steps", 0) or 0)

    def progress(fraction: float, desc: str) -> None:
        if desc.startswith("refining") and sys.stderr.isatty():
            print(f"\r{desc}", end="\n" if fraction >= 1 else "", file=sys.stderr, flush=True)

    ctx = OpContext(model, progress=progress, inversion=inversion)
    # Each kind reads its own value; every setting (defaults too) is checked before any image is decoded.
    values = {i.name: i.parse_cli(ctx, raw[i.name]) for i in found.inputs if not i.needs_context and i.name in raw}
    found.parse_settings(values, model)
    values.update({i.name: i.parse_cli(ctx, raw[i.name]) for i in found.inputs if i.needs_context and i.name in raw})
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
