"""What a run tells its user: a progress bar, a text log, metrics.jsonl, TensorBoard, PNG grids.

Only rank 0 writes. TensorBoard is optional: without the package the run still writes
``metrics.jsonl`` and ``samples/*.png``, which carry the same numbers and images.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("smapgan.train")


def setup_text_log(run_dir: Path | None, verbose: bool) -> None:
    """Log ``smapgan.train`` messages to stderr and (rank 0) to ``RUN_DIR/train.txt``."""
    log.setLevel(logging.INFO if verbose else logging.WARNING)
    log.propagate = False
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    for handler in list(log.handlers):
        if getattr(handler, "_smapgan", False):
            log.removeHandler(handler)
            handler.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(run_dir / "train.txt", encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(fmt)
        handler._smapgan = True  # type: ignore[attr-defined]
        log.addHandler(handler)


def make_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2) -> torch.Tensor:
    """(N,3,H,W) in [-1,1] -> one uint8 (3, rows*(H+p)+p, cols*(W+p)+p) image, white padding."""
    images = images.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    n, c, h, w = images.shape
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    grid = torch.full((c, rows * (h + padding) + padding, cols * (w + padding) + padding), 255, dtype=torch.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        top, left = padding + r * (h + padding), padding + k * (w + padding)
        grid[:, top : top + h, left : left + w] = images[i]
    return grid


def _step_of(line: str) -> float:
    try:
        return float(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return math.inf  # a torn last line


class RunLogger:
    """Rank 0's outputs; on other ranks every method is a no-op."""

    def __init__(
        self,
        run_dir: Path,
        enabled: bool,
        start_step: int,
        total_steps: int,
        progress: bool = True,
        tensorboard: bool = True,
    ) -> None:
        self.run_dir, self.enabled = run_dir, enabled
        self.writer = None
        self.bar = None
        self._metrics = None
        if not enabled:
            return
        metrics = run_dir / "metrics.jsonl"
        if metrics.exists():  # a resumed run redoes the steps after its checkpoint: drop their records
            kept = [line for line in metrics.read_text(encoding="utf-8").splitlines(keepends=True) if _step_of(line) <= start_step]
            metrics.write_text("".join(kept), encoding="utf-8")
        self._metrics = open(metrics, "a", encoding="utf-8")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(log_dir=str(run_dir / "tb"), purge_step=start_step)
            except Exception as exc:  # ImportError without tensorboard; keep training
                log.warning("TensorBoard logging disabled (%s); metrics.jsonl and samples/ still written", exc)
        # A bar only on a terminal: in a log file its carriage returns are noise, so background
        # runs get one summary line per --log-every steps instead (see ``summary``).
        if progress and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total_steps, initial=start_step, unit="it", dynamic_ncols=True, mininterval=1.0, smoothing=0.05
            )

    def progress(self, step: int, postfix: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.n = step
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in postfix.items()}, refresh=False)
            self.bar.update(0)

    def summary(self, step: int, total: int, values: dict[str, float]) -> None:
        """One text line of the main losses and speed (written to the log file; to stderr without a bar)."""
        if not self.enabled:
            return
        labels = {
            "d/loss": "d", "d/indomain": "d_indomain", "d/r1": "r1", "g/adv": "g_adv", "e/w_rec": "w_rec",
            "e/x_rec": "x_rec", "e/perceptual": "lpips", "e/indomain": "e_indomain", "augment/p": "aug_p",
            "augment/rt": "ada_rt", "speed/img_per_s": "img/s",
        }
        text = " ".join(f"{label} {values[key]:.4g}" for key, label in labels.items() if key in values)
        if self.bar is None:
            log.info("step %d/%d: %s", step, total, text)
        else:
            for handler in log.handlers:  # the bar shows these on the terminal; keep them in the file
                if isinstance(handler, logging.FileHandler):
                    handler.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, "step %d/%d: %s", (step, total, text), None))

    def scalars(self, step: int, values: dict[str, float], prefix: str = "") -> None:
        if not self.enabled:
            return
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(f"{prefix}{name}", value, step)
        record = {"step": step, "time": round(time.time(), 3)}
        record.update({f"{prefix}{k}": (round(v, 6) if isinstance(v, float) else v) for k, v in values.items()})
        assert self._metrics is not None
        self._metrics.write(json.dumps(record) + "\n")
        self._metrics.flush()

    def images(self, step: int, name: str, images: torch.Tensor, nrow: int = 8) -> None:
        """Log a grid to TensorBoard and save it as ``samples/{name}_{step:07d}.png``."""
        if not self.enabled:
            return
        from PIL import Image

        grid = make_grid(images, nrow=nrow)
        if self.writer is not None:
            self.writer.add_image(name, grid, step)
        folder = self.run_dir / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grid.permute(1, 2, 0).numpy()).save(folder / f"{name.replace('/', '_')}_{step:07d}.png")

    def info(self, message: str, *args: Any) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.clear()
        log.info(message, *args)
        if self.bar is not None:
            self.bar.refresh()

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None
