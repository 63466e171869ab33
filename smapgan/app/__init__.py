"""The Gradio app, built from the op registry (``build_demo(model)``); ``launch`` is the CLI entry."""

from .builder import build_demo
from .launcher import launch, main

__all__ = ["build_demo", "launch", "main"]
