"""``smapgan info [--model M]``: what a model is, without running it."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model folder or Hub repo id (default: the bundled model)")
    parser.add_argument("--revision", help="Hub revision (branch, tag or commit)")


def run(args: argparse.Namespace) -> int:
    from .. import StyleMapGAN
    from ..defaults import default_model_path

    model = StyleMapGAN.from_pretrained(args.model or default_model_path(), revision=args.revision)
    cfg = model.config
    print(f"model: {args.model or default_model_path()}")
    for key, value in cfg.to_dict().items():
        print(f"  {key}: {value}")
    for name in ("generator", "encoder", "discriminator"):
        module = getattr(model, name)
        count = sum(p.numel() for p in module.parameters()) if module is not None else 0
        print(f"  {name}: {count / 1e6:.2f} M parameters" if module is not None else f"  {name}: absent")
    levels = [cfg.level_resolution(i) for i in range(cfg.num_levels)]
    print(f"  pyramid levels: {cfg.num_levels} at resolutions {levels}")
    print(f"  directions: {', '.join(sorted(model.directions)) or 'none'}")
    return 0
