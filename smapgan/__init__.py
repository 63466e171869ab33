"""smapgan: the StyleMapGAN toolkit (networks, editing primitives, Hub I/O)."""

from .latent import editing
from .networks.config import StyleMapGANConfig
from .defaults import DEFAULT_MODEL
from .model import StyleMapGAN
from .latent import invert  # noqa: E402  (smapgan.latent.invert.refine: per-image refinement)

__version__ = "0.1.0"

__all__ = ["DEFAULT_MODEL", "StyleMapGAN", "StyleMapGANConfig", "editing", "invert", "__version__"]
