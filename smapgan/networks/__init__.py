"""The StyleMapGAN networks, in the release's state-dict layout."""

from .decoder import Decoder, StyledConv, StyledResBlock
from .discriminator import Discriminator
from .encoder import Encoder
from .generator import Generator

__all__ = ["Decoder", "Discriminator", "Encoder", "Generator", "StyledConv", "StyledResBlock"]
