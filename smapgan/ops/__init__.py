"""Editing ops as plugins: the spec types, the op context, and discovery.

Write an op as one file with a function decorated by :func:`op` (a generator
function streams its outputs: :meth:`Op.stream`, :func:`growing`); put it in the
repository's ``ops/`` folder, in a folder listed in ``SMAPGAN_OPS_PATH``, or
expose it through the ``smapgan.ops`` entry-point group of a package.
:func:`discover` finds them all; the app, the API and ``smapgan edit`` are built
from the registry it returns.
"""

from ..render import Encoded
from .context import OpContext, StylemapCache
from .picture import Picture, PictureSource
from .registry import ENTRY_POINT_GROUP, PATH_ENV, PluginError, Registry, discover
from .spec import (
    BoxInput,
    ChoiceInput,
    FramesOutput,
    ImageInput,
    ImageOutput,
    Input,
    NumberInput,
    NumbersOutput,
    Op,
    OpError,
    OpSpecError,
    Output,
    PointsInput,
    SliderInput,
    growing,
    op,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "PATH_ENV",
    "BoxInput",
    "ChoiceInput",
    "Encoded",
    "FramesOutput",
    "ImageInput",
    "ImageOutput",
    "Input",
    "NumberInput",
    "NumbersOutput",
    "Op",
    "OpContext",
    "OpError",
    "OpSpecError",
    "Output",
    "Picture",
    "PictureSource",
    "PluginError",
    "PointsInput",
    "Registry",
    "SliderInput",
    "StylemapCache",
    "discover",
    "growing",
    "op",
]
