"""The trainer's flag set: one dataclass field per flag, release defaults (BRIEF §3).

The dataclass is the single source: the argparse builder, the run directory's
``options.json`` and the checkpoint's ``options`` entry are all derived from it, so a
flag cannot exist in one place and be missing in another.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

# Fields that define what is being trained. On ``--resume`` they come from the run directory,
# never from the command line (a different value there is reported and ignored).
RECIPE_FIELDS = (
    "data",
    "val_data",
    "val_fraction",
    "val_max_images",
    "flip",
    "size",
    "latent_spatial_size",
    "style_dim",
    "mapping_layer_num",
    "lr_mul",
    "channel_multiplier",
    "normalize_mode",
    "small_generator",
    "channel_base",
    "channel_max",
    "init",
    "batch",
    "lr",
    "beta1",
    "beta2",
    "r1",
    "d_reg_every",
    "ema_decay",
    "lambda_adv",
    "lambda_w_rec",
    "lambda_d",
    "lambda_indomain_d",
    "lambda_x_rec",
    "lambda_perceptual",
    "lambda_indomain_e",
    "augment",
    "augment_p",
    "ada_target",
    "ada_interval",
    "ada_kimg",
    "augment_rec",
    "augment_rec_p",
    "seed",
)


def _opt(default: Any, help: str, group: str, **argparse_kwargs: Any) -> Any:
    """A dataclass field carrying its flag's help text, group and extra argparse settings."""
    return field(default=default, metadata={"help": help, "group": group, "argparse": argparse_kwargs})


@dataclass
class TrainOptions:
    """Every setting of a training run. Defaults are the official release's."""

    # -- data
    data: str | None = _opt(None, "image folder, searched recursively (png, jpg, webp, bmp, gif, tiff...)", "data", metavar="DIR")
    out: str = _opt("runs/smapgan", "run directory: checkpoints, exports, TensorBoard logs, samples", "data", metavar="RUN_DIR")
    val_data: str | None = _opt(None, "held-out image folder for validation (default: split --val-fraction off --data)", "data", metavar="DIR")
    val_fraction: float = _opt(0.05, "fraction of --data held out for validation when --val-data is not given (0: none)", "data")
    val_max_images: int = _opt(256, "at most this many validation images (keeps evaluation cheap)", "data")
    flip: bool = _opt(True, "random horizontal flips of the training images", "data")
    workers: int = _opt(2, "DataLoader worker processes per rank (0: load in the training process)", "data")
    cache_images: str = _opt(
        "auto",
        "decode the training set once into RAM: auto (when it fits in 2 GiB), on, off",
        "data",
        choices=("auto", "on", "off"),
    )

    # -- model (BRIEF §1; names follow the release's train_args)
    size: int = _opt(256, "image side in pixels", "model")
    latent_spatial_size: int = _opt(8, "stylemap side L", "model")
    style_dim: int = _opt(64, "stylemap channels C (the release's latent_channel_size)", "model")
    mapping_layer_num: int = _opt(8, "layers of the mapping network", "model")
    lr_mul: float = _opt(0.01, "learning-rate multiplier of the mapping network", "model")
    channel_multiplier: int = _opt(2, "width multiplier of the width table", "model")
    normalize_mode: str = _opt("LayerNorm", "normalization inside the styled convs", "model", choices=("LayerNorm", "InstanceNorm2d", "BatchNorm2d"))
    small_generator: bool = _opt(False, "C channels everywhere in the stylemap resizer (the FFHQ 1024 release)", "model")
    channel_base: int = _opt(16384, "width table: ch[r] = min(channel_max, channel_base * multiplier // r)", "model")
    channel_max: int = _opt(512, "width table cap", "model")
    init: str | None = _opt(None, "start from a saved or converted model (directory or Hub repo id): fine-tuning", "model", metavar="MODEL_DIR_OR_REPO")

    # -- optimization (BRIEF §3)
    batch: int = _opt(16, "total batch size over all ranks", "optimization")
    steps: int = _opt(1_400_000, "iterations to train (the release ran 1.4M)", "optimization")
    lr: float = _opt(0.002, "Adam learning rate of G and E (D gets lr * k/(k+1), k = --d-reg-every)", "optimization")
    beta1: float = _opt(0.0, "Adam beta1 of G and E (D gets beta1 ** (k/(k+1)))", "optimization")
    beta2: float = _opt(0.99, "Adam beta2 of G and E (D gets beta2 ** (k/(k+1)))", "optimization")
    r1: float = _opt(10.0, "R1 penalty weight gamma", "optimization")
    d_reg_every: int = _opt(16, "lazy R1: apply the penalty every k steps, scaled by k (0: never)", "optimization")
    ema_decay: float = _opt(0.999, "decay of the exponential moving average of G and E", "optimization")
    lambda_adv: float = _opt(1.0, "G: non-saturating adversarial loss on G(z)", "optimization")
    lambda_w_rec: float = _opt(1.0, "E: latent reconstruction MSE(E(G(z)), w)", "optimization")
    lambda_d: float = _opt(1.0, "D: logistic loss on reals and G(z)", "optimization")
    lambda_indomain_d: float = _opt(1.0, "D: in-domain term softplus(D(G(E(x))))", "optimization")
    lambda_x_rec: float = _opt(1.0, "E and G: image reconstruction MSE(x, G(E(x)))", "optimization")
    lambda_perceptual: float = _opt(1.0, "E and G: LPIPS-VGG(x, G(E(x))); 0 trains without LPIPS (no VGG weights needed)", "optimization")
    lambda_indomain_e: float = _opt(1.0, "E and G: in-domain adversarial term softplus(-D(G(E(x))))", "optimization")

    # -- augmentation for limited data (smapgan/train/augment.py)
    augment: str = _opt(
        "off",
        "differentiable augmentation of every image D sees (translation, scaling, hue, saturation, brightness, "
        "cutout): off, fixed (probability --augment-p), ada (p adapted to D's overfitting, starting at --augment-p)",
        "augmentation",
        choices=("off", "fixed", "ada"),
    )
    augment_p: float = _opt(0.0, "probability of each op per image: the value for --augment fixed, the start for ada", "augmentation")
    ada_target: float = _opt(0.6, "ada: target of r_t = E[sign(D(real))]; p rises above it, falls below", "augmentation")
    ada_interval: int = _opt(4, "ada: adjust p every N iterations", "augmentation")
    ada_kimg: float = _opt(500.0, "ada: thousands of images for p to go from 0 to 1 at the fastest", "augmentation")
    augment_rec: bool = _opt(False, "feed E shifted/scaled/recoloured reals and reconstruct those (E generalises)", "augmentation")
    augment_rec_p: float = _opt(0.5, "probability of each op per image for --augment-rec", "augmentation")

    # -- run control
    seed: int = _opt(0, "seed of weights, noise, data order, flips and the validation split", "run")
    deterministic: bool = _opt(False, "deterministic kernels (bit-reproducible resumes; slower on GPU)", "run")
    resume: bool = _opt(False, "continue from the run directory's latest checkpoint (starts fresh when there is none)", "run")
    save_every: int = _opt(1000, "write checkpoints/latest.pt every N steps (and on SIGTERM/SIGINT)", "run")
    export_every: int = _opt(0, "export the EMA model to RUN_DIR/model every N steps (0: only at the end)", "run")
    sample_every: int = _opt(1000, "image grids and validation metrics every N steps (0: never)", "run")
    log_every: int = _opt(50, "loss scalars to TensorBoard and metrics.jsonl every N steps", "run")
    push_to_hub: str | None = _opt(None, "push the final EMA model to this Hub repo id", "run", metavar="REPO")
    progress: bool = _opt(True, "tqdm progress bar (rank 0)", "run")
    tensorboard: bool = _opt(True, "TensorBoard event files under RUN_DIR/tb (needs the tensorboard package)", "run")

    # -- speed
    device: str = _opt("auto", "cuda, cpu, or auto (cuda when available)", "speed")
    threads: int | None = _opt(None, "torch intra-op threads (CPU); default: torch's choice", "speed")
    amp: bool = _opt(False, "bfloat16 autocast for the networks' forward passes (CUDA and CPU)", "speed")
    channels_last: bool = _opt(False, "channels_last memory format for networks and images", "speed")
    compile: bool = _opt(False, "torch.compile the generator, encoder and discriminator (not R1)", "speed")
    tf32: bool = _opt(False, "allow TF32 matmuls/convs on Ampere+ GPUs (off: full float32)", "speed")

    def validate(self) -> None:
        """Raise ValueError for settings that cannot work, before anything expensive starts."""
        if self.batch < 1:
            raise ValueError("--batch must be positive")
        if self.steps < 0:
            raise ValueError("--steps must not be negative")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError("--val-fraction must be in [0, 1)")
        if self.d_reg_every < 0:
            raise ValueError("--d-reg-every must not be negative")
        if not 0.0 <= self.ema_decay <= 1.0:
            raise ValueError("--ema-decay must be in [0, 1]")
        for name in ("save_every", "export_every", "sample_every", "log_every", "workers", "val_max_images"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must not be negative")
        if self.augment not in ("off", "fixed", "ada"):
            raise ValueError("--augment must be off, fixed or ada")
        for name in ("augment_p", "augment_rec_p", "ada_target"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{flag_name(name)} must be in [0, 1]")
        if self.augment == "fixed" and self.augment_p == 0:
            raise ValueError("--augment fixed needs --augment-p above 0 (0 would augment nothing)")
        if self.ada_interval < 1:
            raise ValueError("--ada-interval must be positive")
        if self.ada_kimg <= 0:
            raise ValueError("--ada-kimg must be positive")
        if self.threads is not None and self.threads < 1:
            raise ValueError("--threads must be positive")

    def model_config_dict(self) -> dict[str, Any]:
        """The StyleMapGANConfig fields (release names) these options describe."""
        return {
            "size": self.size,
            "latent_spatial_size": self.latent_spatial_size,
            "latent_channel_size": self.style_dim,
            "mapping_layer_num": self.mapping_layer_num,
            "lr_mul": self.lr_mul,
            "channel_multiplier": self.channel_multiplier,
            "normalize_mode": self.normalize_mode,
            "small_generator": self.small_generator,
            "channel_base": self.channel_base,
            "channel_max": self.channel_max,
        }

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainOptions":
        """Build from a mapping, ignoring unknown keys (options files of older versions)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "TrainOptions":
        return cls.from_dict(vars(args))


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add every TrainOptions field to ``parser`` as ``--field-name`` with its default."""
    groups: dict[str, Any] = {}
    for f in dataclasses.fields(TrainOptions):
        meta = f.metadata
        group = groups.get(meta["group"])
        if group is None:
            group = groups[meta["group"]] = parser.add_argument_group(meta["group"])
        kwargs: dict[str, Any] = dict(meta["argparse"])
        kwargs["default"] = f.default
        kwargs["dest"] = f.name
        help_text = meta["help"]
        if isinstance(f.default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _field_type(f)
            if "choices" not in kwargs:
                kwargs.setdefault("metavar", {int: "N", float: "X"}.get(kwargs["type"], "STR"))
        if f.default is not None and not isinstance(f.default, bool):
            help_text += " (default: %(default)s)"
        kwargs["help"] = help_text
        group.add_argument(flag_name(f.name), **kwargs)
    return parser


def _field_type(f: dataclasses.Field) -> type:
    """The argparse type of a field, from its annotation string (``from __future__`` annotations)."""
    annotation = str(f.type)
    for name, typ in (("int", int), ("float", float), ("str", str)):
        if annotation.startswith(name):
            return typ
    raise TypeError(f"unsupported option type {annotation!r} for {f.name}")


def build_parser(prog: str = "smapgan train") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Train a StyleMapGAN on a folder of images.")
    return add_arguments(parser)


def merge_for_resume(stored: Mapping[str, Any], given: TrainOptions) -> tuple[TrainOptions, list[str]]:
    """Options of a resumed run: the recipe from ``stored``; run control from ``given`` where set.

    A run-control flag left at its default keeps the stored value (so ``--resume`` alone
    continues with the same ``--steps``, ``--save-every``...). Returns the merged options
    and a note for each recipe value given on the command line that differs from the
    stored run (ignored, since it would change what is being trained).
    """
    defaults = TrainOptions()
    merged = given.to_dict()
    notes = []
    for name, value in given.to_dict().items():
        if name not in stored or name in ("resume", "out"):
            continue
        default = getattr(defaults, name)
        if name in RECIPE_FIELDS:
            if value != stored[name] and value != default:
                notes.append(f"{flag_name(name)} {value!r} ignored on --resume: the run uses {stored[name]!r}")
            merged[name] = stored[name]
        elif value == default:
            merged[name] = stored[name]
    return TrainOptions.from_dict(merged), notes
