"""smapgan: the StyleMapGAN toolkit (networks, editing primitives, Hub I/O)."""

from . import editing
from .config import StyleMapGANConfig
from .defaults import DEFAULT_MODEL
from .model import StyleMapGAN
from . import invert  # noqa: E402  (smapgan.invert.refine: per-image refinement)

__version__ = "0.1.0"

__all__ = ["DEFAULT_MODEL", "StyleMapGAN", "StyleMapGANConfig", "editing", "invert", "__version__"]
