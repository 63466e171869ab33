"""``python app.py [--model DIR_OR_REPO ...] [--max-models K] [--device auto|cpu|cuda] [--port N] [--host [ADDR]]``:
serve the app with its models (each loaded on first use)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="app.py", description="The smapgan editing app (Gradio).")
    parser.add_argument(
        "--model", action="append", default=[],
        help="model folder or Hub repo id; repeat for several (a dropdown chooses; the bundled model is always one)",
    )
    parser.add_argument(
        "--max-models", type=int, default=2, metavar="K",
        help="models kept in memory at once (the least recently used is dropped; default 2)",
    )
    parser.add_argument(
        "--device", choices=DEVICE_CHOICES, default="auto", help="where the models run (auto: CUDA when available)"
    )
    parser.add_argument("--revision", help="Hub revision (branch, tag or commit)")
    parser.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860 or the next free one)")
    parser.add_argument(
        "--host", nargs="?", const="0.0.0.0", default="127.0.0.1",
        help="listen on ADDR (given without a value: every interface; default: 127.0.0.1 only)",
    )
    parser.add_argument("--share", action="store_true", help="ask Gradio for a public share link")
    return parser


def load_model(model: str | None, revision: str | None = None) -> Any:
    """The model to serve; without ``model``, the bundled one (a clear error when it is missing)."""
    from .. import StyleMapGAN
    from ..defaults import default_model_path

    return StyleMapGAN.from_pretrained(model or default_model_path(), revision=revision)


def model_choices(
    sources: Sequence[str | None], *, max_models: int = 2, device: str = "auto", revision: str | None = None
) -> Any:
    """The app's models (:class:`~smapgan.app.models.ModelChoices`), the first loaded now: a folder or Hub
    id that cannot be read fails at startup with its own error, not at a user's first click."""
    from ..device import resolve_device
    from .models import ModelChoices

    resolve_device(device)  # cuda asked for but absent: a clear error now
    choices = ModelChoices(list(sources) or [None], max_loaded=max_models, device=device, revision=revision)
    choices.get()
    return choices


def tune_gradio() -> None:
    """Process settings for serving edits on a small CPU; call before the Blocks are built.

    Gradio summarizes its event analytics with pandas after every event, over up to 10,000
    past events: on 2 cores that is CPU taken from the edits. Every 100 events is plenty.
    (A value the user set is kept.)
    """
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "100")


def guard(demo: Any) -> dict[str, Any]:
    """Start the watches over ``demo``'s connections and sessions (they wait for its server, so call
    this before ``launch``, which blocks while serving) and return the ``launch`` keyword arguments
    of its limits: the upload cap (413 before storing), the request-body limit, the sessions kept."""
    from . import sessions, timeouts
    from .gate import launch_kwargs as guarded

    timeouts.watch(demo)
    sessions.expire(demo)
    return {**guarded(), **sessions.launch_kwargs()}


def launch(args: argparse.Namespace, **launch_kwargs: Any) -> Any:
    """Build and start the app; extra keyword arguments go to ``Blocks.launch``."""
    from .builder import build_demo

    tune_gradio()
    models = model_choices(args.model, max_models=args.max_models, device=args.device, revision=args.revision)
    demo = build_demo(models)
    for key, value in guard(demo).items():
        launch_kwargs.setdefault(key, value)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, **launch_kwargs)
    return demo


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        launch(args)
    except (FileNotFoundError, RuntimeError, ValueError, OSError) as exc:
        print(f"app.py: error: {exc}", file=sys.stderr)
        return 2
    return 0
