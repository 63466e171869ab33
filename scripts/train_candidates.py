"""Train several model configurations side by side for a fixed wall time, then measure and rank them.

One prepared run for a lent GPU (or a long CPU session): every candidate is its own
``smapgan train`` process on the same data, started together and stopped together, so the
comparison is at equal wall time on one machine. Small models leave most of a large GPU idle, so
running them concurrently costs each little. Afterwards each run's latest export is measured with
``scripts/evaluate_model.py`` (held-out emoji, held-out style, paper Table 4) and the runs are
ranked by held-out reconstruction MSE::

    python scripts/train_candidates.py --data EMOJI_DIR --runs RUNS --minutes 6 \\
        --common "--batch 32 --augment ada" \\
        --candidate "l8=--size 64 --latent-spatial-size 8" \\
        --candidate "l16=--size 64 --latent-spatial-size 16" --bring-back OUT

``--bring-back DIR`` packs what a person needs to choose and ship (the summary, every run's logs and
metrics, the best runs' exports) into at most 8 files of at most 15 MiB each.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any, Sequence

PART_BYTES = 15 * 2**20
TOTAL_BYTES = 60 * 2**20  # what a lent GPU machine's $OUT brings back: 8 files, 64 MiB


def split_folders(data: Path, root: Path) -> dict[str, Path]:
    """``root/{train,val}``: symlinks to the emoji of each split (the held-out style in neither)."""
    rows = [json.loads(line) for line in (data / "metadata.jsonl").read_text().splitlines() if line.strip()]
    folders = {}
    for split in ("train", "val"):
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        for row in rows:
            if row["split"] == split:
                link = folder / f"{row['source']}_{row['unified']}.png"
                if not link.exists():
                    link.symlink_to((data / row["file"]).resolve())
        folders[split] = folder
    return folders


def launch(name: str, args: str, common: str, folders: dict[str, Path], runs: Path) -> subprocess.Popen:
    """One ``smapgan train`` process; its output goes to ``runs/NAME.log``."""
    command = [
        sys.executable, "-m", "smapgan.cli", "train", "--data", str(folders["train"]),
        "--val-data", str(folders["val"]), "--out", str(runs / name), "--no-progress",
        *shlex.split(common), *shlex.split(args),
    ]
    log = open(runs / f"{name}.log", "w")  # noqa: SIM115 (closed when the process is reaped)
    log.write(shlex.join(command) + "\n")
    log.flush()
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def last_speed(run: Path) -> dict[str, Any]:
    """Step, images seen and img/s of a run's last logged line of metrics."""
    path = run / "metrics.jsonl"
    if not path.is_file():
        return {}
    last: dict[str, Any] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if "speed/img_per_s" in row:
            last = row
    return {k: last.get(k) for k in ("step", "speed/img_per_s", "speed/images_seen")}


def evaluate_runs(names: Sequence[str], runs: Path, data: Path, device: str) -> dict[str, Any]:
    """Figures of each run's latest export (runs without one are reported as failed)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import evaluate_model

    results = {}
    for name in names:
        model = runs / name / "model"
        entry: dict[str, Any] = {"speed": last_speed(runs / name)}
        try:
            entry["figures"] = evaluate_model.evaluate(model, data, device)
            print(f"== {name}\n{evaluate_model.summary(entry['figures'])}", flush=True)
        except Exception as exc:  # one broken candidate must not lose the others' figures
            entry["error"] = f"{type(exc).__name__}: {exc}"
            print(f"== {name}: {entry['error']}", flush=True)
        results[name] = entry
    return results


def last_val_mse(run: Path) -> float:
    """The trainer's own last validation MSE (inf when it logged none)."""
    path = run / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    values = [row["val/mse"] for row in rows if "val/mse" in row]
    return values[-1] if values else float("inf")


def rank(results: dict[str, Any], runs: Path) -> list[str]:
    """Candidates by held-out reconstruction MSE, best first; the trainer's figure where evaluation failed."""
    def key(name: str) -> float:
        figures = results[name].get("figures")
        return figures["reconstruction"]["val"]["mse"] if figures else last_val_mse(runs / name)

    return sorted(results, key=key)


def pack(out: Path, runs: Path, names: Sequence[str], keep: Sequence[str], summary: dict[str, Any]) -> None:
    """summary.json, logs.tar.gz (logs, metrics, samples of every run), model parts of ``keep``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    with tarfile.open(out / "logs.tar.gz", "w:gz") as tar:
        for name in names:
            for rel in (f"{name}.log", f"{name}/metrics.jsonl", f"{name}/options.json", f"{name}/train.txt"):
                if (runs / rel).is_file():
                    tar.add(runs / rel, arcname=rel)
            samples = sorted((runs / name / "samples").glob("*.png"))[-4:]
            for path in samples:
                tar.add(path, arcname=f"{name}/samples/{path.name}")
    budget = 8 - 3  # summary, logs, and the caller's console log
    room = TOTAL_BYTES - sum(p.stat().st_size for p in out.iterdir())
    for name in keep:
        blob = runs / f"{name}.model.tar"
        with tarfile.open(blob, "w") as tar:
            tar.add(runs / name / "model", arcname=f"{name}/model")
        data = blob.read_bytes()
        parts = [data[i : i + PART_BYTES] for i in range(0, len(data), PART_BYTES)]
        if len(parts) > budget or len(data) > room:
            print(f"not bringing back {name}: {len(parts)} parts left no room", flush=True)
            continue
        room -= len(data)
        for i, part in enumerate(parts):
            (out / f"model_{name}.tar.part{i}").write_bytes(part)
        budget -= len(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="emoji folder (metadata.jsonl, images/)")
    parser.add_argument("--runs", required=True, type=Path, help="where the run directories go")
    parser.add_argument("--minutes", type=float, required=True, help="wall time of the training phase")
    parser.add_argument("--candidate", action="append", required=True, help="NAME=smapgan train arguments")
    parser.add_argument("--common", default="", help="arguments every candidate gets")
    parser.add_argument("--bring-back", type=Path, help="pack the summary, logs and best exports here")
    parser.add_argument("--keep", type=int, default=2, help="how many of the best exports to bring back")
    args = parser.parse_args(argv)

    candidates = dict(c.split("=", 1) for c in args.candidate)
    args.runs.mkdir(parents=True, exist_ok=True)
    folders = split_folders(args.data.resolve(), args.runs / "_data")
    start = time.monotonic()
    procs = {name: launch(name, extra, args.common, folders, args.runs) for name, extra in candidates.items()}
    deadline = start + 60 * args.minutes
    while time.monotonic() < deadline and any(p.poll() is None for p in procs.values()):
        time.sleep(2)
    for p in procs.values():  # the trainer checkpoints and stops on SIGTERM
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for name, p in procs.items():
        try:
            p.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        print(f"{name}: exit {p.returncode}", flush=True)
    train_seconds = time.monotonic() - start

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    results = evaluate_runs(list(candidates), args.runs, args.data, device)
    order = rank(results, args.runs)
    summary = {
        "train_seconds": train_seconds,
        "common": args.common,
        "candidates": candidates,
        "ranking": order,
        "results": results,
    }
    print("ranking (held-out MSE):", ", ".join(order), flush=True)
    if args.bring_back:
        pack(args.bring_back, args.runs, list(candidates), order[: args.keep], summary)
    else:
        (args.runs / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if any("figures" in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
