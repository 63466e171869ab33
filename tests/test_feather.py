"""Soft masks: editing.feather and the feather control of the transplant ops."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from smapgan import StyleMapGAN
from smapgan.latent import editing
from smapgan.ops import OpContext, discover

EXAMPLES = Path(__file__).resolve().parent.parent / "smapgan" / "assets" / "examples"


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small models: one torch thread (see conftest)


@pytest.fixture(scope="module")
def ctx(tiny_model_dir) -> OpContext:
    return OpContext(StyleMapGAN.from_pretrained(tiny_model_dir))


@pytest.fixture(scope="module")
def registry():
    return discover()


def _box(size: int = 64) -> torch.Tensor:
    m = torch.zeros(1, 1, size, size)
    m[..., 16:40, 8:48] = 1
    return m


def test_feather_zero_is_the_mask_itself():
    m = _box()
    assert editing.feather(m, 0) is m
    assert editing.feather(m, -1) is m


@pytest.mark.parametrize("pixels", [1, 4, 12])
def test_feather_keeps_the_inside_and_softens_the_border(pixels):
    m = _box()
    soft = editing.feather(m, pixels)
    assert soft.shape == m.shape
    assert torch.equal(soft[m.bool()], torch.ones(int(m.sum())))  # inside: exactly 1
    assert soft.min() >= 0 and soft.max() <= 1
    ring = soft[..., 14:16, 20:30]  # just above the box: fractional
    assert ((ring > 0) & (ring < 1)).all()
    assert soft[..., 63, 63] < 0.02 + (pixels >= 12)  # far away: (nearly) 0
    # Pooled to each pyramid level as a fractional weight: cells inside stay 1, border cells are between.
    for side in (8, 16, 32, 64):
        inside = editing.pool_mask(m, side, "avg") == 1
        weight = editing.pool_mask(soft, side, "avg")
        assert torch.equal(weight[inside], torch.ones(int(inside.sum())))
        assert ((weight > 0) & (weight < 1)).any()
    # Wider feathers spread further.
    assert editing.feather(m, pixels + 2).sum() > soft.sum()


@pytest.mark.parametrize("space", ["w+", "w"])
def test_feather_zero_equals_the_current_blend_bit_for_bit(registry, ctx, space):
    original = ctx.picture(EXAMPLES / "neutral_face.png")
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 6:15, 4:28] = 1
    reference = ctx.picture(EXAMPLES / "heart_eyes.png", mask)
    op = registry["local_transplant"]
    zero = op.run(ctx, original=original, references=[reference], space=space, feather=0)["image"]
    if space == "w+":
        start, ref = ctx.pyramid(ctx.encode(original)), ctx.pyramid(ctx.encode(reference))
        blended = editing.blend_pyramid(start, ref, mask, "max")
        expected = ctx.render(blended, base=None)
    else:
        blended = editing.blend_stylemap(ctx.encode(original).stylemap, ctx.encode(reference).stylemap, mask)
        expected = ctx.render(ctx.expand(blended, base=None), base=None)
    assert torch.equal(zero, expected)
    soft = op.run(ctx, original=original, references=[reference], space=space, feather=4)["image"]
    assert not torch.equal(soft, zero) and torch.isfinite(soft).all()
    if space == "w+":
        weight = editing.feather(mask, 4)
        expected = editing.blend_pyramid(ctx.pyramid(ctx.encode(original)), ctx.pyramid(ctx.encode(reference)), weight,
                                         "avg")
        assert torch.equal(soft, ctx.render(expected, base=None))
    un = registry["unaligned_transplant"]
    assert torch.equal(un.run(ctx, original=original, reference=reference, space=space, feather=0)["image"], zero)
    soft_un = un.run(ctx, original=original, reference=reference, space=space, feather=4)["image"]
    torch.testing.assert_close(soft_un, soft)  # zero offset: the same soft blend
