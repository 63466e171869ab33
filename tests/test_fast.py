"""The CPU fast paths (smapgan.fast): exact against the model, fast mode within its PSNR bound, bounded caches."""

from __future__ import annotations

import ctypes
import os

import pytest
import torch

from smapgan import StyleMapGAN, StyleMapGANConfig
from smapgan.latent import editing
from smapgan.fast import FastRenderer, LRUCache
from smapgan.fast.incremental import expand_window
from smapgan.fast.prepared import PreparedDecoder, PreparedEncoder
from smapgan.render import Encoded
from tests.models import NARROW, images, model, perturbed, psnr  # noqa: F401  (fixtures)

SIZE = NARROW.size
ATOL = 1e-4
PSNR_MIN = 40.0


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small models: one torch thread (see conftest)


@pytest.fixture(params=[None, False], ids=["weights-kept", "weights-folded-per-call"])
def renderer(model: StyleMapGAN, request: pytest.FixtureRequest) -> FastRenderer:
    """Both ways of holding the float32 weights (a small model keeps them by default)."""
    return FastRenderer(model, keep_float32_weights=request.param)


def test_small_models_keep_float32_weights(model, monkeypatch):
    from smapgan.fast import renderer as renderer_module

    assert FastRenderer(model)._engine.keep_float32  # a few MB: kept
    monkeypatch.setattr(renderer_module, "KEEP_WEIGHTS_BYTES", 1024)
    assert not FastRenderer(model)._engine.keep_float32  # over the limit: folded when used
    assert FastRenderer(model, keep_float32_weights=True)._engine.keep_float32


def box_mask(*boxes: tuple[int, int, int, int], size: int = SIZE) -> torch.Tensor:
    m = torch.zeros(1, 1, size, size)
    for y0, y1, x0, x1 in boxes:
        m[..., y0:y1, x0:x1] = 1
    return m


MASKS = {
    "empty": box_mask(),
    "full": box_mask((0, SIZE, 0, SIZE)),
    "small": box_mask((20, 26, 30, 37)),
    "quarter": box_mask((16, 48, 16, 48)),
    "corner": box_mask((0, 24, 40, 64)),
    "two_regions": box_mask((4, 14, 6, 20), (40, 60, 36, 58)),
    "random": (torch.rand(1, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(5)) > 0.97).float(),
}


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


@torch.no_grad()
def test_prepared_networks_equal_the_model(model, images):
    s = model.encode(images)
    assert max_err(PreparedEncoder(model.encoder).encode(images), s) < ATOL
    dec = PreparedDecoder(model.generator.decoder)
    for mine, ref in zip(dec.expand(s), model.expand(s)):
        assert max_err(mine, ref) < ATOL
    assert max_err(dec.decode(s), model.decode(s)) < ATOL


@torch.no_grad()
def test_renderer_interface_equals_model(model, images, renderer):
    h = renderer.encode(images[:1])
    s = h.stylemap
    assert max_err(s, model.encode(images[:1])) < ATOL
    assert max_err(renderer.decode(s), model.decode(s)) < ATOL
    assert max_err(renderer.render(renderer.expand(s)), model.decode(s)) < ATOL
    assert max_err(renderer.render(h), model.decode(s)) < ATOL
    assert renderer.mode == "exact" and renderer.modes == ("exact", "fast")


def _pair(renderer, images, warm_reference: bool):
    """Two encoded images (handles), their stylemaps and pyramids; the first one rendered."""
    ha, hb = renderer.encode(images[:1]), renderer.encode(images[1:2])
    pa, pb = renderer.pyramid(ha), renderer.pyramid(hb)
    renderer.render(ha)
    if warm_reference:
        renderer.render(hb)  # the reference's gamma/beta are cached: its region is copied, not convolved
    return ha, hb, pa, pb


@pytest.mark.parametrize("warm_reference", [False, True], ids=["cold_ref", "warm_ref"])
@pytest.mark.parametrize("mask_name", list(MASKS))
@torch.no_grad()
def test_pyramid_blend_exact(model, images, renderer, mask_name, warm_reference):
    ha, _, pa, pb = _pair(renderer, images, warm_reference)
    for pooling, threshold in (("max", None), ("avg", 0.5), ("avg", None)):
        edited = editing.blend_pyramid(pa, pb, MASKS[mask_name], pooling=pooling, threshold=threshold)
        assert max_err(renderer.render(edited, base=ha), model.synthesize(edited)) < ATOL


@pytest.mark.parametrize("mask_name", ["small", "quarter", "two_regions", "full"])
@torch.no_grad()
def test_stylemap_blend_exact(model, images, renderer, mask_name):
    ha, hb, _, _ = _pair(renderer, images, True)
    s = editing.blend_stylemap(ha.stylemap, hb.stylemap, MASKS[mask_name])
    pyramid = renderer.expand(s, base=ha)  # a local stylemap change: the pyramid is recomputed in windows
    for mine, ref in zip(pyramid, model.expand(s)):
        assert max_err(mine, ref) < ATOL
    assert max_err(renderer.render(pyramid, base=ha), model.decode(s)) < ATOL


@pytest.mark.parametrize("offset", [(0, 0), (8, -12), (-20, 30), (63, 0)])
@torch.no_grad()
def test_unaligned_transplant_exact(model, images, renderer, offset):
    ha, _, pa, pb = _pair(renderer, images, True)
    edited = editing.transplant_pyramid(pa, pb, MASKS["quarter"], offset, SIZE)
    assert max_err(renderer.render(edited, base=ha), model.synthesize(edited)) < ATOL


@torch.no_grad()
def test_global_edits_exact(model, images, renderer):
    ha, hb, pa, pb = _pair(renderer, images, True)
    sa, sb = ha.stylemap, hb.stylemap
    lerped = renderer.expand(editing.lerp(sa, sb, 0.3), base=ha)
    assert max_err(renderer.render(lerped, base=ha), model.decode(editing.lerp(sa, sb, 0.3))) < ATOL
    mixed = editing.style_mix(pa, pb, range(4, NARROW.num_levels))
    assert max_err(renderer.render(mixed, base=ha), model.synthesize(mixed)) < ATOL
    d = torch.randn(16, 8, 8, generator=torch.Generator().manual_seed(3))
    local = editing.apply_direction(sa, d, 2.0, MASKS["quarter"])
    assert max_err(renderer.render(renderer.expand(local, base=ha), base=ha), model.decode(local)) < ATOL


@torch.no_grad()
def test_unknown_base_and_no_base(model, images, renderer):
    ha, _, pa, pb = _pair(renderer, images, False)
    edited = editing.blend_pyramid(pa, pb, MASKS["quarter"])
    stranger = Encoded("stranger", ha.stylemap + 0.01)  # a base the cache has never seen, not where the edit started
    assert max_err(renderer.render(edited, base=stranger), model.synthesize(edited)) < ATOL
    assert max_err(renderer.render(edited), model.synthesize(edited)) < ATOL
    batch = [torch.cat([a, b]) for a, b in zip(pa, edited)]
    assert max_err(renderer.render(batch, base=ha), model.synthesize(batch)) < ATOL


@torch.no_grad()
def test_render_path_equals_lerp(model, images, renderer):
    ha, _, pa, pb = _pair(renderer, images, False)
    edited = editing.blend_pyramid(pa, pb, MASKS["two_regions"])
    ts = [0.0, 0.2, 0.5, 0.8, 1.0]
    frames = list(renderer.render_path(ha, edited, ts))
    assert len(frames) == len(ts)
    for frame, t in zip(frames, ts):
        assert max_err(frame, model.synthesize(editing.lerp_pyramid(pa, edited, t))) < ATOL


@torch.no_grad()
def test_render_path_first_frame_before_the_edit_maps(model, images, renderer):
    """The t=0 frame (the original) comes out before the edit's gamma/beta patches are computed."""
    ha, _, pa, pb = _pair(renderer, images, False)
    edited = editing.blend_pyramid(pa, pb, MASKS["quarter"])
    patch_sets = renderer.stats["patch_sets"]
    frames = renderer.render_path(ha, edited, [0.0, 1.0])
    first = next(frames)
    assert renderer.stats["patch_sets"] == patch_sets
    assert max_err(first, model.synthesize(pa)) < ATOL
    assert max_err(next(frames), model.synthesize(edited)) < ATOL
    assert renderer.stats["patch_sets"] == patch_sets + 1


@torch.no_grad()
def test_cached_maps_survive_edits(model, images, renderer):
    """Patches are written into the cached base maps for one layer at a time and restored bit for bit."""
    ha, _, pa, pb = _pair(renderer, images, True)
    before = renderer.render(ha)
    entry = renderer.cache.get(ha.key)
    maps = [(g.clone(), b.clone()) for g, b in entry.modulations[torch.float32].made()]
    for name in ("quarter", "two_regions", "full"):
        renderer.render(editing.blend_pyramid(pa, pb, MASKS[name]), base=ha)
        list(renderer.render_path(ha, editing.blend_pyramid(pa, pb, MASKS[name]), [0.5]))
    assert torch.equal(renderer.render(ha), before)
    assert torch.equal(renderer.render(pa, base=ha), before)
    for (g0, b0), (g1, b1) in zip(maps, entry.modulations[torch.float32].made()):
        assert torch.equal(g0, g1) and torch.equal(b0, b1)


@pytest.mark.parametrize("mask_name", ["small", "quarter", "two_regions", "full"])
@torch.no_grad()
def test_fast_mode_psnr(model, images, renderer, mask_name):
    fast = renderer.with_mode("fast")
    assert fast.mode == "fast" and fast.cache is renderer.cache and renderer.mode == "exact"
    ha, hb, pa, pb = _pair(renderer, images, True)
    fast.render(ha)
    fast.render(hb)
    edited = editing.blend_pyramid(pa, pb, MASKS[mask_name])
    exact = model.synthesize(edited)
    assert psnr(fast.render(edited, base=ha), exact) >= PSNR_MIN
    frames = list(fast.render_path(ha, edited, [0.5]))
    assert psnr(frames[0], model.synthesize(editing.lerp_pyramid(pa, edited, 0.5))) >= PSNR_MIN


@torch.no_grad()
def test_cache_is_bounded(model, images):
    renderer = FastRenderer(model, max_images=2)
    g = torch.Generator().manual_seed(7)
    for _ in range(5):
        renderer.render(renderer.encode(torch.rand(1, 3, SIZE, SIZE, generator=g) * 2 - 1))
    assert len(renderer.cache) == 2
    one = renderer.cache.nbytes // 2
    small = FastRenderer(model, max_images=8, max_cache_bytes=int(one * 1.5))
    for _ in range(4):
        small.render(small.encode(torch.rand(1, 3, SIZE, SIZE, generator=g) * 2 - 1))
    # Over the byte budget the older images lose their maps first, then whole entries go.
    assert small.cache.nbytes <= one * 1.5
    newest, *older = small.cache.entries()
    assert newest.modulations and all(not e.modulations for e in older)
    # Strictly by recency: the oldest entry goes whole before a newer one loses its maps (the pair
    # being edited keeps its maps while a third, stale image is cached).
    pyramid_bytes = sum(t.numel() * t.element_size() for t in newest.pyramid)
    pair = FastRenderer(model, max_images=3, max_cache_bytes=2 * one + pyramid_bytes // 2)
    keys = []
    for _ in range(3):
        handle = pair.encode(torch.rand(1, 3, SIZE, SIZE, generator=g) * 2 - 1)
        pair.render(handle)
        keys.append(handle.key)
    assert [e.key for e in pair.cache.entries()] == keys[:0:-1]  # the two most recent, newest first
    assert all(e.modulations for e in pair.cache.entries())


@torch.no_grad()
def test_cache_keys_never_shared(model, images, renderer):
    ha, hb = renderer.encode(images[:1]), renderer.encode(images[1:2])
    sa, sb = ha.stylemap, hb.stylemap
    pa, pb = renderer.pyramid(ha), renderer.pyramid(hb)
    ea, eb = renderer.cache.get(ha.key), renderer.cache.get(hb.key)
    assert ea is not None and eb is not None and ea is not eb and ha.key != hb.key
    assert max_err(renderer.render(ha), model.decode(sa)) < ATOL
    assert max_err(renderer.render(hb), model.decode(sb)) < ATOL
    # The same pixels: the same key, the same entry, encoded once.
    again = renderer.encode(images[:1].clone())
    assert again.key == ha.key and renderer.pyramid(again)[0] is pa[0] and renderer.codes.stylemaps.misses == 2
    assert renderer.expand(sa.clone(), base=ha)[0] is pa[0]
    # An edit is recognised by its content against the base's pyramid, never by which tensors it is made of.
    changed = [t.clone() for t in pa]
    changed[3].add_(0.5)
    assert max_err(renderer.render(changed, base=ha), model.synthesize(changed)) < ATOL
    assert max_err(renderer.render(ha), model.decode(sa)) < ATOL
    # A stylemap that differs in one value is another image.
    s2 = sa.clone()
    s2[0, 0, 0, 0] += 1.0
    assert renderer.expand(s2, base=ha)[0] is not pa[0]
    assert max_err(renderer.render(renderer.expand(s2, base=ha), base=ha), model.decode(s2)) < ATOL


@torch.no_grad()
def test_expand_window_random_boxes(model):
    dec = PreparedDecoder(model.generator.decoder)
    g = torch.Generator().manual_seed(11)
    base = torch.randn(1, 16, 8, 8, generator=g).relu()
    base_pyr = dec.expand(base)
    for _ in range(6):
        y0, x0 = torch.randint(0, 8, (2,), generator=g).tolist()
        h, w = torch.randint(1, 4, (2,), generator=g).tolist()
        s = base.clone()
        s[..., y0:y0 + h, x0:x0 + w] = torch.randn(1, 16, min(h, 8 - y0), min(w, 8 - x0), generator=g)
        window = expand_window(dec, s, base, base_pyr)
        assert window is not None
        for mine, ref in zip(window, dec.expand(s)):
            assert max_err(mine, ref) < 1e-5


def test_lru_cache():
    cache: LRUCache[str, torch.Tensor] = LRUCache(2, max_bytes=100)
    cache.put("a", torch.zeros(5))  # 20 bytes
    cache.put("b", torch.zeros(5))
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", torch.zeros(5))
    assert "b" not in cache and "a" in cache and "c" in cache
    cache.put("d", torch.zeros(20))  # 80 bytes: over the byte bound, the oldest go
    assert list(cache) == ["c", "d"] or list(cache) == ["d"]
    assert cache.nbytes <= 100


@torch.no_grad()
def test_other_normalizations_fall_back():
    model = perturbed(StyleMapGANConfig(size=32, latent_spatial_size=4, latent_channel_size=8, mapping_layer_num=2,
                                        channel_base=256, channel_max=32, normalize_mode="InstanceNorm2d"))
    renderer = FastRenderer(model)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    h = renderer.encode(x)
    assert torch.equal(h.stylemap, model.encode(x))
    assert torch.equal(renderer.decode(h.stylemap), model.decode(h.stylemap))
    assert torch.equal(renderer.render(h), model.decode(h.stylemap))


@torch.no_grad()
def test_clear_cache_after_new_weights(images):
    model = perturbed(NARROW, seed=3)
    renderer = FastRenderer(model)
    h = renderer.encode(images[:1])
    renderer.render(h)
    with torch.no_grad():
        model.generator.decoder.to_rgb.activate.bias.add_(1.0)
    renderer.clear_cache()  # weights are fixed for a renderer's life: whoever changes them says so
    assert max_err(renderer.render(h), model.decode(h.stylemap)) < ATOL
    assert max_err(renderer.decode(h.stylemap), model.decode(h.stylemap)) < ATOL


@pytest.mark.slow
@torch.no_grad()
def test_release_config_edit_exact_and_fast():
    """The 256/8x8 release config with random weights: exact within 1e-4, fast >= 40 dB."""
    torch.set_num_threads(2)
    model = perturbed(StyleMapGANConfig(size=256, latent_spatial_size=8, latent_channel_size=64), seed=0)
    x = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(0)) * 2 - 1
    renderer = FastRenderer(model)
    ha, hb = renderer.encode(x[:1]), renderer.encode(x[1:])
    assert max_err(ha.stylemap, model.encode(x[:1])) < ATOL
    pa, pb = renderer.pyramid(ha), renderer.pyramid(hb)
    assert max_err(renderer.render(ha), model.decode(ha.stylemap)) < ATOL
    renderer.render(hb)
    mask = box_mask((64, 192, 64, 192), size=256)
    edited = editing.blend_pyramid(pa, pb, mask)
    exact = model.synthesize(edited)
    assert max_err(renderer.render(edited, base=ha), exact) < ATOL
    fast = renderer.with_mode("fast")
    fast.render(ha)
    fast.render(hb)
    assert psnr(fast.render(edited, base=ha), exact) >= PSNR_MIN


@pytest.mark.parametrize("keep_weights", [True, False])
@pytest.mark.parametrize("force_sparse", [False, True])
@torch.no_grad()
def test_modulation_patch_matches_full_conv(model, monkeypatch, force_sparse, keep_weights):
    """Gathered cells, the whole-window conv and copies from a reference give the maps of a full conv."""
    from smapgan.fast import incremental

    monkeypatch.setattr(incremental, "SPARSE_FRACTION", 1.01 if force_sparse else 0.0)
    monkeypatch.setattr(incremental, "GATHER_BOX_CELLS", 10**9 if force_sparse else 0)
    monkeypatch.setattr(incremental, "SPARSE_CHUNK", 100)
    step = PreparedDecoder(model.generator.decoder, keep_weights=keep_weights).steps[6]
    channels = step.gamma_weight.shape[1]
    g = torch.Generator().manual_seed(4)
    for trial in range(4):
        base = torch.randn(1, channels, SIZE, SIZE, generator=g).contiguous(memory_format=torch.channels_last)
        other = torch.randn(1, channels, SIZE, SIZE, generator=g).contiguous(memory_format=torch.channels_last)
        mask = torch.zeros(1, 1, SIZE, SIZE)
        for _ in range(trial + 1):
            y, x, h, w = torch.randint(0, 40, (4,), generator=g).tolist()
            mask[..., y:y + h + 1, x:x + w + 1] = 1
        new = torch.lerp(base, other, mask.expand_as(base))
        base_maps, other_maps, want = step.modulation(base), step.modulation(other), step.modulation(new)
        for others in ([], [(other, lambda need, make=True, maps=other_maps: maps)]):
            patch = incremental.modulation_patch(step, new, base, base_maps, others)
            gamma, beta = base_maps[0].clone(), base_maps[1].clone()
            y0, y1, x0, x1 = patch.box
            patch.write([gamma[..., y0:y1, x0:x1], beta[..., y0:y1, x0:x1]])
            assert max_err(gamma, want[0]) < 1e-5 and max_err(beta, want[1]) < 1e-5


@torch.no_grad()
def test_small_box_copies_the_reference_inside_its_rim(model):
    """In a box small enough to be gathered, cells whose neighbourhood is all the reference's take its maps:
    only the rim is computed, even where the rim is most of the box (a coarse level's mask)."""
    from smapgan.fast import incremental

    step = PreparedDecoder(model.generator.decoder).steps[2]
    channels = step.gamma_weight.shape[1]
    g = torch.Generator().manual_seed(7)
    base, other = (torch.randn(1, channels, 16, 16, generator=g).contiguous(memory_format=torch.channels_last)
                   for _ in range(2))
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:10, 5:11] = 1  # 6 x 6 cells: an 8 x 8 box, 4 x 4 of them inside the rim
    new = torch.lerp(base, other, mask.expand_as(base))
    base_maps, other_maps, want = step.modulation(base), step.modulation(other), step.modulation(new)
    patch = incremental.modulation_patch(step, new, base, base_maps, [(other, lambda need, make=True: other_maps)])
    assert patch.box == (3, 11, 4, 12) and patch.computed_cells == 64 - 16
    gamma, beta = base_maps[0].clone(), base_maps[1].clone()
    patch.write([gamma[..., 3:11, 4:12], beta[..., 3:11, 4:12]])
    assert max_err(gamma, want[0]) < 1e-5 and max_err(beta, want[1]) < 1e-5


@pytest.mark.parametrize("keep_weights", [True, False])
@pytest.mark.parametrize("cells", [5, 40])
@torch.no_grad()
def test_gathered_cells_match_full_conv(model, keep_weights, cells):
    """The gathered GEMM gives a full conv's maps, from a kept channels-last weight, and from the parameter itself
    (its scale as the GEMM's alpha, the rows in its channel-major order) when fewer cells than it has rows."""
    from smapgan.fast import incremental

    step = PreparedDecoder(model.generator.decoder, keep_weights=keep_weights).steps[2]
    channels = step.gamma_weight.shape[1]
    g = torch.Generator().manual_seed(5)
    level = torch.randn(1, channels, 16, 16, generator=g).contiguous(memory_format=torch.channels_last)
    picked = torch.randperm(16 * 16, generator=g)[:cells]
    where = torch.stack([picked // 16, picked % 16], dim=1)
    unfolded = not keep_weights and cells < step.gamma_weight.shape[0]
    assert incremental.gemm_weight(step.gamma_weight, cells)[2] == unfolded
    gamma, beta = incremental.sparse_modulation(step, level, where)
    want = step.modulation(level)
    for got, full in ((gamma, want[0]), (beta, want[1])):
        assert max_err(got, full[0, :, where[:, 0], where[:, 1]].t()) < 1e-5


def test_changed_cells_match_a_plain_comparison():
    """Compared by bits (channels-last float32, channels a multiple of 16) or plainly: the same cells."""
    from smapgan.fast.incremental import changed_cells

    g = torch.Generator().manual_seed(6)
    for channels, layout in ((16, torch.channels_last), (48, torch.channels_last), (24, torch.channels_last),
                             (32, torch.contiguous_format)):
        old = torch.randn(1, channels, 9, 7, generator=g).contiguous(memory_format=layout)
        new = old.clone()
        for y, x, c in ((0, 0, 0), (3, 4, channels - 1), (8, 6, 7), (5, 1, channels // 2)):
            new[0, c, y, x] += 1.0
        got = changed_cells(new, old)
        assert got.shape == (9, 7) and torch.equal(got, (new != old).any(dim=1)[0])
        assert int(got.sum()) == 4


def test_dilation_on_the_bounding_box_matches_a_whole_mask_pooling():
    """dilate pools only around the set cells: the same cells as pooling the whole mask, at borders and corners,
    and an empty mask stays empty."""
    import torch.nn.functional as F

    from smapgan.fast.incremental import dilate

    g = torch.Generator().manual_seed(8)
    masks = [torch.zeros(7, 9, dtype=torch.bool), torch.ones(5, 4, dtype=torch.bool)]
    masks += [torch.rand(h, w, generator=g) < p for h, w, p in ((9, 7, 0.05), (12, 12, 0.2), (1, 6, 0.3), (16, 5, 0.02))]
    corner = torch.zeros(8, 8, dtype=torch.bool)
    corner[7, 0] = True
    masks.append(corner)
    for mask in masks:
        for radius in (1, 2):
            want = F.max_pool2d(mask[None, None].float(), 2 * radius + 1, stride=1, padding=radius)[0, 0] > 0
            assert torch.equal(dilate(mask, radius), want)


@pytest.mark.parametrize("mode", ["exact", "fast"])
@torch.no_grad()
def test_maps_are_made_only_where_an_edit_needs_them(model, images, mode):
    """Encoding makes no maps; a transplant makes the original's outside the mask and the
    reference's under it (tile by tile); a lerp endpoint gets none."""
    r = FastRenderer(model, mode=mode)
    dtype = r.dtype
    ha, hb = r.encode(images[:1]), r.encode(images[1:2])
    pa, pb = r.pyramid(ha), r.pyramid(hb)
    assert not r.cache.get(ha.key).modulations and not r.cache.get(hb.key).modulations
    edited = editing.blend_pyramid(pa, pb, box_mask((SIZE // 2, SIZE, SIZE // 2, SIZE)))
    out = r.render(edited, base=ha)
    if mode == "exact":
        assert max_err(out, model.synthesize(edited)) < ATOL
    else:
        assert psnr(out, model.synthesize(edited)) >= PSNR_MIN
    base, ref = r.cache.get(ha.key).modulations[dtype], r.cache.get(hb.key).modulations[dtype]
    top = len(pa) - 1  # the 64 x 64 level: 8 x 8 tiles of 8 cells; the mask is the bottom-right 4 x 4
    assert base.tiles_done(top) == 48 and ref.tiles_done(top) == 16
    cells = sum(level.shape[-1] * level.shape[-2] for level in pa)
    made = r.stats["map_cells"] + r.stats["computed_cells"]
    assert made < 1.5 * cells  # (eagerly: both images' maps, 2 x cells, and the rim)
    # A lerp of the two stylemaps: every cell changes, so no endpoint's maps are made.
    lerp = FastRenderer(model, mode=mode)
    la, lb = lerp.encode(images[:1]), lerp.encode(images[1:2])
    mid = editing.lerp(la.stylemap, lb.stylemap, 0.5)
    out = lerp.render(lerp.expand(mid, base=la), base=la)
    assert lerp.stats["map_cells"] == 0
    assert psnr(out, model.decode(mid)) >= PSNR_MIN


@torch.no_grad()
def test_the_next_edit_makes_only_the_tiles_it_has_not_seen(model, images):
    """A moved mask: the second edit makes fewer map cells than the first, and is exact; going back makes none."""
    r = FastRenderer(model)
    ha, hb = r.encode(images[:1]), r.encode(images[1:2])
    pa, pb = r.pyramid(ha), r.pyramid(hb)
    first = editing.blend_pyramid(pa, pb, box_mask((SIZE // 2, SIZE, SIZE // 2, SIZE)))
    r.render(first, base=ha)
    made_first = r.stats["map_cells"]
    second = editing.blend_pyramid(pa, pb, box_mask((SIZE // 2, SIZE, 0, SIZE // 2)))
    assert max_err(r.render(second, base=ha), model.synthesize(second)) < ATOL
    assert 0 < r.stats["map_cells"] - made_first < made_first / 2
    before = r.stats["map_cells"]
    assert max_err(r.render(first, base=ha), model.synthesize(first)) < ATOL
    assert r.stats["map_cells"] == before


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@torch.no_grad()
def test_lazily_made_maps_equal_eagerly_made_ones_bit_for_bit(model, images, dtype):
    """Maps made piecewise, in any order, equal the maps made at once bit for bit (and the full convs' closely)."""
    from smapgan.fast.lazy_maps import LazyMaps

    decoder = PreparedDecoder(model.generator.decoder, dtype)
    pyramid = decoder.expand(model.encode(images[:1]))
    eager = LazyMaps(pyramid, dtype).all(decoder)
    lazy = LazyMaps(pyramid, dtype)
    g = torch.Generator().manual_seed(3)
    for _ in range(2):  # a cell here and there first (a tile each), then the rest
        for i, level in enumerate(pyramid):
            need = torch.zeros(level.shape[-2:], dtype=torch.bool)
            need[tuple(int(torch.randint(0, n, (1,), generator=g)) for n in need.shape)] = True
            lazy.level(decoder, i, need)
    assert not lazy.complete()
    for (g0, b0), (g1, b1) in zip(eager, lazy.all(decoder)):
        assert torch.equal(g0, g1) and torch.equal(b0, b1)
    tol = 1e-5 if dtype == torch.float32 else 0.05
    for (g0, b0), (g1, b1) in zip(eager, decoder.modulations(pyramid)):
        assert max_err(g0.float(), g1.float()) < tol and max_err(b0.float(), b1.float()) < tol


@torch.no_grad()
def test_fast_precision_is_chosen_by_the_cpu(model, images, monkeypatch):
    """Without native bf16 the fast mode is float32 (and not offered); a bf16 encoder's codes are keyed
    apart from the exact ones and decode within the PSNR bound."""
    from smapgan.fast import precision

    assert precision.choose_fast(model, native_bf16=False) == precision.EXACT
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    plain = FastRenderer(model)
    assert plain.with_mode("fast").precision.is_exact and plain.offered_modes() == ("exact",)
    both = precision.Precision(torch.bfloat16, torch.bfloat16)
    fast = FastRenderer(model, fast_precision=both).with_mode("fast")
    assert fast.dtype == torch.bfloat16 and fast.precision.code_tag
    exact = fast.with_mode("exact")
    hf, he = fast.encode(images[:1]), exact.encode(images[:1])
    assert hf.key != he.key and not torch.equal(hf.stylemap, he.stylemap)
    assert psnr(fast.render(hf), model.decode(model.encode(images[:1]))) >= PSNR_MIN
    assert max_err(exact.render(he), model.decode(model.encode(images[:1]))) < ATOL  # never the bf16 code
    # A small model (this one: well under FAST_MIN_GFLOP per decode) is never offered the toggle.
    assert fast.offered_modes() == ("exact",)


@torch.no_grad()
def test_idle_worker_completes_the_maps_an_edit_began(model, images):
    """After an edit, idle time completes both images' maps; the next edit (mask moved) then makes none,
    and its result is the same as without the worker."""
    r = FastRenderer(model, fill_when_idle=True)
    ha, hb = r.encode(images[:1]), r.encode(images[1:2])
    pa, pb = r.pyramid(ha), r.pyramid(hb)
    first = editing.blend_pyramid(pa, pb, box_mask((SIZE // 2, SIZE, SIZE // 2, SIZE)))
    assert max_err(r.render(first, base=ha), model.synthesize(first)) < ATOL
    assert r.wait_idle(timeout=60)
    assert r.cache.get(ha.key).modulations[torch.float32].complete()
    before = r.stats["map_cells"]
    second = editing.blend_pyramid(pa, pb, box_mask((SIZE // 2, SIZE, 0, SIZE // 2)))
    assert max_err(r.render(second, base=ha), model.synthesize(second)) < ATOL
    assert r.stats["map_cells"] == before
    # A lerp of stylemaps begins no map: nothing to complete.
    lerp = FastRenderer(model, fill_when_idle=True)
    la, lb = lerp.encode(images[:1]), lerp.encode(images[1:2])
    lerp.render(lerp.expand(editing.lerp(la.stylemap, lb.stylemap, 0.5), base=la), base=la)
    assert lerp.wait_idle(timeout=60) and lerp.stats["map_cells"] == 0


@torch.no_grad()
def test_a_lerp_keeps_no_maps_of_its_endpoints(model, images):
    """Every cell of an interpolated pyramid changes: its base keeps no maps (no bytes in the cache)."""
    r = FastRenderer(model)
    la, lb = r.encode(images[:1]), r.encode(images[1:2])
    mid = editing.lerp(la.stylemap, lb.stylemap, 0.5)
    pyramid = r.expand(mid, base=la)  # caches the base's pyramid
    pyramid_bytes = r.cache.nbytes
    assert pyramid_bytes == sum(t.numel() * t.element_size() for t in r.pyramid(la))
    assert max_err(r.render(pyramid, base=la), model.decode(mid)) < ATOL
    assert r.cache.nbytes == pyramid_bytes


def test_a_process_exits_cleanly_while_the_idle_worker_works():
    """The worker is stopped at exit after its step: a thread inside torch at finalization aborts the process.

    One torch thread: with two on a loaded 2-core machine every parallel region waits for a descheduled
    thread, a step took up to 12 s, longer than ``stop``'s wait, and the test failed 12 of 25 times.
    """
    import subprocess
    import sys

    code = (
        "import threading, time, torch\n"
        "torch.set_num_threads(1)\n"
        "from smapgan.fast.idle import IdleWorker\n"
        "def step():\n"
        "    a = torch.randn(192, 192)\n"
        "    for _ in range(300):\n"
        "        a = torch.tanh(a @ a)\n"
        "    return True\n"
        "IdleWorker(threading.RLock(), step).kick()\n"
        "time.sleep(0.3)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "terminate called" not in out.stderr


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "mallinfo2") or "GLIBC_TUNABLES" in os.environ,
                    reason="glibc 2.33+ with its default malloc settings")
def test_a_renderer_leaves_the_allocator_alone():
    """A library never changes its host process: large blocks are still mmapped after making a renderer
    for the release 256 px model (the renderer used to switch that off for models this large)."""
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    with torch.device("meta"):  # the model's shape without its memory
        model = StyleMapGAN(StyleMapGANConfig(size=256, latent_spatial_size=8, latent_channel_size=64),
                            with_discriminator=False)
    FastRenderer(model)
    block = 64 << 20
    mapped = libc.mallinfo2().hblkhd
    libc.malloc.restype = ctypes.c_void_p
    pointer = libc.malloc(block)
    try:
        assert libc.mallinfo2().hblkhd >= mapped + block  # served by mmap, as glibc does by default
    finally:
        libc.free(ctypes.c_void_p(pointer))
