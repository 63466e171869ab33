"""In Chromium (issue 15): the before/after view shows the edit while its frames are still rendering.

lerp is held before its last frame until the test has seen, in the page, the result in the
before/after slider with Run still disabled (the run not over), and some frames in the gallery;
then the run ends with every frame and the GIF. No fixed sleeps: a loaded machine only slows it.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from smapgan import StyleMapGANConfig
from smapgan.ops import Registry, discover

from tests.browser import CHROMIUM, CHROMIUM_ARGS, MARKS
from tests.models import random_model
from tests.reliability import free_port

EXAMPLES = Path(__file__).resolve().parent.parent / "smapgan" / "assets" / "examples"
LONG = 120_000  # ms
FRAMES = 8

pytestmark = MARKS


@pytest.fixture(scope="module")
def app(one_torch_thread):
    """lerp on a small random model, prefilled with its example, held before its last frame."""
    from smapgan.app import build_demo

    config = StyleMapGANConfig(
        size=64, latent_spatial_size=8, latent_channel_size=8, mapping_layer_num=2, channel_base=256, channel_max=32
    )
    model = random_model(config)
    lerp = discover(paths=[])["lerp"]
    seen = threading.Event()
    released: list[bool] = []

    def held_lerp(ctx, frames, **kwargs):
        for part in lerp.fn(ctx, frames=frames, **kwargs):
            if len(part.get("animation", ())) == frames - 1:
                released.append(seen.wait(60))
            yield part

    example = {"first": "neutral_face.png", "second": "heart_eyes.png", "frames": FRAMES, "position": 0.5}
    registry = Registry({"lerp": dataclasses.replace(lerp, fn=held_lerp, examples=(example,))})
    demo = build_demo(model, registry=registry)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield demo.local_url, seen, released
    finally:
        demo.close()


def test_the_view_shows_the_edit_before_the_frames_are_done(app):
    from playwright.sync_api import sync_playwright

    url, seen, released = app
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(url, wait_until="load")
            page.locator("#lerp-first img").first.wait_for(state="visible", timeout=LONG)
            page.locator("#lerp-run").click()
            # The result in the slider and the first frames in the gallery, the run still going.
            page.wait_for_function(
                """() => document.querySelectorAll('#lerp-image-compare img').length > 0
                   && document.querySelectorAll('#lerp-animation img').length > 0""",
                timeout=LONG,
            )
            running = page.locator("#lerp-run").is_disabled()
            shown = page.locator("#lerp-animation img").count()
            seen.set()
            page.wait_for_function(
                "n => document.querySelectorAll('#lerp-animation img').length === n"
                " && !document.getElementById('lerp-run').disabled", arg=FRAMES, timeout=LONG,
            )
            status = page.locator("#lerp-status").inner_text()
            gif = page.locator("#lerp-animation-gif img").count()
        finally:
            seen.set()  # never leave the op held
            browser.close()
    assert released == [True], "the last frame was rendered before the page showed the edit"
    assert running and 0 < shown < FRAMES, (running, shown)
    assert "Done" in status and gif == 1
