"""An image input as it is handed over (:class:`PictureSource`) and as an op sees it (:class:`Picture`).

:func:`load_picture` is the one place the first becomes the second: the app's widgets and the CLI
hand over files (paths or bytes) with their mask's sources, and ``ImageInput.load`` decodes them
inside ``Op.run``, the same for every caller (Python callers may also give PIL images or tensors).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..intake import images as imageio


@dataclass(frozen=True, eq=False)
class Picture:
    """An image handed to an op: model-size tensor in [-1,1], its brush mask, and a content key.

    ``mask`` is (1,1,S,S) in {0,1} or ``None`` when no mask was drawn or given;
    ``key`` identifies the pixels (the per-session stylemap cache uses it).
    """

    image: torch.Tensor
    mask: torch.Tensor | None
    key: str

    @property
    def has_mask(self) -> bool:
        """True when a mask was given and selects at least one pixel."""
        return self.mask is not None and bool(self.mask.any())

    def to(self, device: torch.device | str) -> "Picture":
        """This picture on ``device`` (itself when it is there): masks meet the model's pyramids there."""
        if self.image.device == torch.device(device):
            return self
        return Picture(self.image.to(device), None if self.mask is None else self.mask.to(device), self.key)


@dataclass(frozen=True)
class PictureSource:
    """An image input before it is decoded: what the app and the CLI give ``Op.run``.

    ``image``: a path, bytes, PIL image, array, (1,3,S,S) tensor or :class:`Picture`. Its mask is
    either ``mask`` (a mask file, bytes, image or tensor: any non-black or non-transparent pixel is
    selected) or ``layers``, brush layers drawn over the image (the app's editor; their union).
    """

    image: Any
    mask: Any = None
    layers: tuple[Any, ...] = ()


def load_picture(value: Any, size: int) -> Picture:
    """A :class:`Picture` of side ``size`` from a :class:`PictureSource` or a bare image (decoded here)."""
    source = value if isinstance(value, PictureSource) else PictureSource(value)
    mask = _mask(source, size)
    image = source.image
    if isinstance(image, Picture):
        return image if mask is None else Picture(image.image, mask, image.key)
    if isinstance(image, torch.Tensor):
        tensor = image if image.ndim == 4 else image[None]
        if tuple(tensor.shape[1:]) != (3, size, size):
            raise imageio.ImageInputError(f"an image tensor must be (1,3,{size},{size}), got {tuple(image.shape)}")
    else:
        tensor = imageio.image_to_tensor(imageio.load_image(image, size))
    return Picture(tensor, mask, imageio.tensor_hash(tensor))


def _mask(source: PictureSource, size: int) -> torch.Tensor | None:
    if source.layers:
        selected = imageio.layers_mask(source.layers, source.image, size)
        return None if selected is None else imageio.mask_to_tensor(selected)
    if source.mask is None:
        return None
    if isinstance(source.mask, torch.Tensor):
        m = source.mask.float()
        while m.ndim < 4:
            m = m[None]
        if m.shape[-2:] != (size, size):
            m = torch.nn.functional.interpolate(m, size=(size, size), mode="nearest")
        return (m > 0).float()
    return imageio.load_mask(source.mask, size)
