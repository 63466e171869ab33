"""Where the bundled default model lives (shipped inside the package)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL: Path = Path(__file__).resolve().parent / "assets" / "default_model"


def default_model_path() -> str:
    """The bundled model folder, with a clear error when a broken install lacks it."""
    if not (DEFAULT_MODEL / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"the bundled default model is missing from {DEFAULT_MODEL}; reinstall smapgan or pass --model"
        )
    return str(DEFAULT_MODEL)
