"""The model configuration, with the official release's field names."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

NORMALIZE_MODES = ("LayerNorm", "InstanceNorm2d", "BatchNorm2d")
ALIGNMENTS = ("none", "ffhq")
"""How a photo becomes a model's input: "ffhq", faces aligned by the FFHQ procedure (how CelebA-HQ and
FFHQ were made: smapgan.intake.align); "none", the largest centered square."""


def _field(default: Any, help: str, **argparse_kwargs: Any) -> Any:
    """A config field with its documentation: the trainer makes a flag of it (smapgan/train/options.py)."""
    return field(default=default, metadata={"help": help, "argparse": argparse_kwargs})


@dataclass
class StyleMapGANConfig:
    """Everything needed to build the networks.

    Field names follow the release's ``train_args`` so a release checkpoint's
    namespace maps onto this dataclass one to one. ``channel_base`` and
    ``channel_max`` generalise the release's hard-coded width table (whose values
    are the defaults) so that narrow models can be built and tested. ``alignment`` is
    not the networks' but their data's: how a photo must be cropped to look like the
    training images (configs written before it existed load as "none").
    """

    size: int = _field(256, "image side in pixels")
    latent_spatial_size: int = _field(8, "stylemap side L")
    latent_channel_size: int = _field(64, "stylemap channels C (the release's networks call it style_dim)")
    mapping_layer_num: int = _field(8, "layers of the mapping network")
    lr_mul: float = _field(0.01, "learning-rate multiplier of the mapping network")
    channel_multiplier: int = _field(2, "width multiplier of the width table")
    normalize_mode: str = _field("LayerNorm", "normalization inside the styled convs", choices=NORMALIZE_MODES)
    small_generator: bool = _field(False, "C channels everywhere in the stylemap resizer (the FFHQ 1024 release)")
    channel_base: int = _field(16384, "width table: ch[r] = min(channel_max, channel_base * multiplier // r)")
    channel_max: int = _field(512, "width table cap")
    alignment: str = _field(
        "none",
        "how photos are cropped for this model: ffhq (faces aligned like FFHQ and CelebA-HQ) or none (center crop)",
        choices=ALIGNMENTS,
    )

    def __post_init__(self) -> None:
        for name in ("size", "latent_spatial_size"):
            value = getattr(self, name)
            if value < 1 or value & (value - 1):
                raise ValueError(f"{name} must be a power of two, got {value}")
        if self.latent_spatial_size > self.size:
            raise ValueError(
                f"latent_spatial_size ({self.latent_spatial_size}) must not exceed size ({self.size})"
            )
        if self.size < 8:
            raise ValueError(f"size must be at least 8 (the discriminator ends at 4x4), got {self.size}")
        if self.alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {self.alignment!r}")
        if self.normalize_mode not in NORMALIZE_MODES:
            raise ValueError(f"normalize_mode must be one of {NORMALIZE_MODES}, got {self.normalize_mode!r}")
        if self.mapping_layer_num < 1:
            raise ValueError("mapping_layer_num must be at least 1")
        if self.latent_channel_size < 1:
            raise ValueError("latent_channel_size must be positive")

    def channels(self, resolution: int) -> int:
        """Feature width at a resolution: ``min(channel_max, channel_base * multiplier // r)``."""
        return min(self.channel_max, self.channel_base * self.channel_multiplier // resolution)

    @property
    def num_upsamplings(self) -> int:
        return int(math.log2(self.size // self.latent_spatial_size))

    @property
    def num_levels(self) -> int:
        """Levels of the stylemap pyramid (the paper's w+): two per resolution from L to size."""
        return 2 + 2 * self.num_upsamplings

    def level_resolution(self, level: int) -> int:
        """Spatial side of pyramid level ``level``."""
        return self.latent_spatial_size * 2 ** (level // 2)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "StyleMapGANConfig":
        """Build from a mapping, ignoring unknown keys (release namespaces carry training flags)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names and v is not None})
