"""Training crash safety (issue 6.5): a killed run always leaves a loadable latest checkpoint.

The unit tests crash ``save_checkpoint`` / ``replace_dir`` at every file-system step; the slow
test SIGKILLs five real training processes at random moments, two of them in the middle of a
checkpoint write (a test-only wrapper writes half of the file and waits to be killed), and
checks after each kill that ``checkpoints/latest.pt`` loads and that ``--resume`` finishes the
run with every step logged exactly once.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from smapgan.train import checkpoint as ckpt
from smapgan.train.checkpoint import find_resumable, load_checkpoint, save_checkpoint

REPO = Path(__file__).resolve().parents[1]


class Crash(BaseException):
    """The process dies here (BaseException: nothing in the code under test may catch it)."""


def crash_at(monkeypatch: pytest.MonkeyPatch, k: int) -> list[str]:
    """Make the k-th file-system step of a save (0: half-way through writing the tmp file) crash."""
    steps: list[str] = []
    real = {name: getattr(os, name) for name in ("replace", "link")}
    real_save = torch.save

    def step(name: str, fn):
        def wrapped(*args, **kwargs):
            steps.append(name)
            if len(steps) - 1 == k:
                raise Crash(name)
            return fn(*args, **kwargs)

        return wrapped

    def torn_save(obj, f, *args, **kwargs):
        steps.append("write")
        if len(steps) - 1 == k:
            import io

            buf = io.BytesIO()
            real_save(obj, buf, *args, **kwargs)
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            raise Crash("write")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(ckpt.os, "replace", step("replace", real["replace"]))
    monkeypatch.setattr(ckpt.os, "link", step("link", real["link"]))
    monkeypatch.setattr(ckpt.torch, "save", torn_save)
    return steps


@pytest.mark.parametrize("k", range(4))
def test_a_crash_at_any_step_of_a_save_leaves_a_loadable_latest(tmp_path, monkeypatch, k):
    save_checkpoint(tmp_path, {"format": 1, "step": 1, "w": torch.ones(64)})
    save_checkpoint(tmp_path, {"format": 1, "step": 2, "w": torch.ones(64)})
    steps = crash_at(monkeypatch, k)
    try:
        save_checkpoint(tmp_path, {"format": 1, "step": 3, "w": torch.ones(64)})
    except Crash:
        pass
    monkeypatch.undo()
    assert k < len(steps), f"the save has only {len(steps)} steps"
    latest = load_checkpoint(tmp_path / "checkpoints" / "latest.pt")  # latest.pt itself, never missing
    assert latest["step"] in (2, 3)
    assert load_checkpoint(tmp_path / "checkpoints" / "previous.pt")["step"] in (1, 2)
    assert find_resumable(tmp_path)[0].name == "latest.pt"
    save_checkpoint(tmp_path, {"format": 1, "step": 4, "w": torch.ones(64)})  # leftovers do not get in the way
    assert load_checkpoint(tmp_path / "checkpoints" / "latest.pt")["step"] == 4
    assert load_checkpoint(tmp_path / "checkpoints" / "previous.pt")["step"] == latest["step"]


def test_the_save_has_the_steps_the_crash_test_covers(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, {"format": 1, "step": 1})
    steps = crash_at(monkeypatch, 99)
    save_checkpoint(tmp_path, {"format": 1, "step": 2})
    assert steps == ["write", "link", "replace", "replace"]


def test_an_export_interrupted_between_its_renames_is_recovered(tmp_path, monkeypatch):
    dest, tmp = tmp_path / "model", tmp_path / ".model.tmp"
    for folder, text in ((dest, "old"), (tmp, "new")):
        folder.mkdir()
        (folder / "config.json").write_text(text)
    calls = []
    real = os.replace

    def replace(a, b):
        calls.append((a, b))
        if len(calls) == 2:
            raise Crash("between the renames")
        return real(a, b)

    monkeypatch.setattr(ckpt.os, "replace", replace)
    with pytest.raises(Crash):
        ckpt.replace_dir(tmp, dest)
    monkeypatch.undo()
    assert not dest.exists() and (tmp_path / "model.old" / "config.json").read_text() == "old"
    newer = tmp_path / ".model.tmp2"
    newer.mkdir()
    (newer / "config.json").write_text("newer")
    ckpt.replace_dir(newer, dest)
    assert (dest / "config.json").read_text() == "newer" and not (tmp_path / "model.old").exists()


# --------------------------------------------------------------------------- real processes

# The trainer with torch.save replaced: once a checkpoint exists, the next one is written half-way,
# then the process says so (a marker file) and waits to be killed. Test-only fault injection.
TORN_WRITER = """
import io, os, sys, time
from pathlib import Path
import torch
real_save = torch.save
marker = Path(os.environ["TORN_MARKER"])

def torn_save(obj, f, *args, **kwargs):
    name = Path(getattr(f, "name", ""))
    if name.name != "latest.pt.tmp" or not name.with_name("latest.pt").exists():
        return real_save(obj, f, *args, **kwargs)
    buf = io.BytesIO()
    real_save(obj, buf, *args, **kwargs)
    f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
    f.flush()
    os.fsync(f.fileno())
    marker.write_text(str(obj["step"]))
    time.sleep(600)

torch.save = torn_save
from smapgan.train.__main__ import main
sys.exit(main())
"""


def _logged_steps(run: Path) -> list[int]:
    metrics = run / "metrics.jsonl"
    if not metrics.exists():
        return []
    steps = []
    for line in metrics.read_text().splitlines():
        if line.endswith("}"):
            record = json.loads(line)
            if "d/loss" in record:
                steps.append(record["step"])
    return steps


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume(tmp_path):
    from tests.test_train import TINY, make_images

    images = tmp_path / "images"
    make_images(images, 24)
    run = tmp_path / "run"
    total = 48
    argv = ["--out", str(run), *TINY, "--data", str(images), "--steps", str(total), "--save-every", "4",
            "--export-every", "8", "--log-every", "1", "--sample-every", "0", "--seed", "3", "--threads", "1"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), TORN_MARKER=str(tmp_path / "torn"))
    (tmp_path / "torn_writer.py").write_text(TORN_WRITER)
    rng = random.Random(6)
    latest_step, kinds = -1, []
    for attempt in range(5):
        torn = attempt in (1, 3)  # killed in the middle of writing a checkpoint
        command = [str(tmp_path / "torn_writer.py")] if torn else ["-m", "smapgan.train"]
        resume = ["--resume"] if attempt else []
        proc = subprocess.Popen([sys.executable, *command, *argv, *resume], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 240
            target = max(latest_step, 0) + rng.randint(2, 12)
            while time.monotonic() < deadline:
                assert proc.poll() is None, proc.communicate()[1][-3000:]
                if torn and (tmp_path / "torn").exists():
                    break
                if not torn and max(_logged_steps(run), default=-1) >= target:
                    time.sleep(rng.uniform(0, 0.3))  # anywhere in the steps that follow
                    break
                time.sleep(0.01)
            else:
                raise TimeoutError(f"attempt {attempt}: the run did not get there")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
        kinds.append("torn write" if torn else f"random (step >= {target})")
        folder = run / "checkpoints"
        if torn:
            (tmp_path / "torn").unlink()
            assert (folder / "latest.pt.tmp").is_file(), "the kill was not during a checkpoint write"
        if latest_step >= 0 or (folder / "latest.pt").exists():
            payload = load_checkpoint(folder / "latest.pt")  # latest.pt itself: present and complete
            assert payload["step"] >= latest_step and payload["step"] < total
            latest_step = payload["step"]
            assert find_resumable(run)[0].name == "latest.pt"
            kinds[-1] += f" -> latest.pt at step {latest_step}"
        for name in ("model", "model.old"):
            if (run / name / "model.safetensors").is_file():
                from smapgan import StyleMapGAN

                StyleMapGAN.from_pretrained(run / name)
                break
    assert latest_step > 0, kinds
    print("\nkills:", "; ".join(kinds))

    done = subprocess.run([sys.executable, "-m", "smapgan.train", "--out", str(run), "--resume"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["step"] == total
    assert _logged_steps(run) == list(range(1, total + 1))  # every step once: the resumes continued the run
    from smapgan import StyleMapGAN

    assert json.loads((run / "model" / "training.json").read_text())["step"] == total
    StyleMapGAN.from_pretrained(run / "model")
    assert not (run / "model.old").exists()
