"""A real browser paints on the local-transplant canvas; the edit stays near the stroke."""

from __future__ import annotations

import dataclasses
import io
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from smapgan import StyleMapGANConfig
from smapgan.intake import images as imageio
from smapgan.ops import OpContext, Registry, discover

from tests.browser import CHROMIUM, CHROMIUM_ARGS, MARKS
from tests.models import random_model
from tests.reliability import free_port

EXAMPLES = Path(__file__).resolve().parent.parent / "smapgan" / "assets" / "examples"

pytestmark = MARKS


@pytest.fixture(scope="module")
def app(one_torch_thread):
    """The app with only local_transplant, its example without a mask, and a spy on the mask it receives.

    The model is random, 64 px with an 8x8 stylemap (8 px cells): fine enough for locality to be
    measurable, and still fast.
    """
    from smapgan.app import build_demo

    config = StyleMapGANConfig(
        size=64, latent_spatial_size=8, latent_channel_size=8, mapping_layer_num=2, channel_base=256, channel_max=32
    )
    model = random_model(config)
    op = discover(paths=[])["local_transplant"]
    seen: list[torch.Tensor] = []

    def spy(ctx, original, references, **kwargs):
        seen.extend(ref.mask.clone() for ref in references)
        return op.fn(ctx, original, references, **kwargs)

    example = {"original": "neutral_face.png", "references": ["heart_eyes.png"], "frames": 0}
    registry = Registry({op.name: dataclasses.replace(op, fn=spy, examples=(example,))})
    demo = build_demo(model, registry=registry)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield demo.local_url, model, seen
    finally:
        demo.close()


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    padded = np.pad(mask, radius)
    out = np.zeros_like(mask)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out |= padded[dy : dy + mask.shape[0], dx : dx + mask.shape[1]]
    return out


def test_brush_stroke_edits_only_near_the_stroke(app):
    from playwright.sync_api import sync_playwright

    url, model, seen = app
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            # The editor fetches its background (the example reference) after the page loads and
            # resets its layers when it arrives: a stroke drawn before then is lost. Wait until the
            # example images have arrived (none for 2 s after at least one), then for the drawing.
            images: list[str] = []
            page.on("response", lambda r: images.append(r.url)
                    if (r.headers.get("content-type") or "").startswith("image/") else None)
            page.goto(url, wait_until="load")
            canvas = page.locator("#local_transplant-references_1 canvas").first
            canvas.wait_for(state="visible", timeout=60_000)
            deadline, seen_count, quiet_since = time.monotonic() + 60, -1, time.monotonic()
            while time.monotonic() < deadline:
                if len(images) != seen_count:
                    seen_count, quiet_since = len(images), time.monotonic()
                elif seen_count > 0 and time.monotonic() - quiet_since > 2:
                    break
                page.wait_for_timeout(200)
            page.wait_for_timeout(1000)
            box = canvas.bounding_box()
            cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            # A horizontal stroke a bit above the canvas center (over the left eye and the bridge).
            y = cy - 45
            page.mouse.move(cx - 60, y)
            page.mouse.down()
            for i in range(1, 13):
                page.mouse.move(cx - 60 + 5 * i, y, steps=2)
            page.mouse.up()
            page.wait_for_timeout(500)
            page.locator("#local_transplant-run").click()
            # The result is shown in the before/after slider, upscaled by a whole factor (nearest).
            result = page.locator("#local_transplant-image-compare img").last
            result.wait_for(state="visible", timeout=60_000)
            body = page.request.get(result.get_attribute("src")).body()
        finally:
            browser.close()

    assert len(seen) == 1, "the op ran once with one reference"
    mask = seen[0][0, 0].numpy() > 0
    assert 0 < mask.mean() < 0.3, f"the stroke selected {mask.mean():.0%} of the image"
    ys, xs = np.nonzero(mask)
    # Where the stroke was drawn: left of center, above the middle (the canvas shows the image centered).
    assert xs.mean() / mask.shape[1] < 0.5 and ys.mean() / mask.shape[0] < 0.5

    out = np.asarray(Image.open(io.BytesIO(body)).convert("RGB")).astype(int)
    factor = out.shape[0] // model.config.size
    out = out[::factor, ::factor]  # back to the model's pixels
    ctx = OpContext(model)
    neutral = ctx.encode(ctx.picture(EXAMPLES / "neutral_face.png"))
    recon = np.asarray(imageio.tensor_to_image(ctx.render(neutral, base=neutral)))
    diff = np.abs(out - recon.astype(int)).max(axis=2)
    assert diff.max() > 10, "the edit changed nothing"
    # Random weights make every edit slightly global (LayerNorm normalizes over the whole feature map,
    # and each 3x3 conv at a coarse level reaches one more cell), so measure how the change decays with
    # the distance, in stylemap cells, from the cells the stroke touched.
    cell = model.config.size // model.config.latent_spatial_size
    touched = mask.reshape(mask.shape[0] // cell, cell, -1, cell).any(axis=(1, 3))

    def ring(k: int) -> np.ndarray:
        return dilate(touched, k).repeat(cell, 0).repeat(cell, 1)

    at, far = ring(0), ~ring(2)
    mean_at, mean_far = diff[at].mean(), diff[far].mean()
    print(
        f"touched cells: {at.mean():.0%} of the image, mean change {mean_at:.1f}/255; "
        f">= 2 cells away: {far.mean():.0%} of the image, mean {mean_far:.1f}, max {diff[far].max()}"
    )
    assert far.mean() > 0.25, "the stroke should leave most of the image far from it"
    assert mean_at >= 4 * mean_far
    assert diff[far].max() < 0.3 * 255 / 2  # no strong change (0.3 in [-1, 1] units) far from the stroke
