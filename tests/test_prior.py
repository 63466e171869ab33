"""The encoded prior (smapgan.model.prior): fit, save/load, sampling, the model's and the Random op's use of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from smapgan import StyleMapGAN
from smapgan.cli import main
from smapgan.model.prior import PRIOR_NAME, StylemapPrior
from smapgan.ops import OpContext, OpError, discover

REPO = "smapgan-tester/with-prior"


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small models: one torch thread (see conftest)


def clustered_stylemaps(count: int = 60, shape: tuple[int, int, int] = (8, 4, 4), seed: int = 0) -> torch.Tensor:
    """Three well separated clusters of stylemaps, each spread along a few directions."""
    g = torch.Generator().manual_seed(seed)
    centres = 5 * torch.randn(3, *shape, generator=g)
    spread = torch.randn(3, 4, *shape, generator=g)
    which = torch.arange(count) % 3
    coeff = torch.randn(count, 4, 1, 1, 1, generator=g)
    return centres[which] + (coeff * spread[which]).sum(1)


@pytest.fixture(scope="module")
def prior() -> StylemapPrior:
    return StylemapPrior.fit(clustered_stylemaps(), rank=12, components=3, iterations=30)


@pytest.fixture(scope="module")
def model_with_prior(tiny_model_dir: Path, prior: StylemapPrior) -> StyleMapGAN:
    model = StyleMapGAN.from_pretrained(tiny_model_dir)
    model.prior = prior
    return model


def test_fit_finds_the_clusters(prior: StylemapPrior) -> None:
    data = clustered_stylemaps()
    assert prior.components == 3 and prior.rank == 12 and prior.shape == (8, 4, 4)
    centres = torch.stack([data[i::3].mean(0) for i in range(3)]).flatten(1)
    found = prior.component_means().flatten(1)
    assert torch.cdist(centres, found).min(1).values.max() < 1.0  # every cluster has a component on it
    assert torch.allclose(prior.weights, torch.full((3,), 1 / 3), atol=0.02)
    held_out = clustered_stylemaps(seed=0)[:3] + 0.01 * torch.randn(3, 8, 4, 4)
    far_away = held_out + 20
    assert (prior.log_prob(held_out) > prior.log_prob(far_away)).all()


def test_save_load_round_trip(prior: StylemapPrior, tmp_path: Path) -> None:
    path = tmp_path / PRIOR_NAME
    prior.save(path)
    loaded = StylemapPrior.load(path)
    assert loaded.shape == prior.shape
    assert torch.equal(loaded.weights, prior.weights)
    torch.testing.assert_close(loaded.basis, prior.basis, atol=1e-3, rtol=1e-3)  # float16 on disk
    torch.testing.assert_close(loaded.scales, prior.scales, atol=1e-3, rtol=1e-3)
    a = prior.sample(4, 0.7, torch.Generator().manual_seed(5))
    b = loaded.sample(4, 0.7, torch.Generator().manual_seed(5))
    assert (a - b).abs().max() < 0.02 * a.abs().max()
    prior.save(path, dtype=torch.float32)
    exact = StylemapPrior.load(path)
    assert torch.equal(exact.sample(4, 0.7, torch.Generator().manual_seed(5)), a)


def test_a_broken_prior_file_is_refused_with_its_name(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / PRIOR_NAME
    save_file({"mean": torch.zeros(4)}, str(path))
    with pytest.raises(ValueError, match=f"{PRIOR_NAME}.*not a smapgan prior"):
        StylemapPrior.load(path)


def test_sampling_is_deterministic_per_seed(prior: StylemapPrior) -> None:
    first = prior.sample(5, 0.7, torch.Generator().manual_seed(1))
    assert torch.equal(first, prior.sample(5, 0.7, torch.Generator().manual_seed(1)))
    assert not torch.equal(first, prior.sample(5, 0.7, torch.Generator().manual_seed(2)))


def test_truncation_zero_gives_the_drawn_components_mean(prior: StylemapPrior) -> None:
    samples = prior.sample(12, 0.0, torch.Generator().manual_seed(0)).flatten(1)
    means = prior.component_means().flatten(1)
    nearest = torch.cdist(samples, means).min(1)
    assert nearest.values.max() < 1e-4
    assert len(set(nearest.indices.tolist())) > 1  # not one fixed point: each sample its component's mean
    wide = prior.sample(12, 1.0, torch.Generator().manual_seed(0)).flatten(1)
    assert torch.cdist(wide, means).min(1).values.min() > 1e-2


def test_bad_arguments_are_clear(prior: StylemapPrior) -> None:
    with pytest.raises(ValueError, match="truncation"):
        prior.sample(1, 1.5)
    with pytest.raises(ValueError, match="at least 5"):
        StylemapPrior.fit(clustered_stylemaps(4), components=5)


def test_model_saves_and_loads_its_prior(model_with_prior: StyleMapGAN, tmp_path: Path) -> None:
    model_with_prior.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / PRIOR_NAME).is_file()
    loaded = StyleMapGAN.from_pretrained(tmp_path / "m")
    assert loaded.prior is not None and loaded.prior.components == 3
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(loaded.sample(2, 0.7, generator=g()), StylemapPrior.load(tmp_path / "m" / PRIOR_NAME).sample(2, 0.7, g()))
    loaded.prior = None
    loaded.save_pretrained(tmp_path / "m")  # saving without a prior removes the stale file
    assert not (tmp_path / "m" / PRIOR_NAME).exists()


def test_a_prior_for_another_stylemap_shape_is_refused(model_with_prior: StyleMapGAN, tmp_path: Path) -> None:
    model_with_prior.save_pretrained(tmp_path / "m")
    StylemapPrior.fit(clustered_stylemaps(shape=(4, 4, 4)), rank=4, components=2).save(tmp_path / "m" / PRIOR_NAME)
    with pytest.raises(RuntimeError, match="refit it with `smapgan prior fit`"):
        StyleMapGAN.from_pretrained(tmp_path / "m")


def test_model_sample_sources(model_with_prior: StyleMapGAN, tiny_model_dir: Path) -> None:
    g = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    from_prior = model_with_prior.sample(2, 0.7, generator=g())
    assert torch.equal(from_prior, model_with_prior.prior.sample(2, 0.7, g()))
    assert torch.equal(model_with_prior.sample(2, 0.7, source="prior", generator=g()), from_prior)
    mapped = model_with_prior.sample(2, 1.0, source="mapping", generator=g())
    with torch.no_grad():
        assert torch.equal(mapped, model_with_prior.map(torch.randn(2, 8, generator=g())))
    plain = StyleMapGAN.from_pretrained(tiny_model_dir)
    assert torch.equal(plain.sample(2, 1.0, generator=g()), mapped)  # no prior: the mapping network
    with pytest.raises(ValueError, match="no prior"):
        plain.sample(1, source="prior")
    with pytest.raises(ValueError, match="'prior' or 'mapping'"):
        plain.sample(1, source="noise")


def test_random_op_uses_the_prior_and_the_mapping_when_asked(model_with_prior: StyleMapGAN, tiny_model_dir: Path) -> None:
    op = discover(paths=[])["random"]
    ctx = OpContext(model_with_prior)
    image = op.run(ctx, seed=4, truncation=0.7, candidates=1, project=0)["image"]
    with torch.inference_mode():
        expected = model_with_prior.decode(model_with_prior.prior.sample(1, 0.7, torch.Generator().manual_seed(4)))
        mean = model_with_prior.decode(model_with_prior.mean_stylemap())
    torch.testing.assert_close(image, expected, atol=1e-5, rtol=0)
    mapped = op.run(ctx, seed=4, truncation=0.0, source="mapping", candidates=1)["image"]
    torch.testing.assert_close(mapped, mean, atol=1e-5, rtol=0)
    assert not torch.allclose(op.run(ctx, seed=4, truncation=0.0)["image"], mean, atol=1e-3)

    plain = OpContext(StyleMapGAN.from_pretrained(tiny_model_dir))
    assert op.inputs[2].options(plain.model) == ["mapping"]  # the choice says what is used
    assert op.inputs[2].options(model_with_prior) == ["prior", "mapping"]
    with pytest.raises(OpError, match="mapping"):
        op.run(plain, seed=4, truncation=0.7, source="prior")
    torch.testing.assert_close(op.run(plain, seed=4, truncation=0.0)["image"],
                               plain.model.decode(plain.model.mean_stylemap()), atol=1e-5, rtol=0)


def test_prior_fit_command_on_a_small_folder(tiny_model_dir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # no network: a download would fail loudly
    folder = tmp_path / "images" / "nested"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        colour = [200, 40, 40] if i % 2 else [40, 40, 200]
        Image.fromarray((rng.integers(0, 40, (32, 32, 3)) + colour).astype(np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "model"
    argv = ["prior", "fit", "--model", str(tiny_model_dir), "--data", str(tmp_path / "images"), "--out", str(out),
            "--components", "2", "--rank", "4", "--iterations", "10"]
    assert main(argv) == 0
    assert "12 stylemaps of 6 images" in capsys.readouterr().out  # each image and its mirror
    loaded = StyleMapGAN.from_pretrained(out)
    assert loaded.prior is not None and (loaded.prior.components, loaded.prior.rank) == (2, 4)
    assert set(loaded.directions) == {"demo"}  # the rest of the model came along
    assert main(["prior", "fit", "--model", str(out), "--data", str(tmp_path / "empty")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_push_to_hub_carries_the_prior(hub, model_with_prior: StyleMapGAN) -> None:
    model_with_prior.push_to_hub(REPO)
    assert PRIOR_NAME in set(hub.files(REPO))
    loaded = StyleMapGAN.from_pretrained(REPO)
    assert loaded.prior is not None
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    torch.testing.assert_close(loaded.sample(3, 0.7, generator=g()), model_with_prior.sample(3, 0.7, generator=g()),
                               atol=0.05, rtol=0.01)  # the basis travels in float16
