"""bench/gpu_rows.py is run on a lent GPU only now and then: its CPU smoke run must keep working."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_rows_quick_on_cpu_writes_every_row(tmp_path: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="2", GRADIO_ANALYTICS_ENABLED="False")
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_rows.py"), "--device", "cpu", "--quick", "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    table = (tmp_path / "gpu_rows.md").read_text()
    for measure in ("decode, float32", "encode, float32", "refinement, float32",
                    "first transplant of a new pair, in-process op", "next edit (brush moved, at once), in-process op",
                    "first transplant of a new pair, live app (HTTP)", "next edit (brush moved, at once), live app (HTTP)"):
        row = next((line for line in table.splitlines() if line.startswith(f"| {measure}")), None)
        assert row is not None, f"no row {measure!r} in\n{table}"
        value = row.split("|")[2].strip()
        assert value[0].isdigit() and float(value.split()[0]) > 0, row
