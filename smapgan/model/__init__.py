"""Model I/O: the public StyleMapGAN model, the release's checkpoint converter and Hub access."""

from .stylemapgan import CONFIG_NAME, DIRECTIONS_NAME, WEIGHTS_NAME, ModelLoadError, StyleMapGAN

__all__ = ["CONFIG_NAME", "DIRECTIONS_NAME", "WEIGHTS_NAME", "ModelLoadError", "StyleMapGAN"]
