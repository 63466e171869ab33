"""smapgan.intake.images: modes, orientation, limits, crops and masks, with clear errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from smapgan.intake import images as imageio
from smapgan.intake.images import ImageInputError


def png_bytes(image: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=kwargs.pop("format", "PNG"), **kwargs)
    return buf.getvalue()


def test_rgba_is_composited_on_white():
    image = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    image.putpixel((0, 0), (255, 0, 0, 255))
    rgb = imageio.load_image(png_bytes(image), 8)
    assert rgb.mode == "RGB"
    assert rgb.getpixel((0, 0)) == (255, 0, 0)
    assert rgb.getpixel((5, 5)) == (255, 255, 255)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Image.new("L", (10, 6), 128),
        lambda: Image.new("1", (10, 6), 1),
        lambda: Image.new("CMYK", (10, 6), (0, 0, 0, 0)),
        lambda: Image.new("P", (10, 6), 3),
        lambda: Image.new("LA", (10, 6), (10, 0)),
        lambda: Image.fromarray(np.full((6, 10), 65535, dtype=np.uint16)),
    ],
    ids=["L", "1", "CMYK", "P", "LA", "I;16"],
)
def test_every_mode_becomes_rgb_square(make):
    image = imageio.load_image(png_bytes(make()) if make().mode != "CMYK" else make(), 4)
    assert image.mode == "RGB" and image.size == (4, 4)


def test_sixteen_bit_is_scaled_not_clipped():
    image = Image.fromarray(np.full((4, 4), 32896, dtype=np.uint16))  # 32896 / 257 = 128
    assert imageio.to_rgb(image).getpixel((0, 0)) == (128, 128, 128)


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (20, 10), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 10, 10))  # white on the left half
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    opened = imageio.open_image(png_bytes(image, format="JPEG", exif=exif.tobytes()))
    assert opened.size == (10, 20)
    assert np.asarray(opened.convert("L"))[:8].mean() > 200  # the white half is now on top


def test_animated_takes_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    rgb = imageio.load_image(buf.getvalue(), 8)
    r, g, b = rgb.getpixel((4, 4))
    assert r > 200 and b < 50


def test_center_crop_then_resize():
    image = Image.new("RGB", (30, 10), (0, 0, 0))
    image.paste((255, 255, 255), (10, 0, 20, 10))  # the central square is white
    out = imageio.load_image(image, 5)
    assert out.size == (5, 5) and np.asarray(out).min() == 255


@pytest.mark.parametrize(
    "source, message",
    [
        (b"", "empty"),
        (b"not an image at all", "not an image"),
        ("/nonexistent/x.png", "does not exist"),
        (png_bytes(Image.new("RGB", (8, 8)))[:40], "could not be decoded|not a readable image|format"),
    ],
)
def test_bad_inputs_raise_image_input_error(source, message):
    with pytest.raises(ImageInputError, match=message):
        imageio.load_image(source, 8)


def test_limits_are_checked_before_decoding():
    data = png_bytes(Image.new("RGB", (300, 300)))
    with pytest.raises(ImageInputError, match="megapixels"):
        imageio.open_image(data, max_pixels=300 * 299)
    with pytest.raises(ImageInputError, match="MiB"):
        imageio.open_image(data, max_bytes=10)


def test_mask_rules():
    # Opaque mask: any non-black pixel is selected.
    rgb = Image.new("RGB", (8, 8), (0, 0, 0))
    rgb.putpixel((1, 2), (0, 3, 0))
    assert imageio.mask_pixels(rgb).sum() == 1
    # Brush layer: wherever it is not fully transparent, whatever the color (even black).
    layer = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    layer.putpixel((3, 3), (0, 0, 0, 40))
    assert imageio.mask_pixels(layer).sum() == 1
    # A mask of another size is resized: downscaling keeps any touched pixel.
    big = np.zeros((64, 64), dtype=bool)
    big[10, 20] = True
    mask = imageio.load_mask(png_bytes(Image.fromarray(big)), 8)
    assert mask.shape == (1, 1, 8, 8) and mask.sum() == 1 and mask[0, 0, 1, 2] == 1
    up = imageio.load_mask(png_bytes(Image.fromarray(np.eye(4, dtype=bool))), 8)
    assert up.sum() == 16


def test_tensor_round_trip_and_preview_inverse():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    tensor = imageio.image_to_tensor(image)
    assert tensor.shape == (1, 3, 16, 16) and tensor.min() >= -1 and tensor.max() <= 1
    assert imageio.tensor_to_image(tensor).tobytes() == image.tobytes()
    # What is painted on the (nearest-upscaled) preview maps back onto the same model pixels.
    assert imageio.load_image(imageio.preview(image, 64), 16).tobytes() == image.tobytes()
    from smapgan.cache import tensor_digest  # the one content key, images and stylemaps alike

    assert tensor_digest(tensor) == tensor_digest(tensor.clone())
    assert tensor_digest(tensor) != tensor_digest(torch.flip(tensor, [-1]))


def test_box_mask():
    mask = imageio.box_mask((0.25, 0.5, 0.75, 1.0), 8)
    assert mask[0, 0, 4:, 2:6].all() and mask.sum() == 16
    with pytest.raises(ImageInputError):
        imageio.box_mask((0.5, 0.5, 0.4, 0.9), 8)
