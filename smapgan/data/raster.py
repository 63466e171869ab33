"""Turn one emoji drawing (SVG or RGBA bitmap) into a training image: framed alike, on white.

Emoji sets pad their drawings differently (Twemoji fills its view box, Noto leaves a margin,
Fluent 3D has a shadow margin). A model learns faces, not margins, so every image is cropped to
the drawing's opaque bounding box and centred in a square where it fills :data:`FILL` of the side,
the fraction measured on the 64 px Noto PNGs the first bundled model was trained on.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

#: Share of the side the drawing's larger extent takes (Noto's 64 px PNGs: 60 of 64 pixels).
FILL = 0.94
#: Alpha at or below this counts as empty when measuring the drawing (anti-aliasing haze).
ALPHA_FLOOR = 8
#: SVGs are rasterized at this multiple of the output size, then reduced with Lanczos.
SUPERSAMPLE = 4


class RasterError(ValueError):
    """An SVG that cannot be rendered, or a drawing with nothing opaque in it."""


def render_svg(svg: str, pixels: int) -> Image.Image:
    """Rasterize ``svg`` to an RGBA image whose larger side is ``pixels``.

    resvg (through the ``resvg-py`` wheel) rather than CairoSVG: it is one self-contained wheel
    with no system library, and resvg is the renderer that passes most of the SVG test suite
    (gradients, masks and filters are common in Fluent and Noto).
    """
    import resvg_py  # optional dependency of the data command only (the `data` extra)

    try:
        png = resvg_py.svg_to_bytes(svg_string=svg, width=pixels, height=pixels)
    except (ValueError, RuntimeError) as exc:
        raise RasterError(f"cannot render SVG: {exc}") from exc
    with Image.open(io.BytesIO(bytes(png))) as img:
        return img.convert("RGBA")


def frame_on_white(image: Image.Image, size: int, fill: float = FILL) -> Image.Image:
    """Crop to the opaque drawing, centre it in a square where it fills ``fill``, flatten on white.

    Compositing happens before the resize so that edges never pick up the transparent colour.
    """
    rgba = image.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"))
    ys, xs = np.nonzero(alpha > ALPHA_FLOOR)
    if len(xs) == 0:
        raise RasterError("the drawing is fully transparent")
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    side = max(1, round(max(x1 - x0, y1 - y0) / fill))
    canvas = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    left = (side - (x1 - x0)) // 2
    top = (side - (y1 - y0)) // 2
    canvas.alpha_composite(rgba.crop((x0, y0, x1, y1)), (left, top))
    rgb = canvas.convert("RGB")
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.LANCZOS)
    return rgb
