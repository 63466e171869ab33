"""The single converter from official-release ``.pt`` checkpoints to smapgan folders.

Release checkpoints are pickles. They are opened with ``weights_only=True`` and
an allowlist of exactly one class (``argparse.Namespace``, the ``train_args``),
so a checkpoint that carries code is refused before anything runs (docs/release_facts.md §Checkpoints).
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
from pathlib import Path
from typing import Any

import torch

from ..networks.config import StyleMapGANConfig
from . import StyleMapGAN

RELEASE_MODEL_CARD = """---
library_name: smapgan
license: cc-by-nc-4.0
tags:
- stylemapgan
- gan
- image-editing
---

# StyleMapGAN ({dataset}, {size}px, {side}x{side} stylemap)

Converted with `smapgan convert` from the official StyleMapGAN release checkpoint `{source}`
(EMA generator and encoder{disc}). Optimizer states were dropped.

- Data: {dataset}
- Configuration: {config}
- License: the official release's weights are CC BY-NC 4.0 (non-commercial use only),
  (c) NAVER Corp.; see https://github.com/naver-ai/StyleMapGAN.

```python
from smapgan import StyleMapGAN
model = StyleMapGAN.from_pretrained("PATH_OR_REPO")
```

## Citation

```bibtex
@inproceedings{{kim2021stylemapgan,
  title={{Exploiting Spatial Dimensions of Latent in GAN for Real-time Image Editing}},
  author={{Kim, Hyunsu and Choi, Yunjey and Kim, Junho and Yoo, Sungjoo and Uh, Youngjung}},
  booktitle={{Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)}},
  year={{2021}}
}}
```
"""


RELEASE_ALIGNMENT = {"celeba_hq": "ffhq", "ffhq": "ffhq"}
"""The release's data sets whose images are FFHQ-aligned faces (CelebA-HQ was made the same way).
AFHQ's animal faces, LSUN cars and churches have no landmark alignment: their photos are center-cropped."""


def release_alignment(dataset: str | None) -> str:
    """The ``alignment`` a release checkpoint of ``dataset`` wants ("celeba_hq", "CelebA-HQ", "afhq"...)."""
    key = (dataset or "").strip().lower().replace("-", "_").replace(" ", "_")
    return RELEASE_ALIGNMENT.get(key, "none")


class UnsafeCheckpointError(RuntimeError):
    """The checkpoint's pickle wants to construct objects outside the allowlist (i.e. run code)."""


class CheckpointFormatError(RuntimeError):
    """The file is not a release checkpoint (missing entries, unreadable)."""


def load_release_checkpoint(path: str | Path) -> dict[str, Any]:
    """Open a release checkpoint safely: tensors, plain containers and ``argparse.Namespace`` only."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpointError(
            f"{path} was refused: its pickle references code or objects outside the allowlist "
            f"(tensors, containers, argparse.Namespace), so it was not loaded and nothing in it ran. "
            f"Only load checkpoints from sources you trust. Details: {str(exc).splitlines()[0]}"
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointFormatError(f"{path} is not a readable PyTorch checkpoint: {exc}") from exc
    if not isinstance(checkpoint, dict):
        raise CheckpointFormatError(f"{path} holds a {type(checkpoint).__name__}, not a release checkpoint dict")
    missing = [key for key in ("g_ema", "e_ema", "train_args") if key not in checkpoint]
    if missing:
        raise CheckpointFormatError(f"{path} lacks {', '.join(missing)}: not a StyleMapGAN release checkpoint")
    return checkpoint


def model_from_release_checkpoint(checkpoint: dict[str, Any], alignment: str) -> StyleMapGAN:
    """Build a model (its config from the ``train_args``, a Namespace or dict, with ``alignment``) and load
    the EMA weights (and the discriminator, when present) strictly."""
    train_args = checkpoint["train_args"]
    values = vars(train_args) if isinstance(train_args, argparse.Namespace) else dict(train_args)
    config = dataclasses.replace(StyleMapGANConfig.from_dict(values), alignment=alignment)
    has_d = isinstance(checkpoint.get("discriminator"), dict)
    model = StyleMapGAN(config, with_discriminator=has_d)
    try:
        model.generator.load_state_dict(checkpoint["g_ema"], strict=True)
        model.encoder.load_state_dict(checkpoint["e_ema"], strict=True)
        if model.discriminator is not None:
            model.discriminator.load_state_dict(checkpoint["discriminator"], strict=True)
    except RuntimeError as exc:
        raise CheckpointFormatError(f"the checkpoint's weights do not match its train_args: {exc}") from exc
    return model.eval()


def convert_release_checkpoint(
    path: str | Path,
    out_dir: str | Path,
    dataset: str | None = None,
    keep_discriminator: bool = True,
    alignment: str | None = None,
) -> StyleMapGAN:
    """Convert a release ``.pt`` to ``config.json`` + ``model.safetensors`` + a model card.

    ``alignment`` (the config's): default from the data set, ``dataset`` or the ``train_args``' one.
    """
    checkpoint = load_release_checkpoint(path)
    args = checkpoint["train_args"]
    dataset = dataset or getattr(args, "dataset", None)
    model = model_from_release_checkpoint(checkpoint, alignment or release_alignment(dataset))
    if not keep_discriminator:
        model.discriminator = None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = dataset or "unknown dataset"
    cfg = model.config
    card = RELEASE_MODEL_CARD.format(
        dataset=dataset,
        size=cfg.size,
        side=cfg.latent_spatial_size,
        source=Path(path).name,
        disc=", discriminator" if model.discriminator is not None else "",
        config=", ".join(f"{k}={v}" for k, v in cfg.to_dict().items()),
    )
    (out_dir / "README.md").write_text(card)
    model.save_pretrained(out_dir)
    return model
