"""Header checks before decoding (issue 13, rows B and C): tiny hostile files crafted here.

Every frame, page and sub-image is checked from the file's own headers; a format that cannot be
checked that way is refused; a long chain of pages is refused after ``MAX_FRAMES`` steps.
"""

from __future__ import annotations

import io
import struct
import time

import numpy as np
import pytest
from PIL import Image

from smapgan.intake import headers
from smapgan.intake import images as imageio
from smapgan.intake import limits
from tests.reliability import _png_chunk, many_chunks_png, many_scans_jpeg


def png_header(width: int, height: int, extra: bytes = b"") -> bytes:
    """A PNG with a valid IHDR and no pixels worth decoding (the check must not need them)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + extra + _png_chunk(b"IDAT", b"") + _png_chunk(b"IEND", b"")


def ico_pointing_at(png: bytes) -> bytes:
    entry = struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png), 22)
    return struct.pack("<HHH", 0, 1, 1) + entry + png


def tiff_pages(count: int, side: int = 1, loop: bool = False) -> bytes:
    """``count`` chained bilevel pages of side x side, all sharing one strip of pixels."""
    tags = 6
    ifd = 2 + 12 * tags + 4
    out = bytearray(b"II*\x00" + struct.pack("<I", 8))
    strip = 8 + count * ifd
    for i in range(count):
        here = len(out)
        last = i == count - 1
        following = 8 if (loop and last) else 0 if last else here + ifd
        out += struct.pack("<H", tags)
        for tag, value in ((256, side), (257, side), (262, 1), (273, strip), (278, side), (279, side * ((side + 7) // 8))):
            out += struct.pack("<HHII", tag, 4, 1, value)
        out += struct.pack("<I", following)
    return bytes(out) + b"\x00" * (side * ((side + 7) // 8))


def saved(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def refused(data: bytes, pattern: str) -> float:
    start = time.perf_counter()
    with pytest.raises(imageio.ImageInputError, match=pattern):
        imageio.open_image(data)
    return time.perf_counter() - start


SMALL = Image.fromarray(np.arange(48 * 40 * 3, dtype=np.uint8).reshape(40, 48, 3))


@pytest.mark.parametrize(
    "fmt, kwargs",
    [("PNG", {}), ("JPEG", {}), ("GIF", {}), ("WEBP", {}), ("WEBP", {"lossless": True}), ("BMP", {}), ("TIFF", {}),
     ("TIFF", {"compression": "tiff_lzw"})],
)
def test_accepted_formats_read_like_pillow(fmt, kwargs):
    data = saved(SMALL, fmt, **kwargs)
    header = headers.inspect(data, limits.MAX_FRAMES)
    assert header.format == fmt and header.size == Image.open(io.BytesIO(data)).size == (48, 40)
    assert imageio.open_image(data).size == (48, 40)


def test_animations_and_multipage_files_are_counted_and_read_at_frame_zero():
    frames = [SMALL, Image.fromarray(255 - np.asarray(SMALL)), SMALL.transpose(Image.Transpose.FLIP_TOP_BOTTOM)]
    for fmt in ("GIF", "WEBP", "TIFF", "PNG", "MPO"):
        data = saved(frames[0], fmt, save_all=True, append_images=frames[1:])
        header = headers.inspect(data, limits.MAX_FRAMES)
        assert header.frames == 3, fmt
        assert imageio.open_image(data).size == (48, 40)


def test_ico_pointing_at_a_huge_png_is_refused_unopened():
    """Row C: Pillow would open (and size) the 12000x12000 PNG inside the ICO; we refuse ICO outright."""
    took = refused(ico_pointing_at(png_header(12000, 12000)), "not an image in a format this app can read")
    assert took < 0.1


def test_other_formats_are_refused():
    for data in (b"icns" + b"\x00" * 64, saved(SMALL, "PPM"), saved(SMALL, "TGA"), b"II+\x00" + b"\x00" * 16):
        refused(data, "not an image in a format this app can read")


def test_a_long_tiff_chain_is_refused_after_the_cap_quickly():
    """Row B: 80,000 chained 1x1 pages (6 MB) are refused after MAX_FRAMES steps, not walked."""
    data = tiff_pages(80_000)
    took = refused(data, f"more than {limits.MAX_FRAMES} frames or pages")
    assert took < 0.2
    assert imageio.open_image(tiff_pages(3)).size == (1, 1)


def test_a_looping_tiff_chain_is_refused():
    refused(tiff_pages(3, loop=True), "its pages form a loop")


def test_a_huge_page_behind_a_small_first_page_is_refused():
    pages = bytearray(tiff_pages(2))
    # The second page's width and height (its entries sit after the header and the first IFD).
    second = 8 + 2 + 12 * 6 + 4
    pages[second + 2 + 8 : second + 2 + 12] = struct.pack("<I", 9000)
    pages[second + 14 + 8 : second + 14 + 12] = struct.pack("<I", 9000)
    refused(bytes(pages), r"\(a frame of it\) is 9000x9000 pixels; the limit is 40 megapixels")


def test_gif_with_too_many_frames_or_a_huge_frame_is_refused():
    frames = [Image.new("L", (2, 2), (i * 3) % 256) for i in range(limits.MAX_FRAMES + 5)]
    data = saved(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=10, disposal=2)
    refused(data, "more than 64 frames")
    small = bytearray(saved(Image.new("P", (2, 2)), "GIF"))
    at = small.index(b"\x2c")  # the image descriptor: its width and height grow Pillow's canvas
    small[at + 5 : at + 9] = struct.pack("<HH", 9000, 9000)
    refused(bytes(small), "is 9000x9000 pixels")


def test_apng_frame_count_and_webp_canvas_are_checked():
    actl = _png_chunk(b"acTL", struct.pack(">II", 100_000, 0))
    refused(png_header(8, 8, actl), "100000 frames; the limit is 64")
    webp = bytearray(saved(SMALL, "WEBP", save_all=True, append_images=[Image.new("RGB", (48, 40))]))
    at = webp.index(b"VP8X") + 8
    webp[at + 4 : at + 10] = (10000 - 1).to_bytes(3, "little") * 2
    refused(bytes(webp), "is 10000x10000 pixels")


def test_decoding_cost_is_counted_before_decoding():
    """Issue 29 row 4-5: a JPEG's scans and a PNG's chunks are counted from the headers, one past the cap."""
    assert headers.inspect(many_scans_jpeg(64, 0), limits.MAX_FRAMES).size == (64, 64)  # 10 scans: libjpeg's default
    at_cap = many_scans_jpeg(64, limits.MAX_JPEG_SCANS - 10)
    assert imageio.open_image(at_cap).size == (64, 64)
    took = refused(many_scans_jpeg(64, 50_000), f"more than {limits.MAX_JPEG_SCANS} JPEG scans")
    assert took < 0.2
    assert imageio.open_image(many_chunks_png(64, limits.MAX_SEGMENTS - 4)).size == (64, 64)
    took = refused(many_chunks_png(64, 1_000_000), f"more than {limits.MAX_SEGMENTS} PNG chunks")
    assert took < 0.2
    segments = saved(SMALL, "JPEG")
    sos = segments.index(b"\xff\xda")
    segments = segments[:sos] + b"\xff\xfe\x00\x02" * (limits.MAX_SEGMENTS + 1) + segments[sos:]  # empty comments
    refused(segments, f"more than {limits.MAX_SEGMENTS} JPEG segments")


def test_mpo_second_image_is_checked():
    data = bytearray(saved(SMALL, "MPO", save_all=True, append_images=[SMALL.resize((8, 8))]))
    sof = data.rindex(b"\xff\xc0")  # the second image's frame header
    data[sof + 5 : sof + 9] = struct.pack(">HH", 9000, 9000)
    refused(bytes(data), r"\(a frame of it\) is 9000x9000 pixels")


def test_jpeg_and_bmp_sizes_come_from_the_header():
    jpeg = bytearray(saved(SMALL, "JPEG"))
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", 7000, 7000)
    refused(bytes(jpeg), "is 7000x7000 pixels")
    bmp = bytearray(saved(SMALL, "BMP"))
    bmp[18:26] = struct.pack("<ii", 20000, -20000)
    refused(bytes(bmp), "has too many pixels to decode|is 20000x20000 pixels")


def test_truncated_headers_are_a_clear_error():
    for data in (b"\x89PNG\r\n\x1a\n\x00", b"\xff\xd8\xff\xe0\x00", b"GIF89a\x01", b"II*\x00\x08\x00\x00\x00"):
        refused(data, r"is not an image in a format this app can read \((its header|it has no)")


def test_a_request_budget_bounds_the_pixels_decoded():
    data = saved(Image.new("RGB", (1000, 1000)), "PNG")
    with limits.pixel_budget(2_500_000):
        imageio.open_image(data)
        imageio.open_image(data)
        with pytest.raises(limits.LimitError, match="decoding budget"):
            imageio.open_image(data)
    imageio.open_image(data)  # outside a request: no budget


def test_lenient_where_pillow_is():
    gif = saved(SMALL.convert("P"), "GIF")
    assert headers.inspect(gif[:-1], limits.MAX_FRAMES).size == (48, 40)  # no trailer
    jpeg = saved(SMALL, "JPEG")
    padded = jpeg[:2] + b"\xff\xe0\x00\x04ab" + b"\x00\x00" + jpeg[2:]  # stray bytes between segments
    assert headers.inspect(padded, limits.MAX_FRAMES).size == (48, 40)


def test_mutated_files_are_read_or_refused_clearly_and_quickly():
    """300 random corruptions of each accepted format: a usable image or an ImageInputError, never
    another exception, each in well under a second."""
    rng = np.random.default_rng(13)
    frames = [SMALL, SMALL.transpose(Image.Transpose.FLIP_TOP_BOTTOM)]
    sources = [saved(SMALL, f) for f in ("PNG", "JPEG", "BMP", "WEBP")]
    sources += [saved(frames[0], f, save_all=True, append_images=frames[1:]) for f in ("GIF", "TIFF", "MPO", "WEBP")]
    slowest = 0.0
    for data in sources:
        for _ in range(300):
            mutated = bytearray(data)
            for at in rng.integers(0, min(len(data), 512), size=int(rng.integers(1, 4))):
                mutated[at] = int(rng.integers(0, 256))
            start = time.perf_counter()
            try:
                imageio.open_image(bytes(mutated))
            except imageio.ImageInputError:
                pass
            slowest = max(slowest, time.perf_counter() - start)
    assert slowest < 0.5
