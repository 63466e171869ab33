"""The local render (smapgan.fast.local): an edit re-rendered only where it changes, with the base's statistics."""

from __future__ import annotations

import pytest
import torch

from smapgan import StyleMapGAN, StyleMapGANConfig
from smapgan.fast import FastRenderer
from smapgan.fast.local import synthesize_frozen
from smapgan.latent import editing
from smapgan.preview import previewed
from tests.models import NARROW, images, model, psnr  # noqa: F401  (fixtures)

SIZE = NARROW.size
ATOL = 1e-4
MASKS = {
    "corner": (0, 12, 0, 12),
    "border": (20, 36, 52, 64),
    "one-pixel-corner": (63, 64, 63, 64),
    "inside": (24, 40, 20, 36),
    "everything": (0, SIZE, 0, SIZE),
}


def box_mask(y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    m = torch.zeros(1, 1, SIZE, SIZE)
    m[..., y0:y1, x0:x1] = 1
    return m


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small models: one torch thread (see conftest)


def frozen_full(renderer: FastRenderer, edit: list[torch.Tensor], base) -> torch.Tensor:
    """A plain full synthesis of the edit's own maps (made whole, not patched) with the base's recorded statistics."""
    decoder = renderer._engine.decoder(renderer.dtype)
    features = renderer.cache.get(base.key).features[renderer.dtype]
    return synthesize_frozen(decoder, decoder.modulations(edit), features)


@torch.no_grad()
@pytest.mark.parametrize("mask_name", list(MASKS))
@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_local_equals_frozen_statistics_full_render(model, images, mask_name, mode):
    convs = torch.float32 if mode == "exact" else None  # (the fast mode: its own dtype, bf16 where it pays)
    renderer = FastRenderer(model, local_max_cost=1.0, local_max_area=1.0, local_margin=None,
                            local_conv_dtype=convs).with_mode(mode)
    a, b = renderer.encode(images[:1]), renderer.encode(images[1:2])
    pa, pb = renderer.pyramid(a), renderer.pyramid(b)
    for edit in (editing.blend_pyramid(pa, pb, box_mask(*MASKS[mask_name])),
                 renderer.expand(editing.blend_stylemap(a.stylemap, b.stylemap, box_mask(*MASKS[mask_name])), base=a)):
        image, exact = renderer.render_local(edit, base=a)
        assert not exact and renderer.stats["local"] >= 1
        want = frozen_full(renderer, edit, a)
        tol = ATOL if mode == "exact" else 0.05  # bf16 maps: rounding of the patched vs the whole maps
        assert float((image - want).abs().max()) < tol
        assert float((image - renderer.render_frozen(edit, base=a)).abs().max()) < tol
        # Frozen statistics are an approximation: the exact render differs, but little.
        assert psnr(image, renderer.render(edit, base=a)) > 25


@torch.no_grad()
@pytest.mark.parametrize("mask_name", ["corner", "inside", "everything"])
def test_bf16_window_convs_stay_close_to_the_float32_local_render(model, images, mask_name):
    """The exact mode's preview with its window convs in bfloat16 differs from the float32 local render by bf16
    rounding only (a wrongly folded or cast conv copy would not)."""
    a_renderer = FastRenderer(model, local_max_cost=1.0, local_max_area=1.0, local_conv_dtype=torch.float32)
    b_renderer = FastRenderer(model, local_max_cost=1.0, local_max_area=1.0, local_conv_dtype=torch.bfloat16)
    shown = {}
    for name, renderer in (("float32", a_renderer), ("bfloat16", b_renderer)):
        a, b = renderer.encode(images[:1]), renderer.encode(images[1:2])
        edit = editing.blend_pyramid(renderer.pyramid(a), renderer.pyramid(b), box_mask(*MASKS[mask_name]))
        image, exact = renderer.render_local(edit, base=a)
        assert not exact and renderer.dtype == torch.float32
        shown[name] = image
    diff = shown["bfloat16"] - shown["float32"]
    assert float(diff.abs().max()) > 0  # the convs did run in bf16
    # (this model's images span about +-6: the fast mode's bf16 decoder differs from exact by up to 0.15)
    assert float(diff.abs().max()) < 0.2 and psnr(shown["bfloat16"], shown["float32"]) > 40


@torch.no_grad()
def test_base_statistics_reproduce_the_base(model, images):
    """With the base's own maps, the frozen render is the base's exact image (the statistics are the right ones)."""
    renderer = FastRenderer(model, local_margin=None)
    a, b = renderer.encode(images[:1]), renderer.encode(images[1:2])
    renderer.render_local(editing.blend_pyramid(renderer.pyramid(a), renderer.pyramid(b), box_mask(0, 8, 0, 8)), base=a)
    assert float((frozen_full(renderer, renderer.pyramid(a), a) - model.decode(a.stylemap)).abs().max()) < ATOL


@torch.no_grad()
def test_margin_keeps_the_base_beyond_it(model, images):
    """With a margin the render changes nothing farther than it from the edited pixels, and stays close to exact."""
    margin = 8 / SIZE
    renderer = FastRenderer(model, local_max_cost=1.0, local_max_area=1.0, local_margin=margin)
    a, b = renderer.encode(images[:1]), renderer.encode(images[1:2])
    edit = editing.blend_pyramid(renderer.pyramid(a), renderer.pyramid(b), box_mask(40, 56, 40, 56))
    image, exact = renderer.render_local(edit, base=a)
    assert not exact
    base_image = renderer.render(a)
    outside = torch.ones(SIZE, SIZE, dtype=torch.bool)
    outside[40 - 8 - 1:, 40 - 8 - 1:] = False  # the footprint (the mask, +1 px of gamma/beta) grown by the margin
    assert torch.equal(image[..., outside], base_image[..., outside])
    assert not torch.equal(image[..., 40:56, 40:56], base_image[..., 40:56, 40:56])
    assert psnr(image, renderer.render(edit, base=a)) > 25


@torch.no_grad()
def test_large_regions_and_unsupported_cases_render_exactly(model, images):
    # Nothing pays: always the exact render, not made of the bf16 preview's gamma/beta patches.
    renderer = FastRenderer(model, local_max_cost=0.0, local_conv_dtype=torch.bfloat16)
    a, b = renderer.encode(images[:1]), renderer.encode(images[1:2])
    pa, pb = renderer.pyramid(a), renderer.pyramid(b)
    edit = editing.blend_pyramid(pa, pb, box_mask(0, 12, 0, 12))
    image, exact = renderer.render_local(edit, base=a)
    assert exact and float((image - model.synthesize(edit)).abs().max()) < ATOL
    image, exact = renderer.render_local(pa, base=a)  # no change: the base's image
    assert exact and torch.equal(image, renderer.render(a))
    lerped = editing.lerp_pyramid(pa, renderer.pyramid(renderer.encode(images[2:])), 0.5)  # every cell changes
    image, exact = renderer.render_local(lerped, base=a)
    assert exact and float((image - model.synthesize(lerped)).abs().max()) < ATOL


@torch.no_grad()
def test_edits_above_the_area_limit_render_exactly(model, images):
    """Beyond ``local_max_area`` of the image the frozen statistics drift too far: the exact render instead."""
    renderer = FastRenderer(model, local_max_cost=1.0, local_max_area=0.1)
    a, b = renderer.encode(images[:1]), renderer.encode(images[1:2])
    pa, pb = renderer.pyramid(a), renderer.pyramid(b)
    small = editing.blend_pyramid(pa, pb, box_mask(0, 16, 0, 16))  # 6% of the image
    large = editing.blend_pyramid(pa, pb, box_mask(0, 32, 0, 32))  # 25%
    assert not renderer.render_local(small, base=a)[1]
    image, exact = renderer.render_local(large, base=a)
    assert exact and torch.equal(image, renderer.render(large, base=a))


@torch.no_grad()
def test_features_are_bounded_with_the_cache(model, images):
    """The recorded features count in the cache's bytes, and go with an old entry's maps."""
    probe = FastRenderer(model, local_max_cost=1.0, local_max_area=1.0)
    a, b = probe.encode(images[:1]), probe.encode(images[1:2])
    probe.render_local(editing.blend_pyramid(probe.pyramid(a), probe.pyramid(b), box_mask(0, 8, 0, 8)), base=a)
    entry = probe.cache.get(a.key)
    features = entry.features[torch.float32].nbytes()
    assert features > 0 and entry.nbytes() >= features + sum(t.numel() * t.element_size() for t in entry.pyramid)
    budget = int(entry.nbytes() * 1.5)
    renderer = FastRenderer(model, max_images=8, max_cache_bytes=budget, local_max_cost=1.0, local_max_area=1.0)
    g = torch.Generator().manual_seed(5)
    handles = [renderer.encode(torch.rand(1, 3, SIZE, SIZE, generator=g) * 2 - 1) for _ in range(4)]
    for base, other in zip(handles, handles[1:] + handles[:1]):
        edit = editing.blend_pyramid(renderer.pyramid(base), renderer.pyramid(other), box_mask(8, 24, 8, 24))
        renderer.render_local(edit, base=base)
        assert renderer.cache.nbytes <= budget
    newest, *older = renderer.cache.entries()
    assert newest.features and all(not e.features for e in older[1:])


@torch.no_grad()
def test_the_exact_render_follows_and_a_caller_that_stops_after_the_preview_skips_it(model, images):
    renderer = FastRenderer(model, local_max_cost=1.0, local_max_area=1.0)
    a, b = renderer.encode(images[:1]), renderer.encode(images[1:2])
    pa, pb = renderer.pyramid(a), renderer.pyramid(b)
    first = editing.blend_pyramid(pa, pb, box_mask(8, 24, 8, 24))
    # The first edit of a base: the exact render at once (no features to record before it), then recorded.
    assert not renderer.local_ready(a)
    shown = list(previewed(renderer, first, a))
    assert [s.exact for s in shown] == [True] and renderer.stats["local"] == 0 and renderer.local_ready(a)
    assert torch.equal(shown[0].image, renderer.render(first, base=a))
    shown = list(previewed(renderer, first, a))
    assert [s.exact for s in shown] == [False, True]
    assert torch.equal(shown[-1].image, renderer.render(first, base=a))  # the last image shown is the exact one
    assert not torch.equal(shown[0].image, shown[-1].image)
    # The app stops iterating once a newer edit waits (smapgan.app.builder): no exact render is made then.
    moved = editing.blend_pyramid(pa, pb, box_mask(24, 40, 24, 40))
    stale = previewed(renderer, moved, a)
    renders = renderer.stats["renders"]
    assert not next(stale).exact
    stale.close()
    assert renderer.stats["renders"] == renders + 1  # the local render alone
    # Where the local render is the exact one (nothing pays), it is shown once, marked exact.
    exact_only = FastRenderer(model, local_max_cost=0.0)
    exact_only.prepare_local(a)
    assert [s.exact for s in previewed(exact_only, first, a)] == [True]


@torch.no_grad()
@pytest.mark.parametrize("normalize_mode", ["InstanceNorm2d", "BatchNorm2d"])
def test_other_normalizations_are_never_rendered_locally(normalize_mode):
    """The local path's error is measured for LayerNorm models only: the others get the exact render."""
    config = StyleMapGANConfig(size=32, latent_spatial_size=4, latent_channel_size=8, mapping_layer_num=2,
                               channel_base=256, channel_max=32, normalize_mode=normalize_mode)
    torch.manual_seed(0)
    model = StyleMapGAN(config, with_discriminator=False).eval()
    renderer = FastRenderer(model, local_max_cost=1.0, local_max_area=1.0)
    g = torch.Generator().manual_seed(2)
    a, b = (renderer.encode(torch.rand(1, 3, 32, 32, generator=g) * 2 - 1) for _ in range(2))
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., :8, :8] = 1
    edit = editing.blend_pyramid(renderer.pyramid(a), renderer.pyramid(b), mask)
    image, exact = renderer.render_local(edit, base=a)
    assert exact and float((image - model.synthesize(edit)).abs().max()) < ATOL
    shown = list(previewed(renderer, edit, a))  # the app's path: the exact render alone
    assert [s.exact for s in shown] == [True] and float((shown[0].image - model.synthesize(edit)).abs().max()) < ATOL
