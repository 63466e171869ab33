"""The encoded prior: a density fitted to the encoder's stylemaps, to sample new ones from.

Why: a briefly trained mapping network lands where the decoder was never taught (the
bundled model's random samples were lumpy "cookies"), while the encoder's codes of real
images are exactly where the decoder is good. Fitting a density to those codes after
training is ex-post density estimation (Ghosh et al. 2020, *From Variational to
Deterministic Autoencoders*, fit a Gaussian mixture to an autoencoder's codes).

The density: a Gaussian mixture with full covariances in a ``rank``-dimensional PCA basis
of the flattened stylemap. ``scripts/evaluate_prior.py`` chose it by measurement (the
model card lists the figures): one Gaussian gives blurry chimeras of many faces, a
per-cell Gaussian loses the face's structure, and a mixture keeps whole kinds of face
apart (smileys, cat faces, flat and shaded styles) so that truncation, pulled toward the
drawn component's mean, stays varied. Fitted by a few lines of EM in torch rather than a
new dependency (scikit-learn would bring scipy for one small fit).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

PRIOR_NAME = "prior.safetensors"


@dataclass
class StylemapPrior:
    """``stylemap = mean + basis.T @ (means[c] + scales[c] @ eps)``, c drawn by ``weights``.

    ``basis`` (rank, C*L*L) has orthonormal rows; ``scales`` are the components' Cholesky
    factors in that basis. Stored in float16 where sampling measures the same
    (see :meth:`save`); used in float32.
    """

    mean: torch.Tensor  # (C*L*L,)
    basis: torch.Tensor  # (rank, C*L*L)
    weights: torch.Tensor  # (K,)
    means: torch.Tensor  # (K, rank)
    scales: torch.Tensor  # (K, rank, rank), lower triangular
    shape: tuple[int, int, int]  # (C, L, L)

    @property
    def rank(self) -> int:
        return self.basis.shape[0]

    @property
    def components(self) -> int:
        return self.weights.shape[0]

    def sample(
        self, n: int, truncation: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``n`` stylemaps (n,C,L,L); truncation pulls each toward its drawn component's mean.

        The draws come from ``generator`` on the CPU, so a seed gives the same stylemaps
        on any device.
        """
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        if not 0.0 <= truncation <= 1.0:
            raise ValueError(f"truncation must be in [0, 1], got {truncation}")
        chosen = torch.multinomial(self.weights.float(), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.rank, 1, generator=generator)
        coords = self.means[chosen].float() + truncation * (self.scales[chosen].float() @ eps)[..., 0]
        return self.decode_coords(coords)

    def component_means(self) -> torch.Tensor:
        """Each component's mean stylemap (K,C,L,L): what truncation 0 gives."""
        return self.decode_coords(self.means.float())

    def decode_coords(self, coords: torch.Tensor) -> torch.Tensor:
        """Stylemaps (n,C,L,L) from coordinates (n, rank) in the PCA basis."""
        return (self.mean.float() + coords @ self.basis.float()).reshape(-1, *self.shape)

    def to_coords(self, stylemaps: torch.Tensor) -> torch.Tensor:
        """Coordinates (n, rank) of stylemaps in the PCA basis (their projection)."""
        return (stylemaps.reshape(len(stylemaps), -1).float() - self.mean.float()) @ self.basis.float().T

    def log_prob(self, stylemaps: torch.Tensor) -> torch.Tensor:
        """Log-density of the stylemaps' projections under the mixture (n,), for measuring fits."""
        return _mixture_log_prob(
            self.to_coords(stylemaps).double(), self.weights.double(), self.means.double(), self.scales.double()
        )

    # ------------------------------------------------------------------ fit
    @classmethod
    def fit(
        cls,
        stylemaps: torch.Tensor,
        rank: int = 64,
        components: int = 64,
        iterations: int = 60,
        regularization: float = 1e-2,
        seed: int = 0,
    ) -> "StylemapPrior":
        """Fit to stylemaps (N,C,L,L): PCA to ``rank``, then EM for a ``components``-Gaussian mixture.

        ``regularization`` adds that fraction of the average coordinate variance to every
        covariance's diagonal (a component of a few images stays a proper Gaussian).
        """
        if stylemaps.ndim != 4:
            raise ValueError(f"stylemaps must have shape (N, C, L, L), got {tuple(stylemaps.shape)}")
        count = len(stylemaps)
        if rank < 1 or components < 1:
            raise ValueError(f"rank and components must be positive, got {rank} and {components}")
        if count < max(2, components):
            raise ValueError(f"fitting {components} components needs at least {max(2, components)} stylemaps, got {count}")
        x = stylemaps.reshape(count, -1).double()
        rank = min(rank, count - 1, x.shape[1])
        mean = x.mean(0)
        _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)
        basis = vh[:rank]
        coords = (x - mean) @ basis.T
        weights, means, scales = _fit_mixture(coords, components, iterations, regularization, seed)
        return cls(mean.float(), basis.float(), weights.float(), means.float(), scales.float(),
                   tuple(stylemaps.shape[1:]))  # type: ignore[arg-type]

    # ------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike, dtype: torch.dtype = torch.float16) -> None:
        """Write the prior as safetensors; the basis, mean and scales in ``dtype`` (float16 samples the same:
        the bundled model's 32 card samples moved at most 0.002 in pixels)."""
        tensors = {
            "mean": self.mean.to(dtype).contiguous(),
            "basis": self.basis.to(dtype).contiguous(),
            "weights": self.weights.float().contiguous(),
            "means": self.means.float().contiguous(),
            "scales": self.scales.to(dtype).contiguous(),  # 64 components' factors: 1 MB in float32
        }
        save_file(tensors, str(path), metadata={"shape": ",".join(str(s) for s in self.shape), "kind": "pca-gmm"})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "StylemapPrior":
        """Read a prior written by :meth:`save`; a missing or mismatched tensor is a ValueError naming the file."""
        from safetensors import safe_open

        tensors = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            metadata = dict(f.metadata() or {})
        missing = [k for k in ("mean", "basis", "weights", "means", "scales") if k not in tensors]
        if missing or "shape" not in metadata:
            raise ValueError(f"{path} is not a smapgan prior: it lacks {', '.join(missing) or 'its shape metadata'}")
        shape = tuple(int(s) for s in metadata["shape"].split(","))
        prior = cls(tensors["mean"].float(), tensors["basis"].float(), tensors["weights"],
                    tensors["means"], tensors["scales"].float(), shape)  # type: ignore[arg-type]
        rank, size, k = prior.basis.shape[0], prior.basis.shape[1], prior.weights.shape[0]
        if (len(shape) != 3 or math.prod(shape) != size or prior.mean.shape != (size,)
                or prior.means.shape != (k, rank) or prior.scales.shape != (k, rank, rank)):
            raise ValueError(f"{path}: the prior's tensors do not agree in shape")
        return prior


def read_prior(folder: str | os.PathLike) -> StylemapPrior | None:
    """The prior stored in a model folder, or None when it has none."""
    path = Path(folder) / PRIOR_NAME
    return StylemapPrior.load(path) if path.is_file() else None


def _mixture_log_prob(x: torch.Tensor, weights: torch.Tensor, means: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """log p(x) under a Gaussian mixture given by Cholesky factors; x (N, d) -> (N,)."""
    return torch.logsumexp(_component_log_probs(x, weights, means, scales), 1)


def _component_log_probs(x: torch.Tensor, weights: torch.Tensor, means: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """log(weight_k N(x; mean_k, L_k L_k^T)) for every point and component: (N, K)."""
    d = x.shape[1]
    diff = (x[None] - means[:, None]).transpose(1, 2)  # K, d, N
    solved = torch.linalg.solve_triangular(scales, diff, upper=False)
    logdet = 2 * torch.log(torch.diagonal(scales, dim1=1, dim2=2)).sum(1)
    log_n = -0.5 * (solved.pow(2).sum(1) + logdet[:, None] + d * math.log(2 * math.pi))  # K, N
    return (log_n + torch.log(weights)[:, None]).T


def _fit_mixture(
    x: torch.Tensor, components: int, iterations: int, regularization: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """EM for a full-covariance Gaussian mixture on x (N, d), started from k-means++ seeds."""
    n, d = x.shape
    generator = torch.Generator().manual_seed(seed)
    centres = x[torch.randint(n, (1,), generator=generator)]
    for _ in range(1, components):
        gap = torch.cdist(x, centres).pow(2).min(1).values
        pick = torch.multinomial(gap / gap.sum(), 1, generator=generator) if gap.sum() > 0 else torch.randint(n, (1,))
        centres = torch.cat([centres, x[pick]])
    resp = torch.nn.functional.one_hot(torch.cdist(x, centres).argmin(1), components).to(x.dtype)
    ridge = regularization * x.var(0).mean() * torch.eye(d, dtype=x.dtype)
    for _ in range(max(1, iterations)):
        mass = resp.sum(0) + 1e-10
        weights = mass / n
        means = resp.T @ x / mass[:, None]
        diff = x[None] - means[:, None]  # K, N, d
        covariances = (resp.T[:, :, None] * diff).transpose(1, 2) @ diff / mass[:, None, None] + ridge
        scales = torch.linalg.cholesky(covariances)
        log_p = _component_log_probs(x, weights, means, scales)
        resp = (log_p - torch.logsumexp(log_p, 1, keepdim=True)).exp()
    return weights, means, scales
