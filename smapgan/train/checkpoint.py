"""Run-directory checkpoints: atomic writes, safe loading, and the RNG states of a resume.

``checkpoints/latest.pt`` is written as ``latest.pt.tmp`` and renamed into place only once
complete; the checkpoint it replaces is kept as ``previous.pt`` (a second name for the same
file, made before the rename). From the first save on, a crash at any moment leaves a
complete ``latest.pt``. Payloads hold tensors and plain Python values only, so
``torch.load(weights_only=True)`` reads them and no pickle code ever runs.
"""

from __future__ import annotations

import logging
import os
import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger("smapgan.train")

FORMAT_VERSION = 1
LATEST = "latest.pt"
PREVIOUS = "previous.pt"


def checkpoint_dir(run_dir: str | os.PathLike[str]) -> Path:
    return Path(run_dir) / "checkpoints"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(run_dir: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Write ``payload`` as the run's latest checkpoint, keeping the former one as previous."""
    folder = checkpoint_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    latest, previous, tmp = folder / LATEST, folder / PREVIOUS, folder / (LATEST + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    if latest.exists():
        # previous.pt becomes latest.pt's content without latest.pt ever going missing:
        # moving latest.pt aside first would leave a window with no latest.pt at all.
        keep = folder / (PREVIOUS + ".tmp")
        keep.unlink(missing_ok=True)
        try:
            os.link(latest, keep)
        except OSError:  # a file system without hard links
            shutil.copyfile(latest, keep)
        os.replace(keep, previous)
    os.replace(tmp, latest)
    _fsync_dir(folder)
    return latest


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint safely (tensors and plain values only) onto the CPU; errors name the file."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"{path} was refused: it holds objects other than tensors and plain values (code), so it was "
            f"not loaded and nothing in it ran ({str(exc).splitlines()[0]})"
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise ValueError(f"{path} is truncated or not a PyTorch checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path} is not a smapgan training checkpoint (format {FORMAT_VERSION})")
    return payload


def find_resumable(run_dir: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]] | None:
    """The newest complete checkpoint of a run: latest.pt, else previous.pt; None when neither loads."""
    folder = checkpoint_dir(run_dir)
    for name in (LATEST, PREVIOUS):
        path = folder / name
        if not path.is_file():
            continue
        try:
            return path, load_checkpoint(path)
        except Exception as exc:  # a truncated or foreign file: fall back to the older one
            log.warning("cannot load checkpoint %s (%s); trying an older one", path, exc)
    return None


def has_checkpoint(run_dir: str | os.PathLike[str]) -> bool:
    folder = checkpoint_dir(run_dir)
    return any((folder / name).is_file() for name in (LATEST, PREVIOUS))


# -- RNG states, as tensors and plain values (weights_only-loadable)


def capture_rng(noise: torch.Generator) -> dict[str, Any]:
    """torch (CPU and CUDA), numpy, python ``random`` and the noise generator's states."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "noise": noise.get_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": int(version), "state": torch.tensor(py_state, dtype=torch.int64), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], noise: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    noise.set_state(state["noise"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def replace_dir(tmp: Path, dest: Path) -> None:
    """Move the finished folder ``tmp`` to ``dest``, replacing it with as short a gap as possible."""
    old = dest.with_name(dest.name + ".old")
    if old.exists() and not dest.exists():
        os.replace(old, dest)  # a crash between the two renames below left the old copy only: it is the export
    if old.exists():
        shutil.rmtree(old)
    if dest.exists():
        os.replace(dest, old)
    os.replace(tmp, dest)
    if old.exists():
        shutil.rmtree(old)
