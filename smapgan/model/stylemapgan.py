"""The public model: encoder + generator (+ discriminator), loadable from and pushable to the Hub.

The model computes; it knows nothing about ops, canvases or Gradio (those are in
``smapgan.ops`` and ``smapgan.app``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Sequence

import torch
from huggingface_hub import PyTorchModelHubMixin
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file, save_model
from torch import nn

from .prior import PRIOR_NAME, StylemapPrior, read_prior
from ..networks.config import StyleMapGANConfig
from ..networks import Discriminator, Encoder, Generator

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
DIRECTIONS_NAME = "directions.safetensors"


# Central detail (see central_detail) above which a picture counts as a face with features: on
# the bundled model a prior draw with eyes and mouth gives 0.1-0.35, a blank disc or blob 0.02-0.08.
DETAIL_CAP = 0.12


def central_detail(pictures: torch.Tensor) -> torch.Tensor:
    """Luminance variance of each picture's central half (N,): where a framed face has its eyes and mouth."""
    side = pictures.shape[-1]
    margin = side // 4
    centre = pictures[..., margin:side - margin, margin:side - margin]
    luminance = 0.299 * centre[:, 0] + 0.587 * centre[:, 1] + 0.114 * centre[:, 2]
    return luminance.flatten(1).var(1, unbiased=False)


def _score(cycle_error: torch.Tensor, pictures: torch.Tensor) -> torch.Tensor:
    """StyleMapGAN.candidate_score from a round trip's cycle error and pictures."""
    return cycle_error / central_detail(pictures).clamp(1e-6, DETAIL_CAP)


class ModelLoadError(RuntimeError):
    """A model folder exists but its files are unusable (truncated, mismatched, missing)."""


class StyleMapGAN(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="smapgan",
    repo_url="https://github.com/smapgan/smapgan",
    paper_url="https://arxiv.org/abs/2104.14754",
    tags=["stylemapgan", "gan", "image-editing"],
):
    """StyleMapGAN: a GAN with a spatial latent (the stylemap) and an encoder into it.

    Submodules keep the release's state-dict layout: ``generator`` is the
    release's ``g_ema``, ``encoder`` its ``e_ema``, ``discriminator`` its
    ``discriminator`` (``None`` when a checkpoint had none).
    """

    def __init__(self, config: StyleMapGANConfig, with_discriminator: bool = True) -> None:
        super().__init__()
        if isinstance(config, dict):  # tolerate configs passed as plain dicts
            config = StyleMapGANConfig.from_dict(config)
        self.config = config
        self.generator = Generator(config)
        self.encoder = Encoder(config)
        self.discriminator: Discriminator | None = Discriminator(config) if with_discriminator else None
        # Named semantic directions (C, L, L), saved next to the weights; not parameters.
        self.directions: dict[str, torch.Tensor] = {}
        # String metadata stored in directions.safetensors (e.g. SeFa eigenvalues as JSON).
        self.directions_metadata: dict[str, str] = {}
        # A density fitted to the encoder's stylemaps (smapgan.model.prior), saved next to the weights.
        self.prior: StylemapPrior | None = None
        self._hub_mixin_config = config

    # ------------------------------------------------------------------ compute
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(N,3,S,S) images in [-1,1] -> stylemaps (N,C,L,L)."""
        self._check_images(images)
        return self.encoder(images)

    def expand(self, stylemap: torch.Tensor) -> list[torch.Tensor]:
        """Stylemap -> the w+ pyramid, one tensor per styled layer."""
        self._check_stylemap(stylemap)
        return self.generator.decoder.expand(stylemap)

    def synthesize(self, pyramid: Sequence[torch.Tensor]) -> torch.Tensor:
        """Image from a (possibly edited) pyramid; unclamped like the release."""
        return self.generator.decoder.synthesize(pyramid)

    def decode(self, stylemap: torch.Tensor) -> torch.Tensor:
        """Stylemap -> image (N,3,S,S), unclamped."""
        return self.synthesize(self.expand(stylemap))

    def map(self, z: torch.Tensor) -> torch.Tensor:
        """Latent z (N,C) -> stylemap (N,C,L,L) through the mapping network."""
        if z.ndim != 2 or z.shape[1] != self.config.latent_channel_size:
            raise ValueError(f"z must have shape (N, {self.config.latent_channel_size}), got {tuple(z.shape)}")
        return self.generator.map(z)

    def generate(
        self,
        z: torch.Tensor,
        truncation: float = 1.0,
        mean_stylemap: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Random generation with optional truncation ``mean + psi * (w - mean)``."""
        w = self.map(z)
        if truncation != 1.0:
            if mean_stylemap is None:
                raise ValueError("truncation needs mean_stylemap (see StyleMapGAN.mean_stylemap)")
            mean = mean_stylemap.reshape(1, *w.shape[1:])
            w = mean + truncation * (w - mean)
        return self.decode(w)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        truncation: float = 1.0,
        source: str | None = None,
        generator: torch.Generator | None = None,
        mean_stylemap: torch.Tensor | None = None,
        candidates: int = 1,
        project: int = 0,
    ) -> torch.Tensor:
        """``n`` random stylemaps (n,C,L,L); decode them with :meth:`decode`.

        ``source="prior"`` draws from the encoded prior (:attr:`prior`; truncation pulls
        toward the drawn component's mean), ``"mapping"`` maps z ~ N(0, I) (truncation
        pulls toward the average mapping output, ``mean_stylemap`` if given). The default
        is the prior when the model has one. Draws come from ``generator`` on the CPU.

        ``candidates=k`` draws k stylemaps per sample (sample i from draws i*k .. i*k+k-1,
        so ``candidates=1`` is the plain draw) and keeps the one with the smallest
        :meth:`candidate_score`. Each extra candidate costs one decode and one encode.

        ``project=r`` then moves each kept sample onto the encoder's codes with ``r`` rounds of
        :meth:`project`, one decode and one encode each.
        """
        if candidates < 1:
            raise ValueError(f"candidates must be at least 1, got {candidates}")
        if project < 0:
            raise ValueError(f"project must be at least 0, got {project}")
        draws = self._draw(n * candidates, truncation, source, generator, mean_stylemap)
        if candidates == 1:
            return self.project(draws, project)
        kept, kept_projected = [], []
        for group in draws.reshape(n, candidates, *draws.shape[1:]):
            projected, error, pictures = self._round_trip(group)
            best = _score(error, pictures).argmin()
            kept.append(group[best])
            kept_projected.append(projected[best])
        if project == 0:
            return torch.stack(kept)
        # The kept draw's first round was made when its cycle error was measured: not made again.
        return self.project(torch.stack(kept_projected), project - 1)

    @torch.no_grad()
    def project(self, stylemaps: torch.Tensor, rounds: int = 1) -> torch.Tensor:
        """``rounds`` times ``w <- E(clamp(G(w)))``: a stylemap moved onto the codes the encoder gives pictures.

        Why: a draw from the prior lies slightly off the encoder's codes, where the decoder smears
        features; the encoder, trained only on real images, maps its picture back to a code of the
        kind it gives real faces, so one round trip acts as a learned denoiser of the draw.
        """
        self._check_stylemap(stylemaps)
        for _ in range(rounds):
            stylemaps = self.encode(self.decode(stylemaps).clamp(-1, 1))
        return stylemaps

    @torch.no_grad()
    def cycle_error(self, stylemaps: torch.Tensor) -> torch.Tensor:
        """How far each stylemap moves when decoded and encoded again: MSE of ``E(clamp(G(w)))`` to ``w``, (N,).

        Why it tells good samples: the encoder was trained only on real images and the decoder
        is good only where the encoder's codes lie, so a draw whose picture the encoder maps
        back onto it is one the two networks agree is a face. :meth:`candidate_score` builds on it.
        """
        return self._round_trip(stylemaps)[1]

    @torch.no_grad()
    def candidate_score(self, stylemaps: torch.Tensor) -> torch.Tensor:
        """What ``sample(..., candidates=k)`` minimises: :meth:`cycle_error` over the picture's detail, (N,).

        Why: a blank face (a plain disc, a blob with only a blush) re-encodes best of all, so cycle
        error alone picks it; dividing by :func:`central_detail`, capped at ``DETAIL_CAP``, makes a
        picture flatter than a face with eyes and mouth pay in proportion, while among faces with
        features cycle error alone decides.
        """
        _, error, pictures = self._round_trip(stylemaps)
        return _score(error, pictures)

    def _round_trip(self, stylemaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One round of :meth:`project`, how far it moved each stylemap (:meth:`cycle_error`), and the pictures."""
        self._check_stylemap(stylemaps)
        pictures = self.decode(stylemaps).clamp(-1, 1)
        projected = self.encode(pictures)
        return projected, (projected - stylemaps).pow(2).flatten(1).mean(1), pictures

    def _draw(
        self,
        n: int,
        truncation: float,
        source: str | None,
        generator: torch.Generator | None,
        mean_stylemap: torch.Tensor | None,
    ) -> torch.Tensor:
        """``n`` independent stylemaps from the prior or the mapping network (see :meth:`sample`)."""
        source = source or ("prior" if self.prior is not None else "mapping")
        if source == "prior":
            if self.prior is None:
                raise ValueError("this model has no prior: fit one with `smapgan prior fit`, or use source='mapping'")
            return self.prior.sample(n, truncation, generator).to(self.device)
        if source != "mapping":
            raise ValueError(f"source must be 'prior' or 'mapping', got {source!r}")
        z = torch.randn(n, self.config.latent_channel_size, generator=generator).to(self.device)
        w = self.map(z)
        if truncation != 1.0:
            mean = self.mean_stylemap() if mean_stylemap is None else mean_stylemap.to(w)
            w = mean.reshape(1, *w.shape[1:]) + truncation * (w - mean.reshape(1, *w.shape[1:]))
        return w

    @torch.no_grad()
    def mean_stylemap(self, num_samples: int = 4096, seed: int = 0, batch_size: int = 1024) -> torch.Tensor:
        """Average mapping output (1,C,L,L) over ``num_samples`` random z."""
        gen = torch.Generator().manual_seed(seed)
        total = None
        for start in range(0, num_samples, batch_size):
            n = min(batch_size, num_samples - start)
            z = torch.randn(n, self.config.latent_channel_size, generator=gen).to(self.device)
            s = self.map(z).sum(0, keepdim=True)
            total = s if total is None else total + s
        return total / num_samples

    def _check_images(self, images: torch.Tensor) -> None:
        size = self.config.size
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2:] != (size, size):
            raise ValueError(f"images must have shape (N, 3, {size}, {size}), got {tuple(images.shape)}")

    def _check_stylemap(self, stylemap: torch.Tensor) -> None:
        c, side = self.config.latent_channel_size, self.config.latent_spatial_size
        if stylemap.ndim != 4 or stylemap.shape[1:] != (c, side, side):
            raise ValueError(f"stylemap must have shape (N, {c}, {side}, {side}), got {tuple(stylemap.shape)}")

    # ------------------------------------------------------------- directions
    def add_direction(self, name: str, direction: torch.Tensor) -> None:
        """Store a named semantic direction (C,L,L); saved with the weights."""
        c, side = self.config.latent_channel_size, self.config.latent_spatial_size
        direction = direction.detach().reshape(-1)
        if direction.numel() != c * side * side:
            raise ValueError(f"direction {name!r} must have {c * side * side} values, got {direction.numel()}")
        self.directions[name] = direction.reshape(c, side, side).float().cpu().clone()

    # ------------------------------------------------------------ persistence
    def _save_pretrained(self, save_directory: Path) -> None:
        save_model(self, str(Path(save_directory) / WEIGHTS_NAME))
        self.save_directions(save_directory)
        self.save_prior(save_directory)

    def save_prior(self, save_directory: str | os.PathLike) -> None:
        """Write (or remove) ``prior.safetensors``, leaving the weights alone."""
        path = Path(save_directory) / PRIOR_NAME
        if self.prior is not None:
            self.prior.save(path)
        elif path.exists():
            path.unlink()

    def save_directions(self, save_directory: str | os.PathLike) -> None:
        """Write (or remove) ``directions.safetensors`` with its metadata, leaving the weights alone."""
        directions_path = Path(save_directory) / DIRECTIONS_NAME
        if self.directions:
            save_file(
                {k: v.contiguous() for k, v in self.directions.items()},
                str(directions_path),
                metadata=dict(self.directions_metadata) or None,
            )
        elif directions_path.exists():
            directions_path.unlink()

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        revision: str | None = None,
        *,
        map_location: str | torch.device = "cpu",
        **_: object,
    ) -> "StyleMapGAN":
        """Load from a local folder or a Hub repo id (strictly: every tensor must match).

        Unlike the mixin's default this loads with ``strict=True``, prints
        nothing, and also brings the stored semantic directions and prior.
        """
        if Path(pretrained_model_name_or_path).is_dir():
            return cls._load_folder(Path(pretrained_model_name_or_path), map_location)
        from .hub import resolve_model_dir

        folder = resolve_model_dir(
            pretrained_model_name_or_path,
            revision=revision,
            allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, DIRECTIONS_NAME, PRIOR_NAME, "README.md"],
            required_files=(CONFIG_NAME, WEIGHTS_NAME),  # a repo without weights: say so, naming repo and file
        )
        return cls._load_folder(Path(folder), map_location)

    @classmethod
    def _load_folder(cls, folder: Path, map_location: str | torch.device = "cpu") -> "StyleMapGAN":
        config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        for path in (config_path, weights_path):
            if not path.is_file():
                raise ModelLoadError(f"{path} is missing: a smapgan model folder needs {CONFIG_NAME} and {WEIGHTS_NAME}")
        try:
            config = StyleMapGANConfig.from_dict(json.loads(config_path.read_text()))
        except (ValueError, TypeError) as exc:
            raise ModelLoadError(f"{config_path} is not a valid smapgan config: {exc}") from exc
        try:
            state = load_file(str(weights_path), device=str(map_location))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelLoadError(f"{weights_path} is not a readable safetensors file ({exc})") from exc
        has_discriminator = any(k.startswith("discriminator.") for k in state)
        model = cls(config, with_discriminator=has_discriminator)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelLoadError(
                f"{weights_path} does not match the configuration in {config_path}: {exc}"
            ) from exc
        directions_path = folder / DIRECTIONS_NAME
        if directions_path.is_file():
            try:
                for name, tensor in load_file(str(directions_path)).items():
                    model.add_direction(name, tensor)
                with safe_open(str(directions_path), "pt") as f:
                    model.directions_metadata = dict(f.metadata() or {})
            except (SafetensorError, OSError, ValueError) as exc:
                raise ModelLoadError(f"{directions_path} is unreadable or mismatched ({exc})") from exc
        try:
            model.prior = read_prior(folder)
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelLoadError(f"{folder / PRIOR_NAME} is unreadable or mismatched ({exc})") from exc
        side, channels = config.latent_spatial_size, config.latent_channel_size
        if model.prior is not None and model.prior.shape != (channels, side, side):
            raise ModelLoadError(
                f"{folder / PRIOR_NAME} is for stylemaps of shape {model.prior.shape}, the model's are "
                f"{(channels, side, side)}: refit it with `smapgan prior fit`"
            )
        return model.to(map_location).eval()

    def push_to_hub(  # type: ignore[override]
        self,
        repo_id: str,
        *,
        commit_message: str = "Upload smapgan model",
        private: bool = False,
        token: str | None = None,
        revision: str | None = None,
        extra_files: dict[str, str | os.PathLike] | None = None,
    ) -> str:
        """Save to a temporary folder and upload it (config, safetensors, directions, prior, card)."""
        from .hub import push_folder

        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp)
            for name, src in (extra_files or {}).items():
                Path(tmp, name).write_bytes(Path(src).read_bytes())
            return push_folder(
                tmp, repo_id, commit_message=commit_message, private=private, token=token, revision=revision
            )
