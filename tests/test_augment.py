"""Augmentation for limited data (issue 11): the ops, ADA's p, the trainer's wiring and resume.

Tiny tensors and the tiny trainer config of test_train.py; one torch thread.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch

from smapgan.train import augment as aug
from smapgan.train.augment import AdaptiveAugment, affine, augment, color, cutout
from smapgan.train.checkpoint import load_checkpoint
from smapgan.train.options import TrainOptions
from tests.test_train import TINY, make_images, parse, train_in_process

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def images_batch(n: int = 6, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# --------------------------------------------------------------------------- the ops


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_shape_dtype_device_and_memory_format_are_kept(device, dtype):
    x = images_batch().to(device, dtype)
    out = augment(x, 0.7, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert not torch.equal(out, x)
    cl = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device_type=device, dtype=torch.bfloat16):  # as under --amp
        out = augment(cl, 0.7, torch.Generator().manual_seed(1))
    assert out.dtype == dtype and out.is_contiguous(memory_format=torch.channels_last)


def test_p_zero_is_the_identity_and_draws_nothing():
    x = images_batch()
    g = torch.Generator().manual_seed(3)
    before = g.get_state()
    assert augment(x, 0.0, g) is x
    assert torch.equal(g.get_state(), before)
    off = AdaptiveAugment("off", 0.9, rec_p=0.0)
    state = off.generator.get_state()
    assert off(x) is x and off.reconstruction_input(x) is x
    assert torch.equal(off.generator.get_state(), state)


def test_samples_no_op_fired_on_are_left_bit_for_bit():
    x = images_batch(64)
    out = augment(x, 0.1, torch.Generator().manual_seed(0))
    same = (out == x).flatten(1).all(1)
    assert 0 < int(same.sum()) < 64  # (1 - 0.1)^6 of them untouched, the others changed
    assert 20 < int(same.sum())


def test_augmentation_never_touches_the_global_random_streams():
    torch.manual_seed(5)
    state = torch.get_rng_state()
    augment(images_batch(), 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gradients_flow_to_the_input_and_are_finite(dtype):
    x = images_batch().to(dtype).requires_grad_(True)
    out = augment(x, 1.0, torch.Generator().manual_seed(2))
    (out.float() * torch.linspace(-1, 1, 16)).sum().backward()
    assert x.grad is not None and x.grad.dtype == dtype
    assert torch.isfinite(x.grad.float()).all() and x.grad.float().abs().sum() > 0


def test_translation_by_whole_pixels_moves_the_content():
    x = images_batch(2)
    shift = torch.tensor([[3 / 16, 0.0], [0.0, -2 / 16]])  # right by 3 px; up by 2 px
    out = affine(x, shift, torch.ones(2))
    torch.testing.assert_close(out[0, :, :, 3:], x[0, :, :, :-3], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1, :, :-2, :], x[1, :, 2:, :], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[0, :, :, :3], x[0, :, :, :3].flip(-1), atol=1e-5, rtol=0)  # reflected, not black


def test_isotropic_scaling_about_the_centre():
    ramp = ((torch.arange(16) + 0.5) / 8 - 1).expand(1, 3, 16, 16).clone()  # x coordinate in [-1, 1]
    out = affine(ramp, torch.zeros(1, 2), torch.tensor([2.0]))
    torch.testing.assert_close(out, ramp / 2, atol=1e-5, rtol=0)  # content twice as large: the slope halves
    rows = affine(ramp.transpose(2, 3), torch.zeros(1, 2), torch.tensor([2.0]))
    torch.testing.assert_close(rows, ramp.transpose(2, 3) / 2, atol=1e-5, rtol=0)


def test_colour_ops_do_what_they_say():
    x = images_batch(2)
    zero, one = torch.zeros(2), torch.ones(2)
    torch.testing.assert_close(color(x, zero, one, zero), x, atol=1e-6, rtol=0)
    bright = color(x, torch.tensor([0.3, -0.2]), one, zero)
    torch.testing.assert_close(bright.mean((1, 2, 3)), x.mean((1, 2, 3)) + torch.tensor([0.3, -0.2]), atol=1e-5, rtol=0)
    gray = color(x, zero, zero, zero)  # saturation 0: every channel is the pixel's gray
    torch.testing.assert_close(gray, x.mean(1, keepdim=True).expand_as(x), atol=1e-5, rtol=0)
    turned = color(x, zero, one, torch.full((2,), 2 * math.pi / 3))  # a third of a turn: R -> G -> B -> R
    torch.testing.assert_close(turned, x.roll(1, dims=1), atol=1e-5, rtol=0)
    small = color(x, zero, one, torch.full((2,), 0.4))  # any hue turn keeps the gray level and the colourfulness
    torch.testing.assert_close(small.mean(1), x.mean(1), atol=1e-5, rtol=0)
    torch.testing.assert_close(small.norm(dim=1), x.norm(dim=1), atol=1e-5, rtol=0)


def test_cutout_zeroes_a_square_and_keeps_the_rest():
    x = images_batch(1)
    out = cutout(x, torch.tensor([[0.5, 0.25]]), 0.5)
    hole = torch.zeros(16, 16, dtype=torch.bool)
    hole[0:8, 4:12] = True
    assert (out[0][:, hole] == 0).all()
    assert torch.equal(out[0][:, ~hole], x[0][:, ~hole])


def test_the_reconstruction_augmentation_has_no_cutout():
    assert "cutout" not in aug.REC_OPS
    x = torch.ones(32, 3, 16, 16)
    out = augment(x, 1.0, torch.Generator().manual_seed(0), ops=("cutout",))
    assert (out == 0).any()
    out = augment(x, 1.0, torch.Generator().manual_seed(0), ops=("brightness",))
    assert (out != 0).all()


# --------------------------------------------------------------------------- adaptive p


def test_p_moves_by_the_ada_step_towards_the_target_and_stays_in_0_1():
    a = AdaptiveAugment("ada", 0.5, batch=16, interval=4, kimg=0.32, target=0.6)  # step 16*4/320 = 0.2
    for _ in range(4):
        a.observe(torch.tensor([[3.0], [1.0], [-1.0], [2.0]]))  # r_t = 0.5 < 0.6: D is not overfitting
    assert a.adjust(a.pending()) == pytest.approx(0.5) and a.p == pytest.approx(0.3)
    assert a.pending().tolist() == [0.0, 0.0]
    for _ in range(3):
        a.observe(-torch.ones(4, 1))
        a.adjust(a.pending())
    assert a.p == 0.0
    for _ in range(7):
        a.observe(torch.ones(4, 1))
        a.adjust(a.pending())
    assert a.rt == 1.0 and a.p == 1.0
    fixed = AdaptiveAugment("fixed", 0.2)
    fixed.observe(torch.ones(4, 1))
    assert fixed.pending().tolist() == [0.0, 0.0]


def tiny_state(augmenter: AdaptiveAugment | None = None, **options):
    """A TrainState on the tiny config, fresh from a fixed seed (no run directory)."""
    from smapgan import StyleMapGAN, StyleMapGANConfig
    from smapgan.train.distributed import DistInfo
    from smapgan.train.loop import TrainState, make_optimizers

    opts = TrainOptions(size=16, latent_spatial_size=4, latent_channel_size=8, mapping_layer_num=2, channel_base=64,
                        channel_max=16, batch=4, lambda_perceptual=0, d_reg_every=2, **options)
    torch.manual_seed(0)
    model = StyleMapGAN(StyleMapGANConfig.from_dict(opts.model_config_dict()), with_discriminator=True)
    generator, encoder = copy.deepcopy(model.generator).train(), copy.deepcopy(model.encoder).train()
    discriminator = model.discriminator.train()
    model.generator.requires_grad_(False)
    model.encoder.requires_grad_(False)
    g_optim, e_optim, d_optim = make_optimizers(generator, encoder, discriminator, opts)
    return TrainState(opts=opts, generator=generator, encoder=encoder, discriminator=discriminator,
                      g_ema=model.generator.eval(), e_ema=model.encoder.eval(), g_optim=g_optim, e_optim=e_optim,
                      d_optim=d_optim, noise=torch.Generator().manual_seed(1), dist=DistInfo(), batch=4, augment=augmenter)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_p_follows_the_sign_of_d_on_reals_in_a_toy_run(sign):
    from smapgan.train.loop import train_iteration

    state = tiny_state(AdaptiveAugment("ada", 0.5, interval=2, kimg=0.04, batch=4), augment="ada")  # step 0.2
    state.d_fwd = lambda x: state.discriminator(x) * 0 + sign  # D sure (or unsure) of everything
    made, seen = [], []
    view = state.augment.__call__
    state.augment = copy.copy(state.augment)
    class Recording(AdaptiveAugment):
        def __call__(self, x):
            out = view.__func__(self, x)
            made.append(out)
            return out
    state.augment.__class__ = Recording
    state.discriminator.register_forward_pre_hook(lambda module, args: seen.append(args[0].data_ptr()))
    ps = []
    for _ in range(4):
        stats = train_iteration(state, images_batch(4))
        ps.append(float(stats["augment/p"]))
    expected = [0.5, 0.7, 0.7, 0.9] if sign > 0 else [0.5, 0.3, 0.3, 0.1]
    assert ps == pytest.approx(expected)
    assert float(stats["augment/rt"]) == sign
    # G, D x3, R1 (every 2nd step), E/G terms: every image D saw came out of the augmentation.
    assert len(seen) == 4 * 5 + 2 and set(seen) <= {t.data_ptr() for t in made}


# --------------------------------------------------------------------------- the trainer


def test_off_changes_nothing_and_runs_no_augmentation_code(monkeypatch):
    """Off: the augmentation is never reached, and the numbers equal those of the same loop with
    an identity augmentation path in it (so the wiring itself changes nothing)."""
    from smapgan.train.loop import train_iteration
    from smapgan.train.trainer import build_augment

    assert build_augment(TrainOptions(), rank=0) is None
    batches = [images_batch(4, seed=s) for s in range(3)]

    def forbidden(*args, **kwargs):
        raise AssertionError("augmentation code ran with --augment off")

    with monkeypatch.context() as m:
        m.setattr(aug, "augment", forbidden)
        m.setattr(AdaptiveAugment, "__call__", forbidden)
        m.setattr(AdaptiveAugment, "reconstruction_input", forbidden)
        off = tiny_state()
        rng = torch.get_rng_state()
        off_stats = [train_iteration(off, x) for x in batches]
        global_draws = not torch.equal(torch.get_rng_state(), rng)
    identity = tiny_state(AdaptiveAugment("fixed", 0.0, rec_p=0.0), augment="fixed", augment_p=0.1, augment_rec=True)
    rng = torch.get_rng_state()
    id_stats = [train_iteration(identity, x) for x in batches]
    assert (not torch.equal(torch.get_rng_state(), rng)) == global_draws  # the global stream is used alike
    assert torch.equal(off.noise.get_state(), identity.noise.get_state())
    for a, b in zip(off_stats, id_stats):
        assert set(b) - set(a) == {"augment/p"}
        for key in a:
            assert torch.equal(a[key], b[key]), key
    for name in ("generator", "encoder", "discriminator", "g_ema", "e_ema"):
        for (k, p), q in zip(getattr(off, name).state_dict().items(), getattr(identity, name).state_dict().values()):
            assert torch.equal(p, q), f"{name}.{k}"


def test_flags_validate_and_are_recorded():
    o = parse("--data", "x")
    assert (o.augment, o.augment_p, o.augment_rec, o.augment_rec_p) == ("off", 0.0, False, 0.5)
    assert (o.ada_target, o.ada_interval, o.ada_kimg) == (0.6, 4, 500.0)
    o = parse("--data", "x", "--augment", "ada", "--ada-kimg", "100", "--augment-rec", "--augment-rec-p", "0.3")
    assert (o.augment, o.ada_kimg, o.augment_rec, o.augment_rec_p) == ("ada", 100.0, True, 0.3)
    o.validate()
    with pytest.raises(ValueError, match="--augment-p"):
        parse("--data", "x", "--augment", "fixed").validate()
    with pytest.raises(ValueError, match="--augment-p"):
        parse("--data", "x", "--augment", "fixed", "--augment-p", "1.5").validate()
    with pytest.raises(SystemExit):
        parse("--data", "x", "--augment", "sometimes")


def _losses(run: Path) -> dict[int, dict[str, float]]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in records if "d/loss" in r}


def test_resume_with_augmentation_equals_an_uninterrupted_run(tmp_path):
    images = tmp_path / "images"
    make_images(images, 24)
    # p moves by 0.1 every 2 steps; the stop at step 3 falls inside an ADA interval.
    common = [*TINY, "--data", str(images), "--save-every", "3", "--log-every", "1", "--sample-every", "0",
              "--seed", "5", "--deterministic", "--d-reg-every", "2", "--augment", "ada", "--augment-p", "0.3",
              "--ada-interval", "2", "--ada-kimg", "0.08", "--augment-rec", "--augment-rec-p", "0.5"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train_in_process("--out", str(straight), *common, "--steps", "6") == 0
    assert train_in_process("--out", str(split), *common, "--steps", "3") == 0
    assert load_checkpoint(split / "checkpoints" / "latest.pt")["augment"][0]["count"] == 4  # mid-interval
    assert train_in_process("--out", str(split), "--resume", "--steps", "6") == 0

    a = load_checkpoint(straight / "checkpoints" / "latest.pt")
    b = load_checkpoint(split / "checkpoints" / "latest.pt")
    assert a["step"] == b["step"] == 6
    assert a["options"]["augment"] == "ada" and a["options"]["augment_rec"] is True
    for net in ("generator", "encoder", "discriminator", "g_ema", "e_ema"):
        for key, value in a[net].items():
            assert torch.equal(b[net][key], value), f"{net}.{key}"
    sa, sb = a["augment"][0], b["augment"][0]
    assert sa["p"] == sb["p"] and sa["p"] != 0.3 and sa["rt"] == sb["rt"]
    assert torch.equal(sa["generator"], sb["generator"])
    la, lb = _losses(straight), _losses(split)
    assert sorted(lb) == list(range(1, 7))
    for step in range(4, 7):
        clock = ("time", "speed/img_per_s")
        assert {k: v for k, v in la[step].items() if k not in clock} == {k: v for k, v in lb[step].items() if k not in clock}
    assert "augment/p" in la[6] and "augment/rt" in la[6]
