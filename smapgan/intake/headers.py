"""Read an image file's headers from its bytes, without Pillow and without decoding a pixel.

Pillow's ``Image.open`` is not a safe place to check an upload: for some containers it decodes
while opening (an ICO entry that is a PNG is opened, and for its size may be loaded, before
``open`` returns; ICNS likewise), and counting the frames of a TIFF or a GIF (``n_frames``) walks
the whole chain, each step re-reading from the start (80,000 chained 1x1 TIFF pages: 43 s).
``Image.MAX_IMAGE_PIXELS`` only looks at the first frame's declared size, and only once that is
already being opened.

So :func:`inspect` parses the headers of a small set of formats itself: every frame, page or
sub-image they declare, with the walk capped at ``max_frames`` (one step past it is a refusal,
whatever the chain's length) and each step O(1) apart from skipping data blocks.

Pixels are not the only cost of decoding. A progressive JPEG is decoded once per scan (a 36 MP
file with one tiny scan repeated 50,000 times took a minute of CPU for 1.4 MB), and Pillow reads a
PNG chunk by chunk (4 million empty IDAT chunks: 35 s). So the walk also counts a JPEG's scans
(``max_scans``) and a PNG's chunks or a JPEG's segments (``max_segments``), stopping one past the
cap, so that a file's decoding cost is bounded by its pixels before Pillow sees it. Everything else
is refused: a format that cannot be checked this way is not decoded at all. Accepted: PNG (and
APNG), JPEG (and MPO), GIF, WebP (and animated), BMP, TIFF (classic, not BigTIFF).

The caller (``smapgan.intake.images``) compares what is found with its limits, then hands the bytes to
Pillow restricted to the format found here, so that Pillow cannot pick another plugin.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from . import limits

ACCEPTED = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")


class HeaderError(ValueError):
    """The headers are malformed, truncated, or of a format we do not check (message for the user)."""

    def __init__(self, message: str, *, unsupported: bool = False) -> None:
        super().__init__(message)
        self.unsupported = unsupported


class OverLimit(HeaderError):
    """The file is well formed but over a cap on what makes decoding it expensive."""


class TooManyFrames(OverLimit):
    """The file declares (or chains) more frames/pages than allowed."""


@dataclass(frozen=True)
class Header:
    format: str
    """Pillow's name of the format (``Image.open(..., formats=[format])``)."""
    size: tuple[int, int]
    """Width and height of the first frame, as Pillow will report them."""
    frames: int
    """Frames, pages or sub-images declared (all walked, at most the cap)."""
    largest: tuple[int, int]
    """Width and height of the largest of them."""


def inspect(data: bytes, max_frames: int, *, max_scans: int = limits.MAX_JPEG_SCANS, max_segments: int = limits.MAX_SEGMENTS) -> Header:
    """The format and the size of every frame of ``data``; :class:`HeaderError` if it cannot be checked,
    :class:`OverLimit` past ``max_frames``, ``max_scans`` (JPEG) or ``max_segments`` (PNG chunks, JPEG segments)."""
    head = data[:16]
    try:
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            return _png(data, max_frames, max_segments)
        if head.startswith(b"\xff\xd8\xff"):
            header = _jpeg(data, max_frames)
            _jpeg_cost(data, max_scans, max_segments)
            return header
        if head[:6] in (b"GIF87a", b"GIF89a"):
            return _gif(data, max_frames)
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return _webp(data, max_frames)
        if head[:2] == b"BM":
            return _bmp(data)
        if head[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff(data, max_frames)
    except HeaderError:
        raise
    except (struct.error, IndexError, ValueError):  # ValueError: bytes.index found no next marker
        raise HeaderError("its header is truncated or malformed") from None
    raise HeaderError("not a format this app checks", unsupported=True)


class _Frames:
    def __init__(self, max_frames: int) -> None:
        self.max_frames = max_frames
        self.sizes: list[tuple[int, int]] = []

    def add(self, width: int, height: int) -> None:
        if len(self.sizes) >= self.max_frames:
            raise TooManyFrames(f"it has more than {self.max_frames} frames or pages")
        self.sizes.append((width, height))

    def header(self, fmt: str, size: tuple[int, int] | None = None) -> Header:
        if not self.sizes:
            raise HeaderError("it declares no image")
        largest = max(self.sizes, key=lambda s: s[0] * s[1])
        return Header(fmt, size or self.sizes[0], len(self.sizes), largest)


def _png(data: bytes, max_frames: int, max_segments: int) -> Header:
    if data[12:16] != b"IHDR":
        raise HeaderError("its header is truncated or malformed")
    width, height = struct.unpack(">II", data[16:24])
    frames = 1
    pos = 8
    # acTL (the APNG frame count) precedes the first IDAT; every APNG frame lies within the canvas.
    # Every chunk is counted (Pillow reads them one by one: millions of empty IDATs cost seconds).
    for _ in range(max_segments + 1):
        if pos + 8 > len(data):
            break  # a file cut short: Pillow reports it when decoding
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"acTL":
            frames = struct.unpack(">I", data[pos + 8 : pos + 12])[0]
        if kind == b"IEND":
            break
        pos += 12 + length
    else:
        raise OverLimit(f"it has more than {max_segments} PNG chunks")
    if frames > max_frames:
        raise TooManyFrames(f"it has {frames} frames; the limit is {max_frames}")
    return Header("PNG", (width, height), max(frames, 1), (width, height))


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_segments(data: bytes, start: int) -> tuple[tuple[int, int], int | None]:
    """(width, height) from the SOF of the JPEG at ``start``, and the offset of its MPF block, if any."""
    pos = start + 2
    mpf = None
    for _ in range(4096):
        if data[pos] != 0xFF:  # stray bytes between segments: skip to the next marker, as Pillow does
            pos = data.index(b"\xff", pos)
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2:
            raise HeaderError("its header is truncated or malformed")
        if marker == 0xE2 and data[pos + 4 : pos + 8] == b"MPF\x00" and mpf is None:
            mpf = pos + 8
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return (width, height), mpf
        if marker in (0xDA, 0xD9):  # scan or end before any frame header
            break
        pos += 2 + length
    raise HeaderError("it has no frame header")


_NEXT_MARKER = re.compile(rb"\xff+[^\x00\xd0-\xd7\xff]")
"""The end of a scan's entropy-coded data: a marker (0xFF then neither a stuffed 0 nor a restart)."""


def _jpeg_cost(data: bytes, max_scans: int, max_segments: int) -> None:
    """Count the first image's scans and segments up to its end, refusing one past either cap."""
    pos, scans = 2, 0
    for _ in range(max_segments + 1):
        if pos + 4 > len(data):
            return  # cut short: Pillow decodes what there is, or reports it
        if data[pos] != 0xFF:
            found = _NEXT_MARKER.search(data, pos)
            if found is None:
                return
            pos = found.end() - 2
            continue
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker == 0xD9:  # end of image
            return
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + length
        if marker == 0xDA:  # a scan: its entropy-coded data runs to the next marker
            scans += 1
            if scans > max_scans:
                raise OverLimit(f"it has more than {max_scans} JPEG scans (progressive passes)")
            found = _NEXT_MARKER.search(data, pos)
            if found is None:
                return
            pos = found.end() - 2
    raise OverLimit(f"it has more than {max_segments} JPEG segments")


def _jpeg(data: bytes, max_frames: int) -> Header:
    frames = _Frames(max_frames)
    size, mpf = _jpeg_segments(data, 0)
    frames.add(*size)
    if mpf is not None:  # MPO: more JPEGs after the first, listed in the MP index (offsets from `mpf`)
        order = "<" if data[mpf : mpf + 2] == b"II" else ">"
        (ifd,) = struct.unpack(order + "I", data[mpf + 4 : mpf + 8])
        (count,) = struct.unpack(order + "H", data[mpf + ifd : mpf + ifd + 2])
        entries = None
        for i in range(min(count, 64)):
            at = mpf + ifd + 2 + 12 * i
            tag, _type, n, value = struct.unpack(order + "HHII", data[at : at + 12])
            if tag == 0xB002:
                entries = (n // 16, value)
        if entries is not None:
            n, offset = entries
            if n > max_frames:
                raise TooManyFrames(f"it has {n} images; the limit is {max_frames}")
            for i in range(n):
                at = mpf + offset + 16 * i
                _attr, _size, where = struct.unpack(order + "III", data[at : at + 12])
                if where == 0:  # the first image, already checked
                    continue
                if data[mpf + where : mpf + where + 2] != b"\xff\xd8":
                    raise HeaderError("its multi-picture index points outside the file")
                frames.add(*_jpeg_segments(data, mpf + where)[0])
    return frames.header("JPEG")


def _gif_blocks(data: bytes, pos: int) -> int:
    """Skip a chain of data sub-blocks; the position after its terminator."""
    while pos < len(data):  # a file cut inside its last frame: Pillow reports it when decoding
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos
    return pos


def _gif(data: bytes, max_frames: int) -> Header:
    width, height, flags = struct.unpack("<HHB", data[6:11])
    pos = 13 + ((3 << ((flags & 7) + 1)) if flags & 0x80 else 0)
    frames = _Frames(max_frames)
    canvas = (width, height)
    while pos < len(data):
        block = data[pos]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension: label, then sub-blocks
            pos = _gif_blocks(data, pos + 2)
        elif block == 0x2C:  # image: Pillow grows the canvas to hold a frame that sticks out
            left, top, w, h, iflags = struct.unpack("<HHHHB", data[pos + 1 : pos + 10])
            canvas = (max(canvas[0], left + w), max(canvas[1], top + h))
            frames.add(*canvas)
            pos += 10 + ((3 << ((iflags & 7) + 1)) if iflags & 0x80 else 0)
            pos = _gif_blocks(data, pos + 1)  # after the LZW minimum code size
        else:
            break  # garbage after the frames: Pillow stops there too
    header = frames.header("GIF")
    first = header.size
    return Header("GIF", (max(width, first[0]), max(height, first[1])), header.frames, header.largest)


def _webp(data: bytes, max_frames: int) -> Header:
    pos = 12
    frames = _Frames(max_frames)
    canvas = None
    for _ in range(max_frames + 64):
        if pos + 8 > len(data):
            break
        kind, length = struct.unpack("<4sI", data[pos : pos + 8])
        body = pos + 8
        if kind == b"VP8X":
            w = int.from_bytes(data[body + 4 : body + 7], "little") + 1
            h = int.from_bytes(data[body + 7 : body + 10], "little") + 1
            canvas = (w, h)
        elif kind == b"ANMF":
            w = int.from_bytes(data[body + 6 : body + 9], "little") + 1
            h = int.from_bytes(data[body + 9 : body + 12], "little") + 1
            frames.add(w, h)
        elif kind == b"VP8 " and canvas is None:
            if data[body + 3 : body + 6] != b"\x9d\x01\x2a":
                raise HeaderError("its header is truncated or malformed")
            w, h = struct.unpack("<HH", data[body + 6 : body + 10])
            frames.add(w & 0x3FFF, h & 0x3FFF)
        elif kind == b"VP8L" and canvas is None:
            if data[body] != 0x2F:
                raise HeaderError("its header is truncated or malformed")
            (bits,) = struct.unpack("<I", data[body + 1 : body + 5])
            frames.add((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
        pos = body + length + (length & 1)
    else:
        raise TooManyFrames(f"it has more than {max_frames} frames")
    if canvas is not None:  # every frame is decoded into a canvas of this size
        largest = max([canvas, *frames.sizes], key=lambda s: s[0] * s[1])
        return Header("WEBP", canvas, max(1, len(frames.sizes)), largest)
    return frames.header("WEBP")


def _bmp(data: bytes) -> Header:
    (dib,) = struct.unpack("<I", data[14:18])
    if dib == 12:
        w, h = struct.unpack("<HH", data[18:22])
    elif dib >= 40:
        w, h = struct.unpack("<ii", data[18:26])
    else:
        raise HeaderError("its header is truncated or malformed")
    w, h = abs(w), abs(h)
    return Header("BMP", (w, h), 1, (w, h))


def _tiff(data: bytes, max_frames: int) -> Header:
    order = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack(order + "I", data[4:8])
    frames = _Frames(max_frames)
    seen: set[int] = set()
    types = {3: ("H", 2), 4: ("I", 4)}
    while offset:
        if offset in seen:
            raise HeaderError("its pages form a loop")
        seen.add(offset)
        (count,) = struct.unpack(order + "H", data[offset : offset + 2])
        width = height = None
        for i in range(count):
            at = offset + 2 + 12 * i
            tag, kind, n = struct.unpack(order + "HHI", data[at : at + 8])
            if tag in (256, 257) and kind in types and n == 1:
                code, _ = types[kind]
                (value,) = struct.unpack(order + code, data[at + 8 : at + 8 + struct.calcsize(code)])
                if tag == 256:
                    width = value
                else:
                    height = value
        if width is None or height is None:
            raise HeaderError("a page has no size")
        frames.add(width, height)  # past the cap: refused here, however long the chain
        (offset,) = struct.unpack(order + "I", data[offset + 2 + 12 * count : offset + 6 + 12 * count])
    return frames.header("TIFF")
