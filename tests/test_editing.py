"""Invariants of the pure editing primitives and of the model's decode path."""

from __future__ import annotations

import pytest
import torch

from smapgan import StyleMapGAN, StyleMapGANConfig
from smapgan.latent import editing

TINY = StyleMapGANConfig(
    size=32, latent_spatial_size=4, latent_channel_size=8, mapping_layer_num=2, channel_base=256, channel_max=32
)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return StyleMapGAN(TINY).eval()


@pytest.fixture(scope="module")
def pair(model):
    torch.manual_seed(1)
    with torch.no_grad():
        return model.map(torch.randn(1, 8)), model.map(torch.randn(1, 8))


@torch.no_grad()
def test_decode_equals_synthesize_of_expand(model, pair):
    s = pair[0]
    assert torch.equal(model.decode(s), model.synthesize(model.expand(s)))


def test_pyramid_shapes(model, pair):
    pyr = model.expand(pair[0])
    assert len(pyr) == TINY.num_levels == 2 + 2 * 3
    assert [p.shape[-1] for p in pyr] == [TINY.level_resolution(i) for i in range(len(pyr))] == [4, 4, 8, 8, 16, 16, 32, 32]


@torch.no_grad()
@pytest.mark.parametrize("space", ["w", "w+"])
@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_empty_and_full_masks(model, pair, space, pooling):
    a, b = pair
    zero, one = torch.zeros(1, 1, 32, 32), torch.ones(1, 1, 32, 32)
    if space == "w":
        out0 = model.decode(editing.blend_stylemap(a, b, zero, pooling))
        out1 = model.decode(editing.blend_stylemap(a, b, one, pooling))
    else:
        pa, pb = model.expand(a), model.expand(b)
        out0 = model.synthesize(editing.blend_pyramid(pa, pb, zero, pooling))
        out1 = model.synthesize(editing.blend_pyramid(pa, pb, one, pooling))
    assert torch.equal(out0, model.decode(a))
    assert torch.equal(out1, model.decode(b))


def test_max_pooling_selects_any_touched_cell():
    mask = torch.zeros(1, 1, 32, 32)
    mask[0, 0, 9, 17] = 1  # one pixel in cell (1, 2) of a 4x4 grid (8 px cells)
    pooled = editing.pool_mask(mask, 4, "max")
    assert pooled.sum() == 1 and pooled[0, 0, 1, 2] == 1
    avg = editing.pool_mask(mask, 4, "avg")
    assert avg[0, 0, 1, 2] == pytest.approx(1 / 64)
    assert editing.pool_mask(mask, 4, "avg", threshold=0.5).sum() == 0


def test_pool_mask_non_integer_ratio_and_3d():
    mask = torch.ones(1, 30, 30)
    assert editing.pool_mask(mask, 4).shape == (1, 1, 4, 4)
    with pytest.raises(ValueError):
        editing.pool_mask(torch.ones(1, 2, 8, 8), 4)


def test_blend_is_local(pair):
    a, b = pair
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., :8, :8] = 1
    out = editing.blend_stylemap(a, b, mask)
    assert torch.equal(out[..., 0, 0], b[..., 0, 0])
    assert torch.equal(out[..., 1:, :], a[..., 1:, :]) and torch.equal(out[..., :, 1:], a[..., :, 1:])
    half = editing.blend_stylemap(a, b, mask, strength=0.5)
    assert torch.allclose(half[..., 0, 0], (a[..., 0, 0] + b[..., 0, 0]) / 2)


def test_lerp_endpoints_and_midpoint(pair):
    a, b = pair
    assert torch.equal(editing.lerp(a, b, 0.0), a) and torch.equal(editing.lerp(a, b, 1.0), b)
    assert torch.allclose(editing.lerp(a, b, 0.25), 0.75 * a + 0.25 * b)


def test_translate_moves_cells_without_wrapping():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y = editing.translate(x, 1, -2)
    assert y[0, 0, 1, 0] == x[0, 0, 0, 2] and y[0, 0, 0].abs().sum() == 0 and y[0, 0, :, 2:].abs().sum() == 0
    assert editing.translate(x, 4, 0).abs().sum() == 0


def test_transplant_zero_offset_equals_blend(model, pair):
    a, b = pair
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:20, 4:12] = 1
    pa, pb = model.expand(a), model.expand(b)
    moved = editing.transplant_pyramid(pa, pb, mask, (0, 0), 32)
    blended = editing.blend_pyramid(pa, pb, mask)
    assert all(torch.equal(m, bl) for m, bl in zip(moved, blended))


def test_transplant_moves_reference_region(pair):
    a, b = pair
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., :8, :8] = 1  # cell (0,0) of the reference ...
    out = editing.transplant(a, b, mask, (16, 8), 32)  # ... lands on cell (2,1)
    assert torch.equal(out[..., 2, 1], b[..., 0, 0])
    out[..., 2, 1] = a[..., 2, 1]
    assert torch.equal(out, a)


def test_direction_strength_zero_and_mask(pair):
    a, _ = pair
    n = torch.randn(8, 4, 4)
    assert torch.equal(editing.apply_direction(a, n, 0.0), a)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 24:, 24:] = 1
    out = editing.apply_direction(a, n, 2.0, mask)
    assert torch.allclose(out[..., 3, 3], a[..., 3, 3] + 2 * n[:, 3, 3])
    assert torch.equal(out[..., :3, :], a[..., :3, :])


def test_style_mix(pair):
    a, b = pair
    mixed = editing.style_mix([a, a, a], [b, b, b], [1])
    assert mixed[0] is a and mixed[1] is b and mixed[2] is a


def test_input_validation(model):
    with pytest.raises(ValueError, match="images must have shape"):
        model.encode(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="stylemap must have shape"):
        model.decode(torch.zeros(1, 8, 2, 2))
    with pytest.raises(ValueError, match="pyramid"):
        model.synthesize(model.expand(torch.zeros(1, 8, 4, 4))[:-1])
