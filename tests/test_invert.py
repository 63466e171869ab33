"""Per-image refinement of the inversion (smapgan.latent.invert) and its differentiable fast decoder."""

from __future__ import annotations

import threading

import pytest
import torch

from smapgan import DEFAULT_MODEL, StyleMapGAN, StyleMapGANConfig
from smapgan.intake import images as imageio
from smapgan.latent.editing import pool_mask
from smapgan.latent.invert import DEFAULT_PROXIMITY, RefineStep, RefineTrace, psnr, reconstruct, refine
from tests.models import random_model

TINY = StyleMapGANConfig(
    size=32, latent_spatial_size=4, latent_channel_size=8, mapping_layer_num=2, channel_base=256, channel_max=32
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small models: one torch thread (see conftest)


@pytest.fixture(scope="module")
def model() -> StyleMapGAN:
    return random_model(TINY)


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(1, 3, 8, 8, generator=g) * 2 - 1  # smooth-ish target: upsampled noise
    return torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)


def _box(size: int, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    m = torch.zeros(1, 1, size, size)
    m[..., y0:y1, x0:x1] = 1
    return m


@pytest.mark.parametrize("space", ["w", "w+"])
def test_zero_steps_is_the_encoder_code_bit_for_bit(model, image, space):
    code = refine(model, image, steps=0, space=space)
    with torch.no_grad():
        s = model.encode(image)
    if space == "w":
        assert torch.equal(code, s)
    else:
        assert len(code) == TINY.num_levels
        assert all(torch.equal(a, b) for a, b in zip(code, model.expand(s)))


@pytest.mark.parametrize("space", ["w", "w+"])
def test_loss_falls_and_weights_are_untouched(model, image, space):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    trace = RefineTrace()
    code = refine(model, image, steps=24, space=space, lr=0.05, trace=trace)
    losses = torch.tensor(trace.fit_losses)
    assert len(losses) == 25 and trace.steps_done == 24 and not trace.stopped
    # Monotone on average: each third of the run is lower than the one before.
    thirds = [chunk.mean() for chunk in losses[1:].chunk(3)]
    assert losses[0] > thirds[0] > thirds[1] > thirds[2]
    # The returned code is the best one: its reconstruction error beats the encoder's.
    with torch.no_grad():
        start = ((model.decode(model.encode(image)) - image) ** 2).mean()
        end = ((reconstruct(model, code) - image) ** 2).mean()
    assert end < start
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [p.requires_grad for p in model.parameters()] == flags


@pytest.mark.parametrize("space", ["w", "w+"])
def test_mask_limits_loss_and_update(model, image, space):
    mask = _box(32, 0, 16, 0, 16)  # the top-left quarter: 2x2 of the 4x4 stylemap cells
    trace = RefineTrace()
    code = refine(model, image, steps=12, space=space, mask=mask, trace=trace)
    start = refine(model, image, steps=0, space=space)
    codes, starts = ([code], [start]) if space == "w" else (code, start)
    for c, s in zip(codes, starts):
        cells = pool_mask(mask, c.shape[-2:], "max").bool().expand_as(c)
        assert torch.equal(c[~cells], s[~cells])  # outside the mask: the encoder's code, bit for bit
        assert not torch.equal(c[cells], s[cells])
    assert trace.fit_losses[-1] < trace.fit_losses[0]
    # The loss only sees the masked pixels: an image changed outside the mask gives the same run.
    other = image.clone()
    other[..., 20:, 20:] = 1.0
    trace2 = RefineTrace()
    with torch.no_grad():
        init = model.encode(image)
    refine(model, other, steps=3, space=space, mask=mask, trace=trace2, init=init)
    trace1 = RefineTrace()
    refine(model, image, steps=3, space=space, mask=mask, trace=trace1, init=init)
    assert trace1.losses == trace2.losses


def test_deterministic(model, image):
    a = refine(model, image, steps=6, seed=1)
    b = refine(model, image, steps=6, seed=1)
    assert torch.equal(a, b)


def test_stop_early_returns_the_best_so_far(model, image):
    seen: list[RefineStep] = []

    def progress(info: RefineStep) -> bool:
        seen.append(info)
        return info.step < 3

    trace = RefineTrace()
    code = refine(model, image, steps=50, progress=progress, trace=trace)
    assert [s.step for s in seen] == [1, 2, 3] and seen[0].steps == 50
    assert trace.stopped and trace.steps_done == 3
    assert code.shape == (1, 8, 4, 4) and torch.isfinite(code).all()
    # The code returned is the best one evaluated: its objective is the minimum of the trace.
    with torch.no_grad():
        s0 = model.encode(image)
        objective = ((model.decode(code) - image) ** 2).mean() + DEFAULT_PROXIMITY * ((code - s0) ** 2).mean()
    assert float(objective) == pytest.approx(min(trace.losses), rel=1e-4)
    assert min(trace.losses) < trace.losses[0]

    event = threading.Event()
    event.set()  # set before the first step: one step runs, then it stops
    trace = RefineTrace()
    code = refine(model, image, steps=50, stop=event, trace=trace)
    assert trace.stopped and trace.steps_done == 1 and torch.isfinite(code).all()


def test_fast_decoder_matches_the_model(model, image):
    from smapgan.fast import FastRenderer

    graph = FastRenderer(model).gradient_decoder()
    assert graph is not model
    with torch.no_grad():
        s0 = model.encode(image)
    grads, outs = [], []
    for expand, synthesize in ((model.expand, model.synthesize), (graph.expand, graph.synthesize)):
        s = s0.clone().requires_grad_(True)
        y = synthesize(expand(s))
        ((y - image) ** 2).mean().backward()
        grads.append(s.grad)
        outs.append(y.detach())
    torch.testing.assert_close(outs[1], outs[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(grads[1], grads[0], atol=1e-6, rtol=1e-3)
    a = refine(model, image, steps=5, decoder=graph)
    b = refine(model, image, steps=5)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


def test_bad_arguments(model, image):
    with pytest.raises(ValueError, match="space"):
        refine(model, image, steps=1, space="z")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="steps"):
        refine(model, image, steps=-1)
    with pytest.raises(ValueError, match="mask"):
        refine(model, image, steps=1, mask=torch.ones(1, 32, 32))


def test_refinement_improves_the_bundled_model_on_an_example():
    """The bundled model (whatever its retrained weights): 20 steps beat the encoder alone."""
    model = StyleMapGAN.from_pretrained(DEFAULT_MODEL)
    path = DEFAULT_MODEL.parent / "examples" / "sunglasses.png"
    x = imageio.image_to_tensor(imageio.load_image(path, model.config.size))
    code = refine(model, x, steps=20)
    with torch.no_grad():
        before = psnr(model.decode(model.encode(x)), x)
        after = psnr(reconstruct(model, code), x)
    assert float(after - before) > 0.5


def test_adam_equals_torch_optim_adam_bit_for_bit():
    """Refinement's own Adam (smapgan.latent.adam) makes the updates torch.optim.Adam makes, to the bit."""
    from smapgan.latent.adam import Adam

    g = torch.Generator().manual_seed(0)
    start = [torch.randn(1, 8, 4, 4, generator=g), torch.randn(3, 5, generator=g)]
    target = [torch.randn(t.shape, generator=g) for t in start]
    ours = [t.clone().requires_grad_(True) for t in start]
    theirs = [t.clone().requires_grad_(True) for t in start]
    mine, reference = Adam(ours, lr=0.05), torch.optim.Adam(theirs, lr=0.05)
    for step in range(6):
        mine.zero_grad()
        reference.zero_grad(set_to_none=True)
        for params, optimizer in ((ours, mine), (theirs, reference)):
            # the second tensor gets no gradient at odd steps: both leave it as it is then
            loss = sum(((p - t) ** 4).sum() for p, t in zip(params[: 1 + step % 2], target))
            loss.backward()
            optimizer.step()
        assert all(torch.equal(a, b) for a, b in zip(ours, theirs)), f"step {step + 1}"


def test_refinement_does_not_import_torch_dynamo():
    """A one-shot refinement (the CLI's) does not pay for importing torch._dynamo, about 1 s of a fresh
    process (torch.optim's optimizers import it when the first one is made)."""
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from smapgan import StyleMapGAN, StyleMapGANConfig\n"
        "from smapgan.latent.invert import refine\n"
        "torch.manual_seed(0)\n"
        "m = StyleMapGAN(StyleMapGANConfig(size=32, latent_spatial_size=4, latent_channel_size=8,"
        " mapping_layer_num=2, channel_base=256, channel_max=32))\n"
        "refine(m, torch.rand(1, 3, 32, 32) * 2 - 1, steps=2)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip() == "False", out.stdout + out.stderr
