"""A training run from start to finish: set-up, the loop, checkpoints, exports.

Run directory layout::

    RUN_DIR/options.json            the run's options (also stored in every checkpoint)
    RUN_DIR/checkpoints/latest.pt   resumable state (previous.pt: the one before)
    RUN_DIR/model/                  the EMA model, save_pretrained layout (+ training.json)
    RUN_DIR/metrics.jsonl           losses, scores, validation metrics (one JSON per line)
    RUN_DIR/samples/*.png           fixed-z samples and validation reconstructions
    RUN_DIR/tb/                     TensorBoard events
    RUN_DIR/train.txt               the text log
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import random
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    import argparse

from ..cache import tensor_digest
from . import checkpoint as ckpt
from . import evaluate
from .augment import AdaptiveAugment
from .data import (
    BatchStream,
    DataError,
    ImageFolder,
    ResumableSampler,
    decode_all,
    scan_folder,
    should_cache,
    split_validation,
    to_float,
)
from .distributed import DistInfo, barrier, broadcast_parameters, any_rank, gather_objects, init_distributed, shutdown
from .logging import RunLogger, setup_text_log
from .loop import TrainState, make_optimizers, train_iteration
from .options import TrainOptions, flag_name, merge_for_resume

log = logging.getLogger("smapgan.train")

NUM_SAMPLE_Z = 16
NUM_RECONSTRUCTIONS = 8


class StartupError(RuntimeError):
    """The run cannot start; the message says why and what to do instead."""


@dataclass
class TrainData:
    stream: BatchStream
    train_count: int
    skipped: int
    val_images: torch.Tensor | None  # uint8 (N,3,S,S), held out
    preview_images: torch.Tensor  # uint8, the fixed images of the reconstruction grid
    preview_is_val: bool


def run_from_args(args: "argparse.Namespace") -> int:
    """Train from parsed flags; expected failures (bad data, missing LPIPS weights) print one line and return 2."""
    try:
        return run_training(TrainOptions.from_args(args))
    except (StartupError, DataError, ValueError) as exc:
        print(f"smapgan train: error: {exc}", file=sys.stderr)
        return 2


def run_training(opts: TrainOptions) -> int:
    """Train as ``opts`` says (also under torchrun); returns the process exit code."""
    opts.validate()
    info = init_distributed(opts.device)
    try:
        return _Run(opts, info).run()
    finally:
        shutdown(info)


# -- set-up helpers


def configure_torch(opts: TrainOptions, info: DistInfo) -> None:
    """Threads, determinism and TF32 (off unless ``--tf32``)."""
    if opts.threads:
        torch.set_num_threads(opts.threads)
    if info.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = opts.tf32
        torch.backends.cudnn.allow_tf32 = opts.tf32
        torch.backends.cudnn.benchmark = not opts.deterministic
    if opts.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def build_lpips(opts: TrainOptions, device: torch.device) -> tuple[nn.Module | None, nn.Module | None]:
    """(loss network, metric network). The loss must load when its weight is non-zero;
    the validation metric is used when its weights happen to be at hand.
    """
    from ..networks.lpips import LPIPS, PerceptualWeightsUnavailable, vgg16_cache_path

    if opts.lambda_perceptual:
        try:
            net = LPIPS().to(device)
        except PerceptualWeightsUnavailable as exc:
            raise StartupError(f"the perceptual loss is on (--lambda-perceptual {opts.lambda_perceptual}) but {exc}") from exc
        return net, net
    if not vgg16_cache_path().is_file():  # never reach for the network for a metric
        return None, None
    try:
        return None, LPIPS().to(device)
    except Exception as exc:
        log.info("validation LPIPS unavailable (%s); reporting MSE only", exc)
        return None, None


def prepare_data(opts: TrainOptions, info: DistInfo, per_rank_batch: int) -> TrainData:
    """Scan, split, optionally cache, and wrap the data in a resumable stream."""
    assert opts.data is not None
    scan = scan_folder(opts.data)
    skipped = scan.skipped
    paths = scan.paths
    val_paths: list[Path] = []
    if opts.val_data:
        val_scan = scan_folder(opts.val_data)
        val_paths = val_scan.paths[: opts.val_max_images]
    elif opts.val_fraction > 0:
        paths, val_paths = split_validation(paths, opts.val_fraction, opts.val_max_images, opts.seed)

    cache = None
    if should_cache(opts.cache_images, len(paths), opts.size):
        cache, failed = decode_all(paths, opts.size, workers=min(opts.workers, 4))
        for i in failed:
            log.warning("skipping unreadable image %s: it cannot be decoded", paths[i])
        if failed:
            bad = set(failed)
            paths = [p for i, p in enumerate(paths) if i not in bad]
            skipped += len(failed)
    if len(paths) < opts.batch:
        detail = f" ({skipped} unreadable file(s) skipped)" if skipped else ""
        held = f", {len(val_paths)} held out for validation" if val_paths and not opts.val_data else ""
        raise DataError(
            f"{opts.data!r} has {len(paths)} usable training image(s){detail}{held}: "
            f"fewer than one batch (--batch {opts.batch})"
        )
    dataset = ImageFolder(paths, opts.size, cache=cache)
    sampler = ResumableSampler(len(paths), per_rank_batch, info.rank, info.world_size, opts.seed, opts.flip)
    stream = BatchStream(dataset, sampler, opts.workers, pin_memory=info.device.type == "cuda")

    val_images = None
    if val_paths:
        val_images, failed = decode_all(val_paths, opts.size)
        skipped += len(failed) if opts.val_data is None else 0
        if val_images.shape[0] == 0:
            val_images = None
    if val_images is not None:
        preview, preview_is_val = val_images[:NUM_RECONSTRUCTIONS], True
    else:
        preview = torch.stack([dataset.load(i) for i in range(min(NUM_RECONSTRUCTIONS, len(paths)))])
        preview_is_val = False
    return TrainData(stream, len(paths), skipped, val_images, preview, preview_is_val)


def load_initial_model(opts: TrainOptions) -> tuple[Any, TrainOptions]:
    """The model to start from: ``--init`` (fine-tuning) or fresh weights from ``--seed``."""
    from smapgan import StyleMapGAN, StyleMapGANConfig
    from smapgan.networks import Discriminator

    torch.manual_seed(opts.seed)
    if not opts.init:
        return StyleMapGAN(StyleMapGANConfig.from_dict(opts.model_config_dict()), with_discriminator=True), opts
    try:
        model = StyleMapGAN.from_pretrained(opts.init)
    except Exception as exc:
        raise StartupError(f"cannot load --init {opts.init!r}: {exc}") from exc
    cfg = model.config
    from_model = cfg.to_dict()
    defaults = TrainOptions()
    for name, value in from_model.items():
        given = getattr(opts, name)
        if given != value and given != getattr(defaults, name):
            log.warning("%s %r ignored: the --init model has %r", flag_name(name), given, value)
    opts = dataclasses.replace(opts, **from_model)
    if model.discriminator is None:
        log.warning("the --init model has no discriminator: starting D from random weights")
        model.discriminator = Discriminator(cfg)
    model.directions = {}
    return model.train(), opts


def build_augment(opts: TrainOptions, rank: int) -> AdaptiveAugment | None:
    """The run's augmentation state, or None when ``--augment off`` and no ``--augment-rec``
    (then not one random number is drawn for it: the run is the one without this feature)."""
    if opts.augment == "off" and not opts.augment_rec:
        return None
    return AdaptiveAugment(
        opts.augment,
        opts.augment_p,
        seed=opts.seed * 1_000_003 + 2**32 + rank,  # its own stream, apart from the noise's
        target=opts.ada_target,
        interval=opts.ada_interval,
        kimg=opts.ada_kimg,
        batch=opts.batch,
        rec_p=opts.augment_rec_p if opts.augment_rec else 0.0,
    )


def to_channels_last(module: nn.Module) -> nn.Module:
    """channels_last for every 4-D parameter and buffer (``Module.to`` refuses the 5-D ones)."""
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            if tensor.dim() == 4:
                tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
    return module


def export_model(ema_model: nn.Module, folder: Path, meta: dict[str, Any]) -> None:
    """Write the EMA model (+ D) with ``save_pretrained`` into ``folder``, atomically."""
    from smapgan import StyleMapGAN

    tmp = folder.with_name("." + folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    state = {k: v.detach().cpu().contiguous() for k, v in ema_model.state_dict().items()}
    export = StyleMapGAN(ema_model.config, with_discriminator=ema_model.discriminator is not None)
    export.load_state_dict(state, strict=True)
    export.eval().save_pretrained(tmp)
    (tmp / "training.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    ckpt.replace_dir(tmp, folder)


class _StopSignal:
    """Records SIGTERM/SIGINT so the loop can checkpoint and stop; a second signal acts normally."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum
        self.restore()

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


# -- the run


class _Run:
    def __init__(self, opts: TrainOptions, info: DistInfo) -> None:
        self.opts, self.info = opts, info

    def run(self) -> int:
        opts, info = self.opts, self.info
        run_dir = Path(opts.out).resolve()
        resume_payload = None
        notes: list[str] = []
        if opts.resume:
            found = ckpt.find_resumable(run_dir)
            if found is None and ckpt.has_checkpoint(run_dir):
                raise StartupError(
                    f"--resume: no checkpoint in {ckpt.checkpoint_dir(run_dir)} can be loaded (the reasons are "
                    "logged above); nothing was overwritten. Move those files away to start the run over."
                )
            if found is not None:
                resume_path, resume_payload = found
                opts, notes = merge_for_resume(resume_payload["options"], opts)
                notes.insert(0, f"resuming from {resume_path} (step {resume_payload['step']})")
        elif ckpt.has_checkpoint(run_dir):
            raise StartupError(
                f"{run_dir} already holds checkpoints: pass --resume to continue that run, or choose another --out"
            )
        if not opts.data:
            raise StartupError("--data DIR is required (it may be left out only when resuming a run)")
        opts = dataclasses.replace(
            opts,
            out=str(run_dir),
            data=str(Path(opts.data).resolve()),
            val_data=str(Path(opts.val_data).resolve()) if opts.val_data else None,
        )
        if info.world_size > 1 and opts.batch % info.world_size:
            raise StartupError(f"--batch {opts.batch} is not divisible by the {info.world_size} ranks")
        per_rank_batch = opts.batch // info.world_size

        if info.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
        barrier(info)
        setup_text_log(run_dir if info.is_main else None, verbose=info.is_main)
        if not info.is_main:
            log.setLevel(logging.ERROR)
        for note in notes:
            log.info(note) if note.startswith("resuming") else log.warning(note)
        configure_torch(opts, info)
        device = info.device

        lpips_loss, lpips_metric = build_lpips(opts, device)
        data = prepare_data(opts, info, per_rank_batch)

        if resume_payload is not None:  # the weights come from the checkpoint: never fetch --init again
            ema_model, _ = load_initial_model(dataclasses.replace(opts, init=None))
        else:
            ema_model, opts = load_initial_model(opts)
        self.opts = opts
        if info.is_main and resume_payload is None:
            (run_dir / "options.json").write_text(json.dumps(opts.to_dict(), indent=2) + "\n")
        log.info(
            "data: %d training images%s, %s; %d rank(s) x batch %d on %s (%d threads)",
            data.train_count,
            f" ({data.skipped} unreadable skipped)" if data.skipped else "",
            f"{data.val_images.shape[0]} validation images" if data.val_images is not None else "no validation split",
            info.world_size,
            per_rank_batch,
            device,
            torch.get_num_threads(),
        )

        ema_model = ema_model.to(device)
        generator = copy.deepcopy(ema_model.generator).train()
        encoder = copy.deepcopy(ema_model.encoder).train()
        discriminator = ema_model.discriminator.train()
        g_ema, e_ema = ema_model.generator.eval(), ema_model.encoder.eval()
        g_ema.requires_grad_(False)
        e_ema.requires_grad_(False)
        if opts.channels_last:
            for net in {id(n): n for n in (generator, encoder, discriminator, g_ema, e_ema, lpips_loss, lpips_metric)}.values():
                if net is not None:
                    to_channels_last(net)
        g_optim, e_optim, d_optim = make_optimizers(generator, encoder, discriminator, opts)

        noise = torch.Generator().manual_seed(opts.seed * 1_000_003 + 1 + info.rank)
        torch.manual_seed(opts.seed + 1 + info.rank)
        np.random.seed((opts.seed + 1 + info.rank) % 2**32)
        random.seed(opts.seed + 1 + info.rank)
        state = TrainState(
            opts=opts,
            generator=generator,
            encoder=encoder,
            discriminator=discriminator,
            g_ema=g_ema,
            e_ema=e_ema,
            g_optim=g_optim,
            e_optim=e_optim,
            d_optim=d_optim,
            noise=noise,
            dist=info,
            batch=per_rank_batch,
            lpips=lpips_loss,
            augment=build_augment(opts, info.rank),
        )
        if resume_payload is not None:
            self._restore(state, data.stream, resume_payload)
        else:
            broadcast_parameters([generator, encoder, discriminator, g_ema, e_ema], info)
        del resume_payload
        if opts.compile:
            state.g_fwd = torch.compile(generator)
            state.e_fwd = torch.compile(encoder)
            state.d_fwd = torch.compile(discriminator)

        self.state, self.data, self.ema_model, self.run_dir = state, data, ema_model, run_dir
        self.lpips_metric = lpips_metric
        z_seed = torch.Generator().manual_seed(opts.seed + 4242)
        self.fixed_z = torch.randn(NUM_SAMPLE_Z, opts.latent_channel_size, generator=z_seed)
        logger = RunLogger(run_dir, info.is_main, state.step, opts.steps, opts.progress, opts.tensorboard)
        self.logger = logger
        stop = _StopSignal()
        stop.install()
        try:
            return self._loop(stop)
        finally:
            stop.restore()
            logger.close()

    def _restore(self, state: TrainState, stream: BatchStream, payload: dict[str, Any]) -> None:
        info = self.info
        state.load_state_dicts(payload)
        state.step = int(payload["step"])
        stream.load_state_dict(payload["data"])
        rng = payload["rng"]
        if len(rng) == info.world_size:
            ckpt.restore_rng(rng[info.rank], state.noise)
        else:
            log.warning(
                "the checkpoint was written by %d rank(s), this run has %d: random streams are reseeded",
                len(rng),
                info.world_size,
            )
            state.noise.manual_seed(self.opts.seed * 1_000_003 + 1 + info.rank + 7 * state.step)
        if state.augment is not None:
            saved = payload.get("augment")
            if not saved:
                log.warning("the checkpoint has no augmentation state: --augment starts at p = %s", state.augment.p)
            elif len(saved) == info.world_size:
                state.augment.load_state_dict(saved[info.rank])
            else:  # keep the common p, reseed the per-rank stream, restart the statistics
                state.augment.load_state_dict(dict(saved[0], signs=0.0, count=0, generator=state.augment.generator.get_state()))
                state.augment.generator.manual_seed(self.opts.seed * 1_000_003 + 2**32 + info.rank + 7 * state.step)

    # -- periodic work

    def save(self) -> None:
        state, info = self.state, self.info
        rng = gather_objects(ckpt.capture_rng(state.noise), info)
        augment = gather_objects(state.augment.state_dict(), info) if state.augment is not None else None
        digests = []  # one per rank; equal digests: bit-identical weights
        if info.enabled:  # (a single process has nothing to compare: no copy of every weight to hash)
            nets = (state.generator, state.encoder, state.discriminator)
            weights = torch.cat([p.detach().reshape(-1) for net in nets for p in net.parameters()])
            digests = gather_objects(tensor_digest(weights), info)
        if info.is_main:
            if len(set(digests)) > 1:
                log.error("ranks hold different weights at step %d: %s", state.step, digests)
            payload = {
                "format": ckpt.FORMAT_VERSION,
                "step": state.step,
                "options": self.opts.to_dict(),
                "config": self.ema_model.config.to_dict(),
                "world_size": info.world_size,
                "rank_digests": digests,
                **state.state_dicts(),
                "data": self.data.stream.state_dict(),
                "rng": rng,
            }
            if augment is not None:  # absent when off: such checkpoints are those of before
                payload["augment"] = augment
            path = ckpt.save_checkpoint(self.run_dir, payload)
            self.logger.info("step %d: checkpoint %s", state.step, path)
        barrier(info)

    def export(self) -> None:
        if not self.info.is_main:
            return
        meta = {"step": self.state.step, "images_seen": self.state.step * self.opts.batch, "options": self.opts.to_dict()}
        export_model(self.ema_model, self.run_dir / "model", meta)
        self.logger.info("step %d: exported the EMA model to %s", self.state.step, self.run_dir / "model")

    def evaluate(self) -> None:
        """Validation metrics (all ranks) and sample grids (rank 0), on the EMA networks."""
        state, opts, data = self.state, self.opts, self.data
        channels_last = opts.channels_last
        if data.val_images is not None:
            metrics = evaluate.reconstruction_metrics(
                state.e_ema, state.g_ema, data.val_images, self.info, self.lpips_metric,
                batch=state.batch, channels_last=channels_last,
            )
            self.logger.scalars(state.step, metrics, prefix="val/")
            self.logger.info(
                "step %d: validation %s (%d images)",
                state.step,
                ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()),
                data.val_images.shape[0],
            )
        if self.info.is_main:
            device = self.info.device
            samples = evaluate.sample_grid(state.g_ema, self.fixed_z.to(device))
            self.logger.images(state.step, "samples", samples, nrow=8)
            preview = to_float(data.preview_images, device, channels_last)
            name = "reconstruction_val" if data.preview_is_val else "reconstruction_train"
            grid = evaluate.reconstruction_grid(state.e_ema, state.g_ema, preview)
            self.logger.images(state.step, name, grid, nrow=preview.shape[0])
            self.logger.flush()

    # -- the loop

    def _loop(self, stop: _StopSignal) -> int:
        state, opts, info, logger = self.state, self.opts, self.info, self.logger
        global_batch = opts.batch
        if state.step == 0 and opts.sample_every and state.step < opts.steps:
            self.evaluate()
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        window_start, window_steps = time.perf_counter(), 0
        bar_time, last_saved, last_exported = 0.0, state.step, -1
        stopped = False
        while state.step < opts.steps:
            try:
                real = to_float(self.data.stream.next_uint8(), info.device, opts.channels_last)
            except Exception:
                if stop.signum is None:
                    raise
                stopped = True  # a signal also hit the loader's workers; the state is consistent
                break
            stats = train_iteration(state, real)
            window_steps += 1
            for k, v in stats.items():
                sums[k] = sums[k] + v if k in sums else v.clone()
                counts[k] = counts.get(k, 0) + 1
            stopped = any_rank(stop.signum is not None, info)

            now = time.perf_counter()
            if info.is_main and (now - bar_time >= 1.0 or state.step == opts.steps):
                bar_time = now
                img_per_s = window_steps * global_batch / max(now - window_start, 1e-9)
                logger.progress(
                    state.step,
                    {
                        "d": float(stats["d/loss"]),
                        "g": float(stats["g/adv"]),
                        "rec": float(stats["e/x_rec"]),
                        "img/s": img_per_s,
                        **({"p": float(stats["augment/p"])} if "augment/p" in stats else {}),
                    },
                )
            if opts.log_every and state.step % opts.log_every == 0:
                elapsed = max(time.perf_counter() - window_start, 1e-9)
                values = {k: float(sums[k]) / counts[k] for k in sums}
                values["speed/img_per_s"] = window_steps * global_batch / elapsed
                values["speed/images_seen"] = state.step * global_batch
                logger.scalars(state.step, values)
                logger.summary(state.step, opts.steps, values)
                bad = [k for k, v in values.items() if not np.isfinite(v)]
                if bad:
                    log.error("step %d: non-finite losses %s", state.step, bad)
                sums, counts = {}, {}
                window_start, window_steps = time.perf_counter(), 0
            if stopped or (opts.save_every and state.step % opts.save_every == 0):
                self.save()
                last_saved = state.step
            if opts.sample_every and state.step % opts.sample_every == 0:
                self.evaluate()
            if opts.export_every and state.step % opts.export_every == 0:
                self.export()
                last_exported = state.step
            if stopped:
                break

        if stopped:
            if last_saved != state.step:
                self.save()
            signum = stop.signum or signal.SIGTERM
            logger.info(
                "stopped by %s at step %d; continue with --resume --out %s",
                signal.Signals(signum).name, state.step, self.run_dir,
            )
            return 128 + int(signum)
        if last_saved != state.step:
            self.save()
        if opts.sample_every and state.step % opts.sample_every:
            self.evaluate()
        if last_exported != state.step:
            self.export()
        code = 0
        if opts.push_to_hub and info.is_main:
            from smapgan import StyleMapGAN

            try:
                model = StyleMapGAN.from_pretrained(self.run_dir / "model")
                url = model.push_to_hub(opts.push_to_hub, commit_message=f"smapgan train: step {state.step}")
                logger.info("pushed the EMA model to %s", url)
            except Exception as exc:  # the run itself succeeded: say so, and how to push later
                log.error("pushing to %s failed (%s); the model is in %s", opts.push_to_hub, exc, self.run_dir / "model")
                code = 1
        barrier(info)
        logger.info("done: %d steps, EMA model in %s", state.step, self.run_dir / "model")
        return code
