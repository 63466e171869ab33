"""``smapgan edit OP ...``: run any registered op headless; one sub-command per op.

Each input kind adds its own flags or is given as ``--set key=value`` (:meth:`smapgan.ops.Input.add_cli_arguments`,
``cli_value``); ``Op.run`` parses them and decodes the files, as it does for the app. The flags, masks
and outputs: docs/ops.md; photos (``--align``, ``--photo-out``): docs/photos.md.
"""

from __future__ import annotations

import argparse
import dataclasses
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
        has_image = any(isinstance(o, ImageOutput) for o in found.outputs)
        cmd.add_argument("--out", required=has_image, help="output image (PNG); frames go to <stem>_<name>.gif")
        if found.image_inputs:
            cmd.add_argument(
                "--refine-steps", type=int, default=0, metavar="N",
                help="refine each input image's stylemap by N optimisation steps before editing "
                "(0: the encoder alone; see smapgan.latent.invert)",
            )
            cmd.add_argument(
                "--align", choices=("auto", "face", "none"), default="auto",
                help="how each image becomes the model's input: face (FFHQ alignment, needs smapgan[faces]), "
                "none (center crop), auto (the model's config decides; default)",
            )
            cmd.add_argument(
                "--face", type=int, default=0, metavar="I",
                help="with face alignment: which face of the first image (0: the largest and surest)",
            )
            if has_image:
                cmd.add_argument(
                    "--photo-out", metavar="PATH",
                    help="also write the image result pasted back into the first image's photo (full resolution)",
                )
        cmd.add_argument(
            "--device", choices=("auto", "cpu", "cuda"), default="auto",
            help="where the model runs: auto (CUDA when available), cpu or cuda",
        )
        cmd.set_defaults(_op=found, _set_keys=tuple(keys))
    if registry.errors:
        parser.epilog = "broken plugins (skipped): " + "; ".join(str(e) for e in registry.errors)


def collect_values(found: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Op input values from parsed arguments, before any file is read: each kind's own flags
    (images with their masks paired in order, as :class:`~smapgan.ops.PictureSource`), and ``--set`` texts."""
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


def align_mode(choice: str, model: Any) -> str:
    """``--align`` as a mode of :func:`smapgan.intake.align.align_photo`: "face" or "center"."""
    if choice == "auto":
        return "face" if model.config.alignment == "ffhq" else "center"
    return "face" if choice == "face" else "center"


def prepare_photos(found: Any, raw: dict[str, Any], size: int, mode: str, face: int, keep_first: bool) -> Any:
    """Replace each image file of ``raw`` by its crop (in place) when aligning faces; return the first
    image's :class:`~smapgan.intake.align.AlignedPhoto` when ``keep_first`` (for ``--photo-out``)."""
    from ..intake.align import align_photo, open_photo

    first = None
    for item in found.image_inputs:
        value = raw.get(item.name)
        if value is None:
            continue
        sources = value if isinstance(value, list) else [value]
        for i, source in enumerate(sources):
            for_photo_out = keep_first and first is None
            if mode == "center" and not for_photo_out:
                continue  # the op reads the file itself, as it always has
            # --face chooses in the first image (the photo); every other image gives its best face.
            aligned = align_photo(open_photo(source.image), size, align=mode, face=face if first is None else 0)
            if aligned.note:
                print(f"{Path(str(source.image)).name}: {aligned.note}", file=sys.stderr)
            sources[i] = dataclasses.replace(source, image=aligned.crop)
            if first is None:
                first = aligned
        raw[item.name] = sources if isinstance(value, list) else sources[0]
    return first if keep_first else None


def cli_flag(item: Any) -> str:
    """How the command line names an input: its own flag (the singular for several images), else ``--set``."""
    flags = item.cli_flags() if hasattr(item, "cli_flags") else []
    return flags[-1] if flags else f"--set {item.name}"


def run(args: argparse.Namespace) -> int:
    from .. import StyleMapGAN
    from ..device import renderer_for_device, resolve_device
    from ..intake import images as imageio
    from ..defaults import default_model_path
    from ..ops import OpContext, OpError
    from ..ops.inversion import Inversion
    from ..ops.spec import FramesOutput, ImageOutput, NumbersOutput

    found = args._op
    raw = collect_values(found, args)
    device = resolve_device(args.device)
    model = StyleMapGAN.from_pretrained(
        args.model or default_model_path(), revision=args.revision, map_location=device
    )
    inversion = Inversion(steps=getattr(args, "refine_steps", 0) or 0)

    def progress(fraction: float, desc: str) -> None:
        if desc.startswith("refining") and sys.stderr.isatty():
            print(f"\r{desc}", end="\n" if fraction >= 1 else "", file=sys.stderr, flush=True)

    # The renderer for the device (smapgan.device): on the CPU the fast one, whose differentiable decoder
    # refines as fast as the app does (1.2-1.6x less CPU time per step than the model's own modules).
    ctx = OpContext(model, renderer=renderer_for_device(model, device), progress=progress, inversion=inversion)
    photo = None
    if found.image_inputs:
        mode = align_mode(args.align, model)
        keep_first = bool(getattr(args, "photo_out", None))
        if mode == "face" or keep_first:  # aligning decodes the photos: a bad setting is reported first
            found.parse_settings(raw, model)
        photo = prepare_photos(found, raw, model.config.size, mode, args.face, keep_first=keep_first)
        if keep_first and photo is None:
            raise OpError("--photo-out needs an image to put the result back into; none was given")
    try:
        result = found.run(ctx, **raw)  # the settings parsed, the images decoded (on the model's device)
    except OpError as exc:  # the input it is about named by its flag
        if exc.field is None:
            raise
        raise OpError(exc.worded(cli_flag(exc.field), cli=True)) from None
    out = Path(args.out) if args.out else None
    wrote_image = False
    for output in found.outputs:
        value = result[output.name]
        if isinstance(output, ImageOutput):
            path = out if not wrote_image else out.with_name(f"{out.stem}_{output.name}{out.suffix or '.png'}")
            path.parent.mkdir(parents=True, exist_ok=True)
            imageio.tensor_to_image(value).save(path)
            print(f"{output.name}: wrote {path}")
            if photo is not None and not wrote_image:
                photo_path = Path(args.photo_out)
                photo_path.parent.mkdir(parents=True, exist_ok=True)
                photo.paste_back(imageio.tensor_to_image(value)).save(photo_path)
                print(f"{output.name} in the photo: wrote {photo_path}")
            wrote_image = True
        elif isinstance(output, FramesOutput) and value:
            base = out if out is not None else Path(found.name)
            path = base.with_name(f"{base.stem}_{output.name}.gif")
            imageio.save_gif([imageio.tensor_to_image(f) for f in value], path, output.duration_ms)
            print(f"{output.name}: wrote {path} ({len(value)} frames)")
        elif isinstance(output, NumbersOutput):
            print(f"{output.name}: " + " ".join(f"{k}={v:.6g}" for k, v in value.items()))
    sys.stdout.flush()
    return 0
