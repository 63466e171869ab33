"""The result's before/after view: the pair a streaming run showed last is not encoded again when the run ends."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from smapgan.app import outputs
from smapgan.ops.spec import ImageOutput


def test_the_end_of_a_run_shows_the_pair_its_last_update_wrote(tmp_path, monkeypatch):
    written: list[Path] = []
    write = outputs.write_file

    def counted(*args, **kwargs):
        written.append(write(*args, **kwargs))
        return written[-1]

    monkeypatch.setattr(outputs, "write_file", counted)
    binding = outputs.build_output(ImageOutput("image", "Result"), tmp_path, "op", display=64, compare=True)
    before = Image.new("RGB", (32, 32), (10, 20, 30))
    preview, exact = torch.zeros(1, 3, 32, 32), torch.full((1, 3, 32, 32), 0.5)
    assert binding.follow is not None and binding.show is not None
    shown_preview = binding.follow(before, preview)  # the run's first update: its preview
    shown_exact = binding.follow(before, exact)  # its last update: the exact render
    assert len(written) == 4 and shown_exact != shown_preview
    slider, download = binding.show(before, exact)  # the run has ended: the same pair, and its download
    assert [slider] == shown_exact and len(written) == 5, "the pair was encoded again"
    assert download["value"] == str(written[-1]) and all(Path(p).exists() for p in slider)
    next_run = binding.follow(before, exact.clone())  # another run's value (a new tensor): written anew
    assert len(written) == 7 and next_run == shown_exact  # content-named: the same bytes, the same files
