"""Best-of-k sampling (``StyleMapGAN.sample(..., candidates=k)``) and the Random op's use of it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import smapgan
from smapgan import StyleMapGAN
from smapgan.model.prior import StylemapPrior
from smapgan.model.stylemapgan import DETAIL_CAP, central_detail
from smapgan.ops import OpContext, OpError, discover


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test of this module on one torch thread (see conftest)."""


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path) -> StyleMapGAN:
    model = StyleMapGAN.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        codes = model.encode(torch.rand(40, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    model.prior = StylemapPrior.fit(codes, rank=8, components=2, iterations=10)
    return model


def seed(s: int) -> torch.Generator:
    return torch.Generator().manual_seed(s)


@pytest.mark.parametrize("source", ["prior", "mapping"])
def test_best_of_k_is_deterministic_per_seed(model: StyleMapGAN, source: str) -> None:
    first = model.sample(3, 0.7, source=source, generator=seed(1), candidates=4)
    assert torch.equal(first, model.sample(3, 0.7, source=source, generator=seed(1), candidates=4))
    assert not torch.equal(first, model.sample(3, 0.7, source=source, generator=seed(2), candidates=4))


def test_one_candidate_is_the_plain_draw(model: StyleMapGAN) -> None:
    assert torch.equal(model.sample(3, 0.7, generator=seed(5), candidates=1), model.prior.sample(3, 0.7, seed(5)))
    mapped = model.sample(2, 1.0, source="mapping", generator=seed(5), candidates=1)
    with torch.no_grad():
        assert torch.equal(mapped, model.map(torch.randn(2, 8, generator=seed(5))))


def test_cycle_error_is_the_distance_of_the_reencoded_picture(model: StyleMapGAN) -> None:
    w = model.prior.sample(3, 1.0, seed(0))
    with torch.no_grad():
        expected = (model.encode(model.decode(w).clamp(-1, 1)) - w).pow(2).mean((1, 2, 3))
    torch.testing.assert_close(model.cycle_error(w), expected)


def test_central_detail_is_the_luminance_variance_of_the_central_half() -> None:
    flat = torch.full((1, 3, 16, 16), 0.5)
    centre_dot, corner_dot = flat.clone(), flat.clone()
    centre_dot[..., 6:10, 6:10] = -1.0  # 16 of the central half's 64 pixels
    corner_dot[..., 0:4, 0:4] = -1.0  # outside it
    detail = central_detail(torch.cat([flat, centre_dot, corner_dot]))
    torch.testing.assert_close(detail, torch.tensor([0.0, 1.5**2 * (16 / 64) * (48 / 64), 0.0]))


def test_candidate_score_is_cycle_error_over_capped_detail(model: StyleMapGAN) -> None:
    w = model.prior.sample(6, 1.0, seed(0))
    with torch.no_grad():
        detail = central_detail(model.decode(w).clamp(-1, 1))
    torch.testing.assert_close(model.candidate_score(w), model.cycle_error(w) / detail.clamp(1e-6, DETAIL_CAP))


@pytest.mark.parametrize("source", ["prior", "mapping"])
def test_each_sample_is_its_groups_best_scored_draw(model: StyleMapGAN, source: str) -> None:
    n, k = 4, 5
    draws = model.sample(n * k, 0.9, source=source, generator=seed(3), candidates=1).reshape(n, k, 8, 4, 4)
    errors = torch.stack([model.candidate_score(group) for group in draws])
    best, worst = errors.argmin(1), errors.argmax(1)
    assert len(set(best.tolist())) > 1 and (best != worst).all()  # the data can tell a broken picker apart
    picked = model.sample(n, 0.9, source=source, generator=seed(3), candidates=k)
    assert torch.equal(picked, draws[torch.arange(n), best])


def test_bundled_model_passes_over_the_blank_face_cycle_error_alone_would_keep() -> None:
    """Seed 9's five draws: the one that re-encodes best is a plain yellow disc; the score keeps a face."""
    bundled = StyleMapGAN.from_pretrained(smapgan.DEFAULT_MODEL)
    draws = bundled.sample(5, 0.7, generator=seed(9))  # sample(1, candidates=5) draws these five
    with torch.no_grad():
        detail = central_detail(bundled.decode(draws).clamp(-1, 1))
    blank, kept = int(bundled.cycle_error(draws).argmin()), int(bundled.candidate_score(draws).argmin())
    assert detail[blank] < 0.1 * DETAIL_CAP and detail[kept] >= DETAIL_CAP and kept != blank
    assert torch.equal(bundled.sample(1, 0.7, generator=seed(9), candidates=5), draws[kept:kept + 1])


def test_bad_candidates_are_refused(model: StyleMapGAN) -> None:
    with pytest.raises(ValueError, match="candidates must be at least 1"):
        model.sample(1, candidates=0)


def test_projection_is_rounds_of_decode_and_encode_after_the_pick(model: StyleMapGAN) -> None:
    picked = model.sample(3, 0.7, generator=seed(6), candidates=2)
    with torch.no_grad():
        once = model.encode(model.decode(picked).clamp(-1, 1))
        twice = model.encode(model.decode(once).clamp(-1, 1))
    assert not torch.allclose(once, picked, atol=1e-3)
    torch.testing.assert_close(model.sample(3, 0.7, generator=seed(6), candidates=2, project=1), once)
    torch.testing.assert_close(model.sample(3, 0.7, generator=seed(6), candidates=2, project=2), twice)
    assert torch.equal(model.sample(3, 0.7, generator=seed(6), candidates=2, project=2),
                       model.sample(3, 0.7, generator=seed(6), candidates=2, project=2))
    with pytest.raises(ValueError, match="project must be at least 0"):
        model.sample(1, project=-1)


def test_projection_moves_bundled_prior_draws_onto_the_encoders_codes() -> None:
    """On the bundled model a projected draw is nearly a fixed point of decode-encode; the raw draw is not."""
    bundled = StyleMapGAN.from_pretrained(smapgan.DEFAULT_MODEL)
    raw = bundled.sample(8, 0.7, generator=seed(0))
    projected = bundled.sample(8, 0.7, generator=seed(0), project=1)
    assert (bundled.cycle_error(projected) < 0.5 * bundled.cycle_error(raw)).all()


def test_random_op_samples_best_of_its_default(model: StyleMapGAN) -> None:
    op = discover(paths=[])["random"]
    default = next(i for i in op.inputs if i.name == "candidates").default
    rounds = next(i for i in op.inputs if i.name == "project").default
    assert default > 1 and rounds >= 1
    ctx = OpContext(model)
    with torch.inference_mode():
        best = model.decode(model.sample(1, 0.7, generator=seed(4), candidates=default, project=rounds))
        plain = model.decode(model.sample(1, 0.7, generator=seed(4)))
    assert not torch.allclose(best, plain, atol=1e-3)  # seed 4's first draw is not its best
    torch.testing.assert_close(op.run(ctx, seed=4, truncation=0.7)["image"], best, atol=1e-5, rtol=0)
    torch.testing.assert_close(op.run(ctx, seed=4, truncation=0.7, candidates=1, project=0)["image"], plain,
                               atol=1e-5, rtol=0)
    with pytest.raises(OpError, match="candidates"):
        op.run(ctx, seed=4, truncation=0.7, candidates=9)


def test_random_op_draws_the_mapping_network_once(model: StyleMapGAN) -> None:
    """Candidates and projection are for the prior: the mapping network's draw is the plain one whatever the sliders say."""
    op = discover(paths=[])["random"]
    ctx = OpContext(model)
    with torch.inference_mode():
        plain = op.run(ctx, seed=4, truncation=1.0, source="mapping", candidates=1)["image"]
        assert not torch.allclose(model.decode(model.sample(1, 1.0, source="mapping", generator=seed(4), candidates=4)),
                                  plain, atol=1e-3)
    torch.testing.assert_close(op.run(ctx, seed=4, truncation=1.0, source="mapping", candidates=4, project=2)["image"],
                               plain, atol=1e-5, rtol=0)
