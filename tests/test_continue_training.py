"""scripts/continue_training.sh end to end on the CPU: a tiny rehearsal of the lent-GPU run.

Archive -> continue the bundled model (--init) for two steps -> export -> directions, prior,
grids, card and figures -> everything back through OUT as parts. The data is the package's
example emoji (44 Noto faces with their train/held-out split), so no download is needed.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import smapgan
from smapgan.ops.examples import EXAMPLES_DIR

REPO = Path(__file__).resolve().parent.parent
TINY_TRAINING = "--batch 2 --steps 2 --export-every 2 --save-every 2 --log-every 1 --sample-every 1000"
# short names the direction specs of scripts/emoji_directions.py need on both sides (the examples lack them)
EXTRA_NAMES = {"slightly_frowning_face": ["slightly_frowning_face", "frowning"]}


def tiny_emoji_archive(folder: Path) -> Path:
    """``scripts/emoji_dataset.py``'s layout (metadata.jsonl, images/SOURCE/CODE.png) from the examples, as .tar.gz."""
    data = folder / "emoji"
    rows = []
    for entry in json.loads((EXAMPLES_DIR / "index.json").read_text()):
        target = data / "images" / entry["source"] / f"{entry['unified']}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((EXAMPLES_DIR / entry["file"]).read_bytes())
        rows.append({
            "file": str(target.relative_to(data)), "unified": entry["unified"], "name": entry["name"],
            "short_names": EXTRA_NAMES.get(entry["short_name"], [entry["short_name"]]),
            "category": "Smileys & Emotion", "subcategory": entry["subcategory"], "source": entry["source"],
            "package": entry["package"], "license": entry["license"], "attribution": entry["attribution"],
            "split": entry["split"],
        })
    (data / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    archive = folder / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(data, arcname="emoji")
    return archive


@pytest.mark.slow
def test_continue_training_rehearsal_brings_back_a_rebuilt_model(tmp_path: Path) -> None:
    archive, out, work = tiny_emoji_archive(tmp_path), tmp_path / "out", tmp_path / "work"
    env = {**os.environ, "TRAIN_ARGS": TINY_TRAINING, "WORK": str(work), "OMP_NUM_THREADS": "2",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", "scripts/continue_training.sh", str(archive), "5", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    parts = sorted(out.glob("default_model.tar.part-*"))
    assert parts and all(p.stat().st_size <= 15 * 2**20 for p in parts)
    back = tmp_path / "back"
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts))) as tar:
        tar.extractall(back, filter="data")
    folder = back / "default_model"
    shipped = json.loads((Path(smapgan.DEFAULT_MODEL) / "training.json").read_text())
    continued = json.loads((folder / "training.json").read_text())
    assert continued["images_seen"] != shipped["images_seen"]  # the export is the continued run's, not a copy

    model = smapgan.StyleMapGAN.from_pretrained(folder)
    assert model.prior is not None and set(model.directions) == {"smile", "tears", "open_mouth"}
    card = (folder / "README.md").read_text()
    for name in ("samples_prior.png", "samples_mapping.png", "style_mix.png", "figure.png", "nearest_prior.png",
                 *(f"direction_{d}.webp" for d in model.directions)):
        assert (folder / name).is_file(), name
        assert f"({name})" in card, name
    assert "## How the configuration was chosen" in card  # carried over from the model it continues
    assert (back / "docs" / "figure.png").is_file() and (back / "docs" / "ops" / "random.png").is_file()
