"""``smapgan convert RELEASE.pt OUT_DIR``."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="official release checkpoint (.pt)")
    parser.add_argument("out_dir", help="output folder (config.json, model.safetensors, README.md)")
    parser.add_argument("--dataset", help="dataset name for the model card (default: from train_args)")
    parser.add_argument(
        "--alignment", choices=("ffhq", "none"),
        help="how photos are cropped for the model (default: ffhq for celeba_hq and ffhq, else none)",
    )
    parser.add_argument("--no-discriminator", action="store_true", help="drop the discriminator")
    parser.add_argument("--push-to-hub", metavar="REPO", help="also upload the converted folder")


def run(args: argparse.Namespace) -> int:
    from ..model.convert import convert_release_checkpoint

    model = convert_release_checkpoint(
        args.checkpoint, args.out_dir, dataset=args.dataset, keep_discriminator=not args.no_discriminator,
        alignment=args.alignment,
    )
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.out_dir} ({n / 1e6:.1f} M parameters, config {model.config.to_dict()})")
    if args.push_to_hub:
        from ..model.hub import push_folder

        print(push_folder(args.out_dir, args.push_to_hub, commit_message="Upload converted StyleMapGAN"))
    return 0
