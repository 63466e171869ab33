"""Helpers shared by the reliability tests (issue 6): hostile files, a live app, the load/soak model.

Not a test module: ``tests/test_reliability_*.py`` import it.
"""

from __future__ import annotations

import contextlib
import io
import socket
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

EXAMPLES = Path(__file__).resolve().parent.parent / "smapgan" / "assets" / "examples"

# The configuration of the bundled 64 px emoji model, for a stand-in while it is not there yet.
SMALL_CONFIG = dict(
    size=64, latent_spatial_size=8, latent_channel_size=32, mapping_layer_num=4, small_generator=True,
    channel_base=2048, channel_max=64,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serving_model_dir(tmp: Path) -> Path:
    """The bundled default model when it is installed, else a random model of the same configuration."""
    import torch

    from smapgan import DEFAULT_MODEL, StyleMapGAN, StyleMapGANConfig

    if (DEFAULT_MODEL / "model.safetensors").is_file():
        return DEFAULT_MODEL
    folder = tmp / "small_model"
    if not (folder / "model.safetensors").is_file():
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = StyleMapGAN(StyleMapGANConfig(**SMALL_CONFIG), with_discriminator=False).eval()
            direction = torch.randn(32, 8, 8)
        model.add_direction("demo", direction * (8 / direction.norm()))
        model.save_pretrained(folder)
    return folder


@contextlib.contextmanager
def live_app(model_dir: Path, *extra: str) -> Iterator[Any]:
    """The app as ``python app.py --model DIR`` starts it (same limits), on a free loopback port."""
    from smapgan.app import launcher

    args = launcher.build_parser().parse_args(["--model", str(model_dir), "--port", str(free_port()), *extra])
    demo = launcher.launch(args, prevent_thread_lock=True, quiet=True)
    try:
        yield demo
    finally:
        demo.close()


def rss_kib(pid: int, field: str) -> int:
    """A process's ``VmRSS`` or ``VmHWM`` (its peak) in KiB, from ``/proc``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def serve_under_attack(good: Any, pid: int, attackers: list[Any], stop: Any, settle_s: float,
                       pause_s: float = 0.0) -> tuple[dict[str, float], list[str]]:
    """The combined-attack tests' measurement: ``attackers`` (loops until ``stop``) run in threads while the
    well-behaved client ``good`` reconstructs 20 examples, one every ``pause_s``, from ``settle_s`` after they
    started. Its figures (latencies without and under attack, the server's RSS) and the failed calls' texts."""
    import threading
    import time

    baseline = rss_kib(pid, "VmRSS")
    peak = [0]

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kib(pid, "VmRSS"))
            time.sleep(0.1)

    originals = [good.upload_file(p) for p in sorted(EXAMPLES.glob("*.png"))[:20]]
    idle = [good.call("reconstruct", good.args("reconstruct", original=o, mode="fast"))[2] for o in originals[-5:]]
    threads = [threading.Thread(target=f, daemon=True) for f in (*attackers, watch)]
    for thread in threads:
        thread.start()
    time.sleep(settle_s)  # the attacks are under way
    latencies, failures = [], []
    for original in originals:
        event, text, took = good.call("reconstruct", good.args("reconstruct", original=original, mode="fast"), timeout=120)
        latencies.append(took)
        if event != "complete":
            failures.append(text)
        time.sleep(pause_s)
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    high_water = rss_kib(pid, "VmHWM")
    figures = dict(good_edits=len(latencies), idle_p50_s=round(float(np.median(idle)), 2),
                   p50_s=round(float(np.percentile(latencies, 50)), 2), p95_s=round(float(np.percentile(latencies, 95)), 2),
                   peak_rss_mb=round(max(high_water, peak[0]) / 1024), baseline_rss_mb=round(baseline / 1024))
    return figures, failures


# --------------------------------------------------------------------------- hostile files


def _save(image: Image.Image, path: Path, **kwargs: Any) -> Path:
    image.save(path, **kwargs)
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def raw_png(width: int, height: int, bit_depth: int, color_type: int, rows: bytes) -> bytes:
    """A PNG written by hand (PIL cannot write 16-bit RGB nor a 30000x30000 bomb cheaply)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(rows, 9))
            + _png_chunk(b"IEND", b""))


def bomb_png(side: int = 30000) -> bytes:
    """A 1-bit ``side`` x ``side`` PNG of a few KB: 900 megapixels once decoded."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def many_scans_jpeg(side: int, repeats: int) -> bytes:
    """A flat ``side`` x ``side`` progressive JPEG whose last scan is repeated ``repeats`` more times
    (each repeat a few dozen bytes, each one more pass over every pixel when decoded)."""
    import re

    buf = io.BytesIO()
    Image.new("RGB", (side, side), (120, 60, 200)).save(buf, "JPEG", progressive=True, quality=90)
    data = buf.getvalue()
    last = data.rindex(b"\xff\xda")
    end = re.compile(rb"\xff[^\x00\xd0-\xd7]").search(data, last + 2 + struct.unpack(">H", data[last + 2 : last + 4])[0]).start()
    return data[:end] + data[last:end] * repeats + data[end:]


def many_chunks_png(side: int, chunks: int) -> bytes:
    """A flat ``side`` x ``side`` RGB PNG with ``chunks`` empty IDAT chunks before its pixels (12 bytes each)."""
    rows = b"".join(b"\x00" + b"\x80" * (side * 3) for _ in range(side))
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", b"") * chunks
            + _png_chunk(b"IDAT", zlib.compress(rows, 9)) + _png_chunk(b"IEND", b""))


def pattern(side: int = 48, seed: int = 0) -> np.ndarray:
    """An RGB test picture with no symmetry (so rotations and frame mix-ups change the result)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side]
    image = np.stack([x * 255 // side, y * 255 // side, (x * y) % 256], axis=-1).astype(np.uint8)
    image[: side // 3, : side // 4] = rng.integers(0, 256, 3)
    return image


@dataclass(frozen=True)
class Case:
    """A hostile upload: refused with a message matching ``error``, or used exactly like ``same_as``."""

    name: str
    path: Path
    error: str | None = None
    same_as: Path | None = None
    mask_same_as: Path | None = None
    """As a brush layer, when that differs from ``same_as`` (a used alpha channel selects by alpha)."""

    def as_mask(self) -> Path | None:
        return self.mask_same_as or self.same_as


def hostile_images(folder: Path) -> list[Case]:
    """Every kind of image upload a public app gets, each with what the app must do with it."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = pattern()
    base = Image.fromarray(rgb)
    cases: list[Case] = []

    def clean(name: str, image: Image.Image) -> Path:
        return _save(image.convert("RGB"), folder / f"{name}.expected.png")

    empty = folder / "empty.png"
    empty.write_bytes(b"")
    cases.append(Case("zero_bytes", empty, error=r"image 'empty\.png' is empty"))

    png = io.BytesIO()
    base.save(png, format="PNG")
    (folder / "truncated.png").write_bytes(png.getvalue()[: len(png.getvalue()) // 2])
    cases.append(Case("truncated_png", folder / "truncated.png", error=r"image 'truncated\.png' (could not be decoded|is not a readable image)"))

    jpeg = io.BytesIO()
    base.save(jpeg, format="JPEG", quality=90)
    (folder / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    cases.append(Case("truncated_jpeg", folder / "truncated.jpg", error=r"image 'truncated\.jpg' (could not be decoded|is not a readable image)"))

    (folder / "bomb.png").write_bytes(bomb_png())
    cases.append(Case("decompression_bomb", folder / "bomb.png", error=r"image 'bomb\.png' has too many pixels to decode; the limit is 40 megapixels"))
    (folder / "huge.png").write_bytes(bomb_png(7000))  # over smapgan's limit, under PIL's own
    cases.append(Case("over_pixel_limit", folder / "huge.png", error=r"image 'huge\.png' is 7000x7000 pixels; the limit is 40 megapixels"))

    cmyk = _save(base.convert("CMYK"), folder / "cmyk.jpg", quality=95)
    cases.append(Case("cmyk_jpeg", cmyk, same_as=clean("cmyk", Image.open(cmyk))))

    gray16 = (np.asarray(base.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    sixteen = _save(Image.fromarray(gray16), folder / "gray16.png")
    cases.append(Case("png_16bit_gray", sixteen, same_as=clean("gray16", base.convert("L"))))
    rgb16 = (rgb.astype(">u2") * 257).astype(">u2")
    rows = b"".join(b"\x00" + rgb16[r].tobytes() for r in range(rgb16.shape[0]))
    (folder / "rgb16.png").write_bytes(raw_png(rgb.shape[1], rgb.shape[0], 16, 2, rows))
    cases.append(Case("png_16bit_rgb", folder / "rgb16.png", same_as=clean("rgb16", base)))

    palette = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    cases.append(Case("palette", _save(palette, folder / "palette.png"), same_as=clean("palette", palette)))
    gray = base.convert("L")
    cases.append(Case("grayscale", _save(gray, folder / "gray.png"), same_as=clean("gray", gray)))

    rgba = base.convert("RGBA")
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:, : rgb.shape[1] // 2] = 60
    rgba.putalpha(Image.fromarray(alpha))
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    cases.append(Case("rgba", _save(rgba, folder / "rgba.png"), same_as=clean("rgba", Image.alpha_composite(white, rgba)),
                      mask_same_as=_save(Image.new("RGB", rgba.size, (255, 255, 255)), folder / "rgba.mask.png")))

    frames = [base, Image.fromarray(255 - rgb), Image.fromarray(rgb[::-1].copy())]
    gif = _save(frames[0], folder / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    cases.append(Case("animated_gif", gif, same_as=clean("animated", Image.open(gif))))  # Image.open: frame 0

    # Stored sideways with orientation 6 (show rotated 90 degrees clockwise): the app must show it upright.
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways = base.transpose(Image.Transpose.ROTATE_90)
    rotated = _save(sideways, folder / "exif_rotated.jpg", quality=95, exif=exif.tobytes())
    upright = Image.open(rotated).transpose(Image.Transpose.ROTATE_270)  # what a viewer shows, decoded by PIL
    cases.append(Case("exif_rotated_jpeg", rotated, same_as=clean("exif_rotated", upright)))

    text = folder / "notes.png"
    text.write_text("these are my notes, not a picture\n" * 20)
    cases.append(Case("text_named_png", text, error=r"image 'notes\.png' is not an image in a format this app can read"))

    svg = folder / "drawing.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><circle cx="32" cy="32" r="20"/></svg>')
    cases.append(Case("svg", svg, error=r"image 'drawing\.svg' is not an image in a format this app can read"))

    one = Image.new("RGB", (1, 1), (200, 40, 90))
    cases.append(Case("one_pixel", _save(one, folder / "one.png"), same_as=clean("one", Image.new("RGB", (64, 64), (200, 40, 90)))))
    return cases
