"""The renderer contract (smapgan.render.Renderer), run against every implementation.

A new renderer (e.g. a CUDA one) is added to ``RENDERERS`` and must pass the same tests.
"""

from __future__ import annotations

import pytest
import torch

from smapgan import StyleMapGAN, StyleMapGANConfig
from smapgan.latent import editing
from smapgan.fast import FastRenderer
from smapgan.render import Encoded, ReferenceRenderer, Renderer
from tests.models import noise_images, perturbed

SIZE = 32
CONFIG = StyleMapGANConfig(
    size=SIZE, latent_spatial_size=4, latent_channel_size=8, mapping_layer_num=2, channel_base=256, channel_max=32
)
RENDERERS = {"reference": ReferenceRenderer, "fast": FastRenderer}
ATOL = 1e-4
PSNR_MIN = 40.0


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small models: one torch thread (see conftest)


@pytest.fixture(scope="module")
def model() -> StyleMapGAN:
    return perturbed(CONFIG)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return noise_images(2, SIZE)


@pytest.fixture(params=[(name, mode) for name, cls in RENDERERS.items() for mode in cls.modes],
                ids=lambda p: f"{p[0]}-{p[1]}")
def renderer(model: StyleMapGAN, request: pytest.FixtureRequest) -> Renderer:
    name, mode = request.param
    return RENDERERS[name](model).with_mode(mode)


def close(renderer: Renderer, got: torch.Tensor, want: torch.Tensor) -> bool:
    """Exact modes within 1e-4; any other mode at 40 dB PSNR or more (images in [-1, 1])."""
    if renderer.mode == "exact":
        return float((got - want).abs().max()) < ATOL
    mse = float(((got - want) ** 2).mean())
    return mse == 0 or 10 * torch.log10(torch.tensor(4.0 / mse)).item() >= PSNR_MIN


def box(y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    m = torch.zeros(1, 1, SIZE, SIZE)
    m[..., y0:y1, x0:x1] = 1
    return m


def test_modes(renderer):
    assert isinstance(renderer, Renderer)
    assert renderer.mode in renderer.modes and renderer.modes[0] == "exact"
    for mode in renderer.modes:
        other = renderer.with_mode(mode)
        assert other.mode == mode and other.codes is renderer.codes  # one set of caches for every mode
    assert renderer.with_mode(renderer.mode) is renderer
    with pytest.raises(ValueError, match="mode"):
        renderer.with_mode("warp")


@torch.no_grad()
def test_encode_gives_stable_handles(model, images, renderer):
    a = renderer.encode(images[:1])
    assert isinstance(a, Encoded) and a.stylemap.dtype == torch.float32
    want = model.encode(images[:1])
    if renderer.code_tag:  # this mode's encoder differs (bf16): its codes are keyed apart, and decode closely
        assert close(renderer, model.decode(a.stylemap), model.decode(want))
        assert renderer.with_mode("exact").encode(images[:1]).key != a.key
    else:
        assert float((a.stylemap - want).abs().max()) < ATOL
    again = renderer.encode(images[:1].clone())
    assert again.key == a.key and torch.equal(again.stylemap, a.stylemap)
    assert renderer.encode(images[1:]).key != a.key
    assert renderer.encode(images[:1], key="mine").key == "mine" + renderer.code_tag
    assert torch.equal(renderer.encode_stylemaps(images), renderer.encode_stylemaps(images))
    with pytest.raises(ValueError, match="one image"):
        renderer.encode(images)


@torch.no_grad()
def test_pyramid_render_and_decode(model, images, renderer):
    a = renderer.encode(images[:1])
    want = model.decode(a.stylemap)
    for mine, ref in zip(renderer.pyramid(a), model.expand(a.stylemap)):
        assert float((mine - ref).abs().max()) < ATOL  # float32 in every mode
    assert close(renderer, renderer.render(a), want)
    assert close(renderer, renderer.render(renderer.pyramid(a)), want)
    assert close(renderer, renderer.decode(a.stylemap), want)
    assert torch.equal(renderer.render(a), renderer.render(a))


@torch.no_grad()
def test_edits_from_a_base(model, images, renderer):
    a, b = renderer.encode(images[:1]), renderer.encode(images[1:])
    pa, pb = renderer.pyramid(a), renderer.pyramid(b)
    mask = box(8, 20, 4, 28)
    for edited in (editing.blend_pyramid(pa, pb, mask), editing.transplant_pyramid(pa, pb, mask, (4, -8), SIZE),
                   editing.style_mix(pa, pb, range(2, len(pa)))):
        want = model.synthesize(edited)
        assert close(renderer, renderer.render(edited, base=a), want)
        assert close(renderer, renderer.render(edited), want)  # the base only saves work
        assert close(renderer, renderer.render(edited, base=b), want)
    stylemap = editing.blend_stylemap(a.stylemap, b.stylemap, mask)
    for base in (a, None):
        pyramid = renderer.expand(stylemap, base=base)
        for mine, ref in zip(pyramid, model.expand(stylemap)):
            assert float((mine - ref).abs().max()) < ATOL
        assert close(renderer, renderer.render(pyramid, base=a), model.decode(stylemap))
    assert close(renderer, renderer.render(pa, base=a), model.decode(a.stylemap))


@torch.no_grad()
def test_local_render_is_asked_for_and_render_stays_exact(model, images, renderer):
    """``render_local`` may approximate (and says so); ``render`` stays exact before and after it."""
    a, b = renderer.encode(images[:1]), renderer.encode(images[1:])
    pa, pb = renderer.pyramid(a), renderer.pyramid(b)
    edited = editing.blend_pyramid(pa, pb, box(0, 12, 20, 32))
    want = model.synthesize(edited)
    assert close(renderer, renderer.render(edited, base=a), want)
    image, exact = renderer.render_local(edited, base=a)
    assert image.shape == want.shape and image.dtype == torch.float32
    if exact:
        assert close(renderer, image, want)
    else:  # a preview: near the exact render, not equal to it
        mse = float(((image - want) ** 2).mean())
        assert 0 < mse and 10 * torch.log10(torch.tensor(4.0 / mse)).item() >= 25
    assert close(renderer, renderer.render(edited, base=a), want)
    assert close(renderer, renderer.render(a), model.decode(a.stylemap))


@torch.no_grad()
def test_render_path(model, images, renderer):
    a, b = renderer.encode(images[:1]), renderer.encode(images[1:])
    pa = renderer.pyramid(a)
    target = editing.blend_pyramid(pa, renderer.pyramid(b), box(0, 16, 0, 32))
    ts = [0.0, 0.25, 1.0]
    frames = list(renderer.render_path(a, target, ts))
    assert len(frames) == len(ts)
    for frame, t in zip(frames, ts):
        assert close(renderer, frame, model.synthesize(editing.lerp_pyramid(pa, target, t)))


@torch.no_grad()
def test_refined_codes_are_kept_by_key_and_settings(images, renderer):
    a = renderer.encode(images[:1])
    calls = []

    def refine(complete: bool):
        def run(stylemap: torch.Tensor) -> tuple[torch.Tensor, bool]:
            calls.append(complete)
            return stylemap + 0.5, complete

        return run

    stopped, complete = renderer.refined(a, "s1", refine(False))
    assert not complete and stopped.key != f"{a.key}|s1"  # used, not kept
    first, complete = renderer.refined(a, "s1", refine(True))
    assert complete and first.key == f"{a.key}|s1" and torch.equal(first.stylemap, a.stylemap + 0.5)
    again, _ = renderer.refined(a, "s1", refine(True))
    assert torch.equal(again.stylemap, first.stylemap) and calls == [False, True]
    renderer.refined(a, "s2", refine(True))
    assert calls == [False, True, True]
    assert not torch.equal(renderer.pyramid(first)[0], renderer.pyramid(a)[0])  # another image


@torch.no_grad()
def test_refined_codes_are_kept_per_session_and_outlive_encoder_uploads(images, renderer):
    a = renderer.encode(images[:1])
    calls = []

    def refine(stylemap: torch.Tensor) -> tuple[torch.Tensor, bool]:
        calls.append(1)
        return stylemap + 0.5, True

    mine, _ = renderer.refined(a, "s1", refine, session="session:a/")
    assert mine.key.startswith("session:a/") and len(calls) == 1
    theirs, _ = renderer.refined(a, "s1", refine, session="session:b/")
    assert theirs.key != mine.key and len(calls) == 2  # another session refines its own
    renderer.codes.stylemaps.max_entries = 4  # (a small cache, filled quickly)
    uploads = torch.rand(8, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5)) * 2 - 1
    for upload in uploads:  # others' encoder-only uploads overfill the encoder codes' cache
        renderer.encode(upload[None])
    assert renderer.codes.stylemaps.evictions > 0
    again, _ = renderer.refined(a, "s1", refine, session="session:a/")
    assert again.key == mine.key and torch.equal(again.stylemap, mine.stylemap) and len(calls) == 2


@torch.no_grad()
def test_new_weights_are_used_after_clear_cache(images):
    """Weights are fixed for a renderer's life; whoever changes them calls clear_cache()."""
    torch.manual_seed(2)
    model = StyleMapGAN(CONFIG, with_discriminator=False).eval()
    for cls in RENDERERS.values():
        renderer = cls(model)
        a = renderer.encode(images[:1])
        renderer.render(a)
        renderer.render(renderer.expand(a.stylemap * 0.5, base=a), base=a)
        renderer.gradient_decoder()
        mean = renderer.mean_stylemap()
        assert renderer.mean_stylemap() is mean
        model.generator.decoder.to_rgb.activate.bias.add_(1.0)  # retrained in place
        for p in model.encoder.parameters():
            p.add_(0.01)
        renderer.clear_cache()
        again = renderer.encode(images[:1])
        assert float((again.stylemap - model.encode(images[:1])).abs().max()) < ATOL
        assert float((renderer.render(again) - model.decode(again.stylemap)).abs().max()) < ATOL
        edited = renderer.expand(again.stylemap * 0.5, base=again)
        assert float((renderer.render(edited, base=again) - model.synthesize(edited)).abs().max()) < ATOL
        grad = renderer.gradient_decoder()
        assert float((grad.synthesize(grad.expand(again.stylemap)) - model.decode(again.stylemap)).abs().max()) < ATOL
        assert renderer.mean_stylemap() is not mean
