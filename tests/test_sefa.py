"""Directions without labels (SeFa) and the `smapgan direction --sefa` command."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors import safe_open

from smapgan import StyleMapGAN
from smapgan.cli import main
from smapgan.latent.directions import SEFA_WEIGHT_KEY, sefa, sefa_maps


def _weight(seed: int = 0) -> torch.Tensor:
    return torch.randn(16, 8, 3, 3, generator=torch.Generator().manual_seed(seed))


def test_sefa_orthonormal_ordered_reproducible():
    w = _weight()
    fit = sefa(w, 5)
    v = fit.vectors.double()
    assert v.shape == (5, 8) and fit.eigenvalues.shape == (5,)
    torch.testing.assert_close(v @ v.T, torch.eye(5, dtype=torch.float64), atol=1e-5, rtol=0)
    assert torch.all(fit.eigenvalues[:-1] >= fit.eigenvalues[1:]) and fit.eigenvalues[-1] > 0
    again = sefa(w.clone(), 5)
    assert torch.equal(fit.vectors, again.vectors) and torch.equal(fit.eigenvalues, again.eigenvalues)
    # They are the eigenvectors of A^T A, A the tap-summed, scaled weight (up to float error).
    a = w.double().sum((2, 3)) / (8 * 9) ** 0.5
    ata = a.T @ a
    for vec, lam in zip(v, fit.eigenvalues.double()):
        torch.testing.assert_close(ata @ vec, lam * vec, atol=1e-5, rtol=1e-4)
    # The strongest direction moves the layer's response most among unit vectors (a random one moves it less).
    rand = torch.randn(8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert (a @ v[0]).norm() >= (a @ (rand / rand.norm())).norm()


def test_sefa_maps_are_constant_per_cell_with_unit_norm_per_cell():
    maps = sefa_maps(sefa(_weight(), 3), side=4)
    assert list(maps) == ["sefa_0", "sefa_1", "sefa_2"]
    for m in maps.values():
        assert m.shape == (8, 4, 4)
        assert torch.equal(m, m[:, :1, :1].expand_as(m))
        assert m.norm().item() == pytest.approx(4.0, rel=1e-5)


def test_sefa_rejects_bad_counts():
    with pytest.raises(ValueError, match="count"):
        sefa(_weight(), 0)
    with pytest.raises(ValueError, match="count"):
        sefa(_weight(), 9)


@pytest.mark.parametrize("in_place", [True, False])
def test_direction_command_sefa(tiny_model_dir, tmp_path, capsys, in_place):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    out = folder if in_place else tmp_path / "out"
    argv = ["direction", "--sefa", "3", "--model", str(folder)] + ([] if in_place else ["--out", str(out)])
    assert main(argv) == 0
    assert "sefa_0..sefa_2" in capsys.readouterr().out
    loaded = StyleMapGAN.from_pretrained(out)
    assert set(loaded.directions) == {"demo", "sefa_0", "sefa_1", "sefa_2"}
    eigenvalues = json.loads(loaded.directions_metadata["sefa_eigenvalues"])
    assert len(eigenvalues) == 3 and eigenvalues == sorted(eigenvalues, reverse=True)
    with safe_open(str(out / "directions.safetensors"), "pt") as f:
        assert f.metadata()["sefa_layer"] == SEFA_WEIGHT_KEY
    expected = sefa(loaded.generator.decoder.convs_latent[0][0].weight, 3)
    torch.testing.assert_close(loaded.directions["sefa_1"][:, 0, 0], expected.vectors[1])
    # Running again with fewer replaces the earlier sefa_* directions; labelled ones stay.
    assert main(["direction", "--sefa", "2", "--model", str(out)]) == 0
    assert set(StyleMapGAN.from_pretrained(out).directions) == {"demo", "sefa_0", "sefa_1"}
    # The semantic edit op offers them beside the labelled one.
    from smapgan.ops import discover

    choices = discover()["semantic_edit"].inputs[1].options(StyleMapGAN.from_pretrained(out))
    assert choices == ["demo", "sefa_0", "sefa_1"]


def test_direction_command_needs_folders_or_sefa(tiny_model_dir, capsys):
    assert main(["direction", "--model", str(tiny_model_dir)]) == 2
    assert "--sefa" in capsys.readouterr().err
