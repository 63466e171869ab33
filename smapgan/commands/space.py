"""``smapgan space deploy --repo USER/NAME [--model REPO ...] [--private] [--dry-run OUT_DIR]``.

Stages the Space (:func:`smapgan.space.build_space_folder`) and uploads it as one commit; the
Space is created on the first deploy and updated by the next ones.
"""

from __future__ import annotations

import argparse

# Re-deploys delete what the staged package no longer has (a removed op must not linger);
# files someone added at the Space's root are left alone.
MANAGED_PATTERNS = ("smapgan/*",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="space_command", metavar="ACTION", required=True)
    deploy = sub.add_parser(
        "deploy", help="create or update the Space", description="Create or update the app's Hugging Face Space."
    )
    deploy.add_argument("--repo", help="the Space, USER/NAME (required unless --dry-run)")
    deploy.add_argument(
        "--model", action="append", default=[],
        help="Hub model repo the Space serves; repeat for several (a dropdown; the bundled model is always one)",
    )
    deploy.add_argument("--private", action="store_true", help="create the Space private (first deploy only)")
    deploy.add_argument(
        "--dry-run", metavar="OUT_DIR", help="write the Space's files to OUT_DIR (new or empty) and upload nothing"
    )
    deploy.add_argument("--token", help="Hub token (default: HF_TOKEN or the saved login)")


def run(args: argparse.Namespace) -> int:
    """``deploy``, the one action (argparse refuses any other)."""
    import tempfile
    from pathlib import Path

    from ..space import build_space_folder

    if args.dry_run:
        files = build_space_folder(args.dry_run, model_repo=args.model)
        for name in files:
            print(name)
        print(f"{len(files)} files written to {args.dry_run}; nothing uploaded")
        return 0
    if not args.repo:
        raise ValueError("--repo USER/NAME is required (or --dry-run OUT_DIR to only write the files)")

    from huggingface_hub import constants

    from ..model.hub import push_folder, resolve_model_dir

    for model in args.model:  # a typo here would give a Space that crashes at boot: check each repo first
        resolve_model_dir(model, allow_patterns=["config.json"])
    with tempfile.TemporaryDirectory(prefix="smapgan-space-") as tmp:
        staging = Path(tmp) / "space"
        files = build_space_folder(staging, model_repo=args.model)
        commit_url = push_folder(
            staging,
            args.repo,
            repo_type="space",
            commit_message="Deploy with smapgan space deploy"
            + (f" (models {', '.join(args.model)})" if args.model else ""),
            private=args.private,
            token=args.token,
            delete_patterns=MANAGED_PATTERNS,
        )
    print(f"deployed {len(files)} files to {constants.ENDPOINT}/spaces/{args.repo}")
    print(f"commit: {commit_url}")
    return 0
