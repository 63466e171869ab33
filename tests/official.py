"""Locating the official reference fixtures (``tests/fixtures/official``, kept in the repository).

They are random-weight checkpoints in the release's format with the outputs the release code
computed for them (see the README there); ``SMAPGAN_OFFICIAL_FIXTURES`` points elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "official"
OFFICIAL_DIR = Path(os.environ.get("SMAPGAN_OFFICIAL_FIXTURES") or FIXTURES)


def official_dir() -> Path:
    if not OFFICIAL_DIR.is_dir():
        pytest.fail(f"official fixtures not found at {OFFICIAL_DIR} (set SMAPGAN_OFFICIAL_FIXTURES)")
    return OFFICIAL_DIR


def fixture_names() -> list[str]:
    """Every ``NAME.pt`` with a ``NAME.outputs.safetensors`` beside it (new ones are picked up)."""
    if not OFFICIAL_DIR.is_dir():
        return ["narrow64", "small32"]
    return sorted(p.name[: -len(".outputs.safetensors")] for p in OFFICIAL_DIR.glob("*.outputs.safetensors"))
