"""The trainer's flag set: one dataclass field per flag, release defaults (docs/release_facts.md §Training).

The dataclass is the single source: the argparse builder, the run directory's
``options.json`` and the checkpoint's ``options`` entry are all derived from it, so a
flag cannot exist in one place and be missing in another. The model's fields are not
written here at all: they are generated from :class:`StyleMapGANConfig` (same names,
defaults and help), so the options and the config cannot drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..networks.config import StyleMapGANConfig

# Option names used before the model fields took the release's names. Older options.json
# files and checkpoints are read through this table, and the old flags still parse.
RENAMED = {"style_dim": "latent_channel_size"}

# Argument groups of ``--help``, in this order.
GROUPS = ("data", "model", "optimization", "augmentation", "run", "speed")


def _opt(default: Any, help: str, group: str, recipe: bool = False, **argparse_kwargs: Any) -> Any:
    """A dataclass field carrying its flag's help text, group and extra argparse settings.

    ``recipe``: the field defines what is being trained, so on ``--resume`` it comes from the
    run directory, never from the command line (a different value there is reported and ignored).
    """
    metadata = {"help": help, "group": group, "recipe": recipe, "argparse": argparse_kwargs}
    return field(default=default, metadata=metadata)


def _recipe(default: Any, help: str, group: str, **argparse_kwargs: Any) -> Any:
    """An option that defines what is being trained (see :func:`_opt`'s ``recipe``)."""
    return _opt(default, help, group, recipe=True, **argparse_kwargs)


def _model_fields() -> list[tuple[str, Any, Any]]:
    """One recipe option per :class:`StyleMapGANConfig` field, with its name, type, default and help."""
    return [
        (f.name, f.type, _recipe(f.default, f.metadata["help"], "model", **f.metadata["argparse"]))
        for f in dataclasses.fields(StyleMapGANConfig)
    ]


# The model group of the options, generated (not copied) from the config.
ModelOptions = dataclasses.make_dataclass("ModelOptions", _model_fields())


@dataclass
class TrainOptions(ModelOptions):  # type: ignore[misc,valid-type]
    """Every setting of a training run. Defaults are the official release's.

    The model fields (``size``, ``latent_channel_size``...) come from :data:`ModelOptions`.
    """

    # -- data
    data: str | None = _recipe(None, "image folder, searched recursively (png, jpg, webp, bmp, gif, tiff...)", "data", metavar="DIR")
    out: str = _opt("runs/smapgan", "run directory: checkpoints, exports, TensorBoard logs, samples", "data", metavar="RUN_DIR")
    val_data: str | None = _recipe(None, "held-out image folder for validation (default: split --val-fraction off --data)", "data", metavar="DIR")
    val_fraction: float = _recipe(0.05, "fraction of --data held out for validation when --val-data is not given (0: none)", "data")
    val_max_images: int = _recipe(256, "at most this many validation images (keeps evaluation cheap)", "data")
    flip: bool = _recipe(True, "random horizontal flips of the training images", "data")
    workers: int = _opt(2, "DataLoader worker processes per rank (0: load in the training process)", "data")
    cache_images: str = _opt(
        "auto",
        "decode the training set once into RAM: auto (when it fits in 2 GiB), on, off",
        "data",
        choices=("auto", "on", "off"),
    )

    # -- model: the StyleMapGANConfig fields (ModelOptions), then where to start from
    init: str | None = _recipe(None, "start from a saved or converted model (directory or Hub repo id): fine-tuning", "model", metavar="MODEL_DIR_OR_REPO")

    # -- optimization (docs/release_facts.md §Training)
    batch: int = _recipe(16, "total batch size over all ranks", "optimization")
    steps: int = _opt(1_400_000, "iterations to train (the release ran 1.4M)", "optimization")
    lr: float = _recipe(0.002, "Adam learning rate of G and E (D gets lr * k/(k+1), k = --d-reg-every)", "optimization")
    beta1: float = _recipe(0.0, "Adam beta1 of G and E (D gets beta1 ** (k/(k+1)))", "optimization")
    beta2: float = _recipe(0.99, "Adam beta2 of G and E (D gets beta2 ** (k/(k+1)))", "optimization")
    r1: float = _recipe(10.0, "R1 penalty weight gamma", "optimization")
    d_reg_every: int = _recipe(16, "lazy R1: apply the penalty every k steps, scaled by k (0: never)", "optimization")
    ema_decay: float = _recipe(0.999, "decay of the exponential moving average of G and E", "optimization")
    lambda_adv: float = _recipe(1.0, "G: non-saturating adversarial loss on G(z)", "optimization")
    lambda_w_rec: float = _recipe(1.0, "E: latent reconstruction MSE(E(G(z)), w)", "optimization")
    lambda_d: float = _recipe(1.0, "D: logistic loss on reals and G(z)", "optimization")
    lambda_indomain_d: float = _recipe(1.0, "D: in-domain term softplus(D(G(E(x))))", "optimization")
    lambda_x_rec: float = _recipe(1.0, "E and G: image reconstruction MSE(x, G(E(x)))", "optimization")
    lambda_perceptual: float = _recipe(1.0, "E and G: LPIPS-VGG(x, G(E(x))); 0 trains without LPIPS (no VGG weights needed)", "optimization")
    lambda_indomain_e: float = _recipe(1.0, "E and G: in-domain adversarial term softplus(-D(G(E(x))))", "optimization")

    # -- augmentation for limited data (smapgan/train/augment.py)
    augment: str = _recipe(
        "off",
        "differentiable augmentation of every image D sees (translation, scaling, hue, saturation, brightness, "
        "cutout): off, fixed (probability --augment-p), ada (p adapted to D's overfitting, starting at --augment-p)",
        "augmentation",
        choices=("off", "fixed", "ada"),
    )
    augment_p: float = _recipe(0.0, "probability of each op per image: the value for --augment fixed, the start for ada", "augmentation")
    ada_target: float = _recipe(0.6, "ada: target of r_t = E[sign(D(real))]; p rises above it, falls below", "augmentation")
    ada_interval: int = _recipe(4, "ada: adjust p every N iterations", "augmentation")
    ada_kimg: float = _recipe(500.0, "ada: thousands of images for p to go from 0 to 1 at the fastest", "augmentation")
    augment_rec: bool = _recipe(False, "feed E shifted/scaled/recoloured reals and reconstruct those (E generalises)", "augmentation")
    augment_rec_p: float = _recipe(0.5, "probability of each op per image for --augment-rec", "augmentation")

    # -- run control
    seed: int = _recipe(0, "seed of weights, noise, data order, flips and the validation split", "run")
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
        for name in ("batch", "ada_interval", "ada_kimg", "threads"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ValueError(f"{flag_name(name)} must be positive")
        for name in ("steps", "d_reg_every", "save_every", "export_every", "sample_every", "log_every", "workers",
                     "val_max_images"):
            if getattr(self, name) < 0:
                raise ValueError(f"{flag_name(name)} must not be negative")
        for name in ("augment_p", "augment_rec_p", "ada_target", "ema_decay"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{flag_name(name)} must be in [0, 1]")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError("--val-fraction must be in [0, 1)")
        if self.augment not in ("off", "fixed", "ada"):
            raise ValueError("--augment must be off, fixed or ada")
        if self.augment == "fixed" and self.augment_p == 0:
            raise ValueError("--augment fixed needs --augment-p above 0 (0 would augment nothing)")

    def model_config_dict(self) -> dict[str, Any]:
        """The StyleMapGANConfig fields these options describe (the same names)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(StyleMapGANConfig)}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainOptions":
        """Build from a mapping, ignoring unknown keys (options files of older versions; renamed ones are read)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in upgrade(values).items() if k in names})

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "TrainOptions":
        return cls.from_dict(vars(args))


# Fields that define what is being trained (see ``_opt``'s ``recipe``).
RECIPE_FIELDS = tuple(f.name for f in dataclasses.fields(TrainOptions) if f.metadata["recipe"])


def upgrade(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with every option stored under an old name (:data:`RENAMED`) under its current one.

    A value stored under the current name wins over one under the old name.
    """
    upgraded = {RENAMED.get(k, k): v for k, v in values.items() if k in RENAMED}
    upgraded.update((k, v) for k, v in values.items() if k not in RENAMED)
    return upgraded


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


class _DeprecatedAlias(argparse.Action):
    """An old flag that still works: stores into the new option's dest and says to use the new flag."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog}: warning: {option_string} is deprecated; use {flag_name(self.dest)}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add every TrainOptions field to ``parser`` as ``--field-name`` with its default.

    Each old name of :data:`RENAMED` is added too, as a hidden deprecated alias of the new flag.
    """
    groups = {name: parser.add_argument_group(name) for name in GROUPS}
    old_names = {new: old for old, new in RENAMED.items()}
    for f in sorted(dataclasses.fields(TrainOptions), key=lambda f: GROUPS.index(f.metadata["group"])):
        meta = f.metadata
        group = groups[meta["group"]]
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
        if f.name in old_names:
            group.add_argument(
                flag_name(old_names[f.name]), dest=f.name, type=kwargs["type"], action=_DeprecatedAlias,
                default=argparse.SUPPRESS, help=argparse.SUPPRESS,
            )
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
    stored = upgrade(stored)
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
