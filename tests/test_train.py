"""The trainer (issue 4): recipe, data, checkpoints and resume, DDP, export.

Everything runs on a tiny config (16 px images, 4x4x8 stylemaps, 16 channels) and a tiny
generated image set, so the whole file stays within a couple of minutes on 2 shared cores.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from smapgan.train import losses
from smapgan.train.checkpoint import find_resumable, load_checkpoint, save_checkpoint
from smapgan.train.data import DataError, ResumableSampler, load_image, scan_folder
from smapgan.train.options import TrainOptions, build_parser

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "--size", "16", "--latent-spatial-size", "4", "--latent-channel-size", "8", "--mapping-layer-num", "2",
    "--channel-base", "64", "--channel-max", "16", "--batch", "4", "--lambda-perceptual", "0",
    "--workers", "0", "--no-progress", "--no-tensorboard", "--val-fraction", "0.1",
]


def make_images(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """Coloured backgrounds with a contrasting square, various formats, sizes and sub-folders."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        h, w = (20, 24) if i % 2 else (24, 18)
        colour = rng.integers(0, 256, 3)
        a = np.empty((h, w, 3), np.uint8)
        a[:] = colour
        y, x = rng.integers(2, 10, 2)
        a[y : y + 8, x : x + 8] = 255 - colour
        ext = (".png", ".jpg", ".webp", ".bmp")[i % 4]
        path = folder / ("nested/deeper" if i % 3 == 0 else "") / f"img{i:03d}{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    make_images(folder, 36)
    return folder


def parse(*argv: str) -> TrainOptions:
    return TrainOptions.from_args(build_parser().parse_args(list(argv)))


def train_in_process(*argv: str) -> int:
    """Train in this process on one thread (tiny tensors; robust on a loaded machine), then restore."""
    from smapgan.train import train

    threads = torch.get_num_threads()
    try:
        return train(parse(*argv, "--threads", "1"))
    finally:
        torch.set_num_threads(threads)


def cli(*argv: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "smapgan.train", *argv], capture_output=True, text=True, timeout=timeout, env=env,
        cwd=REPO, **kwargs,
    )


# --------------------------------------------------------------------------- options and losses


def test_every_release_hyper_parameter_has_a_flag_with_the_release_default():
    o = parse("--data", "x")
    assert (o.batch, o.steps, o.lr, o.beta1, o.beta2) == (16, 1_400_000, 0.002, 0.0, 0.99)
    assert (o.r1, o.d_reg_every, o.ema_decay) == (10.0, 16, 0.999)
    assert (o.size, o.latent_spatial_size, o.latent_channel_size, o.mapping_layer_num, o.lr_mul) == (256, 8, 64, 8, 0.01)
    assert (o.channel_multiplier, o.normalize_mode, o.small_generator) == (2, "LayerNorm", False)
    assert (o.channel_base, o.channel_max) == (16384, 512)
    lambdas = [o.lambda_adv, o.lambda_w_rec, o.lambda_d, o.lambda_indomain_d, o.lambda_x_rec, o.lambda_perceptual,
               o.lambda_indomain_e]
    assert lambdas == [1.0] * 7
    assert not (o.amp or o.compile or o.tf32 or o.channels_last)
    assert parse("--lambda-perceptual", "0", "--no-flip").lambda_perceptual == 0.0


def test_model_options_are_the_config_fields_with_their_defaults():
    import dataclasses

    from smapgan import StyleMapGANConfig
    from smapgan.train.options import RECIPE_FIELDS

    config_fields = dataclasses.fields(StyleMapGANConfig)
    options = {f.name: f for f in dataclasses.fields(TrainOptions)}
    for f in config_fields:
        assert options[f.name].default == f.default and options[f.name].metadata["help"] == f.metadata["help"]
        assert f.name in RECIPE_FIELDS
    assert StyleMapGANConfig.from_dict(TrainOptions().model_config_dict()) == StyleMapGANConfig()
    assert "style_dim" not in options


def test_the_old_style_dim_flag_still_works_and_says_it_is_deprecated(capsys):
    assert parse("--style-dim", "8").latent_channel_size == 8
    assert "--style-dim is deprecated; use --latent-channel-size" in capsys.readouterr().err
    assert parse("--latent-channel-size", "8").latent_channel_size == 8
    assert "deprecated" not in capsys.readouterr().err
    assert "--style-dim" not in build_parser().format_help()


def test_options_stored_under_old_names_are_read_under_the_new_ones():
    from smapgan.train.options import merge_for_resume

    old = dict(TrainOptions().to_dict(), style_dim=8)
    del old["latent_channel_size"]
    assert TrainOptions.from_dict(old).latent_channel_size == 8
    merged, notes = merge_for_resume(old, TrainOptions(latent_channel_size=16))
    assert merged.latent_channel_size == 8 and notes == ["--latent-channel-size 16 ignored on --resume: the run uses 8"]
    # The bundled model's training.json was written with the old name.
    model_dir = REPO / "smapgan" / "assets" / "default_model"
    stored = json.loads((model_dir / "training.json").read_text())["options"]
    config = json.loads((model_dir / "config.json").read_text())
    assert TrainOptions.from_dict(stored).latent_channel_size == config["latent_channel_size"]


def test_adam_settings_of_d_are_corrected_for_lazy_r1():
    from smapgan.train.loop import make_optimizers

    nets = [torch.nn.Linear(2, 2) for _ in range(3)]
    g, e, d = make_optimizers(*nets, TrainOptions())
    assert g.defaults["lr"] == e.defaults["lr"] == 0.002 and g.defaults["betas"] == (0.0, 0.99)
    assert d.defaults["lr"] == pytest.approx(0.002 * 16 / 17)
    assert d.defaults["betas"] == pytest.approx((0.0, 0.99 ** (16 / 17)))


def test_losses_match_their_formulas():
    real, fake = torch.tensor([[2.0], [-1.0]]), torch.tensor([[0.5], [-3.0]])
    sp = torch.nn.functional.softplus
    assert losses.d_logistic(real, fake) == pytest.approx(float(sp(-real).mean() + sp(fake).mean()))
    assert losses.g_nonsaturating(fake) == pytest.approx(float(sp(-fake).mean()))
    assert losses.d_fake(fake) == pytest.approx(float(sp(fake).mean()))
    # D(x) = sum(w * x): the R1 gradient is w for every sample, so the penalty is |w|^2.
    w = torch.tensor([1.0, -2.0, 3.0])
    x = torch.randn(4, 3, requires_grad=True)
    assert losses.r1_penalty((x * w).sum(1, keepdim=True), x) == pytest.approx(14.0)


# --------------------------------------------------------------------------- data


def test_corrupt_files_are_skipped_with_one_warning_each_and_counted(tmp_path, caplog):
    make_images(tmp_path, 6)
    (tmp_path / "garbage.png").write_bytes(b"not an image at all")
    (tmp_path / "nested" / "empty.jpg").write_bytes(b"")
    good = (tmp_path / "img004.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(good[: len(good) // 3])
    (tmp_path / "notes.txt").write_text("ignored: not an image extension")
    with caplog.at_level("WARNING", logger="smapgan.train"):
        result = scan_folder(tmp_path)
    assert result.skipped == 3 and len(result.paths) == 6
    per_file = [r for r in caplog.records if "skipping unreadable image" in r.getMessage()]
    assert sorted(Path(r.args[0]).name for r in per_file) == ["empty.jpg", "garbage.png", "truncated.png"]
    image = load_image(result.paths[0], 16)
    assert image.dtype == torch.uint8 and image.shape == (3, 16, 16)


def test_empty_folder_and_too_few_images_are_clear_errors(tmp_path, capsys):
    from smapgan.commands import train as command

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no images found"):
        scan_folder(empty)
    args = build_parser().parse_args(["--data", str(empty), "--out", str(tmp_path / "run"), *TINY])
    assert command.run(args) == 2
    assert "no images found" in capsys.readouterr().err

    few = tmp_path / "few"
    make_images(few, 3)
    (few / "bad.png").write_bytes(b"x")
    args = build_parser().parse_args(["--data", str(few), "--out", str(tmp_path / "run2"), *TINY])
    assert command.run(args) == 2
    err = capsys.readouterr().err
    assert "fewer than one batch (--batch 4)" in err and "1 unreadable file(s) skipped" in err


def test_sampler_order_is_resumable_and_independent_of_rank_count():
    def items(sampler, epoch, position=0):
        sampler.set_state(epoch, position)
        return list(sampler)

    one = ResumableSampler(23, batch=4, rank=0, world=1, seed=3, flip=True)
    assert one.batches_per_epoch == 5
    epoch0 = items(one, 0)
    assert len(epoch0) == 20 and len({i for i, _ in epoch0}) == 20
    assert items(one, 0) == epoch0 and items(one, 1) != epoch0
    assert items(one, 0, position=2) == epoch0[8:]
    ranks = [ResumableSampler(23, batch=2, rank=r, world=2, seed=3, flip=True) for r in range(2)]
    parts = [items(s, 0) for s in ranks]
    interleaved = [x for k in range(5) for r in range(2) for x in parts[r][2 * k : 2 * k + 2]]
    assert interleaved == epoch0


def test_checkpoints_are_atomic_keep_the_previous_and_load_weights_only(tmp_path):
    payload = {"format": 1, "step": 1, "w": torch.ones(3), "opt": {"betas": (0.0, 0.99)}}
    save_checkpoint(tmp_path, payload)
    save_checkpoint(tmp_path, dict(payload, step=2))
    folder = tmp_path / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["latest.pt", "previous.pt"]
    assert torch.load(folder / "latest.pt", weights_only=True)["step"] == 2
    # A torn latest.pt (killed mid-write by something other than our tmp+rename) falls back.
    (folder / "latest.pt").write_bytes((folder / "latest.pt").read_bytes()[:40])
    path, loaded = find_resumable(tmp_path)
    assert path.name == "previous.pt" and loaded["step"] == 1


# --------------------------------------------------------------------------- start-up checks


def test_missing_lpips_weights_stop_at_start_up_with_instructions(images, tmp_path, monkeypatch, capsys):
    from smapgan.commands import train as command

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # an empty hub cache
    monkeypatch.setenv("SMAPGAN_OFFLINE", "1")
    argv = ["--data", str(images), "--out", str(tmp_path / "run"), *TINY, "--lambda-perceptual", "1"]
    started = time.monotonic()
    assert command.run(build_parser().parse_args(argv)) == 2
    err = capsys.readouterr().err
    assert "--lambda-perceptual 0" in err and "vgg16" in err.lower()
    assert time.monotonic() - started < 20
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_existing_run_is_not_overwritten_without_resume(images, tmp_path):
    save_checkpoint(tmp_path / "run", {"format": 1, "step": 0})
    from smapgan.train.trainer import StartupError

    with pytest.raises(StartupError, match="--resume"):
        train_in_process("--data", str(images), "--out", str(tmp_path / "run"), *TINY, "--steps", "1")


# --------------------------------------------------------------------------- training


def reconstruction_mse(generator_state, encoder_state, opts: TrainOptions, paths) -> float:
    from smapgan import StyleMapGAN, StyleMapGANConfig

    model = StyleMapGAN(StyleMapGANConfig.from_dict(opts.model_config_dict()), with_discriminator=False)
    model.generator.load_state_dict(generator_state)
    model.encoder.load_state_dict(encoder_state)
    x = torch.stack([load_image(p, opts.size) for p in paths]).float() / 127.5 - 1
    with torch.no_grad():
        return float((model.decode(model.encode(x)) - x).pow(2).mean())


def test_short_run_trains_exports_and_fine_tunes(images, tmp_path, hub):
    from smapgan import StyleMapGAN
    from smapgan.train.trainer import load_initial_model

    run = tmp_path / "run"
    argv = ["--data", str(images), "--out", str(run), *TINY, "--steps", "40", "--save-every", "20",
            "--sample-every", "40", "--log-every", "1", "--tensorboard", "--ema-decay", "0.9",
            "--push-to-hub", "smapgan-tester/tiny-trained"]
    assert train_in_process(*argv) == 0

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "d/loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 41))
    for key in ("g/adv", "e/w_rec", "d/loss", "d/indomain", "e/x_rec", "e/indomain", "score/real", "score/fake",
                "stylemap/std", "speed/img_per_s"):
        assert all(math.isfinite(r[key]) for r in steps), key
    assert sum("d/r1" in r for r in steps) == 3 and all(math.isfinite(r["d/r1"]) for r in steps if "d/r1" in r)
    assert [r["step"] for r in records if "val/mse" in r] == [0, 40]
    assert any((run / "tb").iterdir())
    assert sorted(p.name for p in (run / "samples").iterdir())[-1] == "samples_0000040.png"

    # Reconstruction of the training images improves clearly over the step-0 networks.
    payload = load_checkpoint(run / "checkpoints" / "latest.pt")
    opts = TrainOptions.from_dict(payload["options"])
    scan = scan_folder(images)
    initial, _ = load_initial_model(opts)
    before = reconstruction_mse(initial.generator.state_dict(), initial.encoder.state_dict(), opts, scan.paths)
    after = reconstruction_mse(payload["generator"], payload["encoder"], opts, scan.paths)
    assert after < 0.5 * before, (before, after)

    # The export is the EMA model: it loads with from_pretrained and reconstructs.
    model = StyleMapGAN.from_pretrained(run / "model")
    assert model.discriminator is not None
    assert json.loads((run / "model" / "training.json").read_text())["step"] == 40
    for key, value in payload["g_ema"].items():
        assert torch.equal(model.generator.state_dict()[key], value), key
    x = torch.stack([load_image(p, 16) for p in scan.paths[:4]]).float() / 127.5 - 1
    with torch.no_grad():
        y = model.decode(model.encode(x))
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert float((y - x).pow(2).mean()) < before
    assert "model.safetensors" in hub.files("smapgan-tester/tiny-trained")

    # Fine-tuning from the export, with the speed options on and images streamed by a worker.
    tuned = tmp_path / "tuned"
    assert train_in_process("--data", str(images), "--out", str(tuned), *TINY, "--steps", "2", "--init", str(run / "model"),
                            "--amp", "--channels-last", "--sample-every", "0", "--cache-images", "off", "--workers", "1") == 0
    assert StyleMapGAN.from_pretrained(tuned / "model").config == model.config


def wait_for_step(run: Path, step: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Block until metrics.jsonl reports ``step`` (log_every 1), the process being alive."""
    deadline = time.monotonic() + timeout
    metrics = run / "metrics.jsonl"
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if metrics.exists():
            done = [json.loads(line)["step"] for line in metrics.read_text().splitlines() if line.endswith("}")]
            if done and max(done) >= step:
                return
        time.sleep(0.05)
    raise TimeoutError(f"step {step} not reached")


def test_a_checkpoint_with_old_option_names_resumes(images, tmp_path):
    run = tmp_path / "run"
    common = ["--data", str(images), "--out", str(run), *TINY, "--sample-every", "0", "--save-every", "1"]
    assert train_in_process(*common, "--steps", "1") == 0
    # Rewrite the checkpoint and options.json as a version before the rename wrote them.
    latest = run / "checkpoints" / "latest.pt"
    payload = load_checkpoint(latest)
    payload["options"]["style_dim"] = payload["options"].pop("latent_channel_size")
    torch.save(payload, latest)
    options = json.loads((run / "options.json").read_text())
    options["style_dim"] = options.pop("latent_channel_size")
    (run / "options.json").write_text(json.dumps(options))

    assert train_in_process("--out", str(run), "--resume", "--steps", "2") == 0
    resumed = load_checkpoint(latest)
    assert resumed["step"] == 2 and resumed["options"]["latent_channel_size"] == 8
    assert "style_dim" not in resumed["options"]
    for key, value in payload["g_ema"].items():
        assert resumed["g_ema"][key].shape == value.shape, key


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(images, tmp_path):
    common = [*TINY, "--data", str(images), "--steps", "30", "--save-every", "5", "--log-every", "1",
              "--sample-every", "0", "--seed", "7", "--deterministic", "--threads", "1"]
    straight = tmp_path / "straight"
    done = cli("--out", str(straight), *common)
    assert done.returncode == 0, done.stderr

    run = tmp_path / "interrupted"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    argv = [sys.executable, "-m", "smapgan.train", "--out", str(run), *common]
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_step(run, 12, proc)
    proc.send_signal(signal.SIGKILL)  # no chance to save: the resume starts from the step-10 checkpoint
    proc.communicate()
    killed_at = load_checkpoint(run / "checkpoints" / "latest.pt")["step"]
    assert 10 <= killed_at < 30

    # Resume, and this time stop it with SIGTERM: it checkpoints the step it is at and says how to go on.
    proc = subprocess.Popen([*argv, "--resume"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_step(run, killed_at + 3, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "--resume" in err
    stopped_at = load_checkpoint(run / "checkpoints" / "latest.pt")["step"]
    assert killed_at < stopped_at < 30

    done = cli("--out", str(run), "--resume")  # everything else comes from the run directory
    assert done.returncode == 0, done.stderr
    a = load_checkpoint(straight / "checkpoints" / "latest.pt")
    b = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert a["step"] == b["step"] == 30
    for net in ("generator", "encoder", "discriminator", "g_ema", "e_ema"):
        for key, value in a[net].items():
            torch.testing.assert_close(b[net][key], value, rtol=1e-5, atol=1e-6, msg=f"{net}.{key}")
    assert a["data"] == b["data"]


@pytest.mark.slow
def test_torchrun_two_cpu_ranks_keep_identical_weights(images, tmp_path):
    run = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "smapgan.train", "--data", str(images), "--out", str(run), *TINY,
            "--steps", "6", "--save-every", "3", "--sample-every", "0", "--device", "cpu"]
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    payload = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert payload["world_size"] == 2 and payload["step"] == 6
    digests = payload["rank_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert len(payload["rng"]) == 2
    assert not torch.equal(payload["rng"][0]["noise"], payload["rng"][1]["noise"])  # ranks draw different z
