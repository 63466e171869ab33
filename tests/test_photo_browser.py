"""Your own photo in the app, in Chromium: upload the astronaut, see the aligned crop, run a local
transplant, see and download the result put back into the photo, switch model (each shows its own
examples), run again.

The face model is a 256 px model with random weights (narrow channels, so that a run takes
seconds here) whose config says ``alignment: ffhq``, with two Local transplant examples of its own,
served through the loopback Hub double next to the bundled model. Set ``SMAPGAN_SCREENSHOTS=DIR``
to keep the screenshots.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests import browser
from tests.browser import CHROMIUM, CHROMIUM_ARGS, MARKS
from tests.models import random_model
from tests.reliability import free_port
from tests.test_app_person import editor_ready, open_tab, run, stroke, upload

pytestmark = MARKS
skimage_data = pytest.importorskip("skimage.data")
pytest.importorskip("dlib")
FACES = "smapgan-tester/faces256"
LONG = 180_000


@pytest.fixture
def photos(tmp_path) -> dict[str, Path]:
    astronaut = Image.fromarray(skimage_data.astronaut())
    paths = {"astronaut": tmp_path / "astronaut.png", "mirrored": tmp_path / "mirrored.png"}
    astronaut.save(paths["astronaut"])
    astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(paths["mirrored"])
    return paths


@pytest.fixture
def url(hub, tmp_path, one_torch_thread):
    from smapgan import StyleMapGANConfig
    from smapgan.app import build_demo
    from smapgan.app.models import ModelChoices
    from smapgan.model.hub import push_folder
    from smapgan.ops import discover

    config = StyleMapGANConfig(size=256, latent_spatial_size=8, latent_channel_size=32, channel_base=1024,
                               channel_max=32, alignment="ffhq")
    random_model(config).save_pretrained(tmp_path / "faces")
    examples = tmp_path / "faces" / "examples"
    examples.mkdir()
    astronaut = Image.fromarray(skimage_data.astronaut())
    astronaut.crop((140, 20, 340, 220)).save(examples / "face.png")
    astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT).crop((170, 20, 370, 220)).save(examples / "mirrored.png")
    (examples / "examples.json").write_text(json.dumps({"local_transplant": [
        {"original": "face.png", "references": ["mirrored.png"]},
        {"original": "mirrored.png", "references": ["face.png"]},
    ]}))
    push_folder(tmp_path / "faces", FACES)
    demo = build_demo(ModelChoices([FACES, None], device="cpu"), registry=discover(paths=[]))
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield demo.local_url
    finally:
        demo.close()


@pytest.fixture
def page(url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1300}, accept_downloads=True)
        page.goto(url, wait_until="load")
        yield page
        browser.close()


def shot(page, name: str, folder: Path) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def switch_model(page, name: str, header_text: str) -> float:
    """``tests.browser.switch_model``, printing the requests the page made for the switch."""
    took = browser.switch_model(page, name, header_text, timeout_ms=LONG)
    server = page.evaluate("""() => { const calls = performance.getEntriesByType('resource')
        .filter(e => e.initiatorType === 'fetch' && e.startTime >= window.__t0);
        return calls.map(e => [e.name.split('/').slice(-2).join('/'), Math.round(e.duration)]); }""")
    print(json.dumps({"switch_to": name, "requests_ms": server}))
    return took


def example_images(page, op: str) -> int:
    """How many pictures the op's examples show."""
    return page.locator(f"#{op}-examples img").count()


def test_photo_flow_in_the_browser(page, photos, tmp_path):
    folder = Path(os.environ.get("SMAPGAN_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    open_tab(page, "Local transplant", "local_transplant")
    assert "aligned on the face" in page.locator("#header").inner_text()
    assert example_images(page, "local_transplant") == 4  # the face model's own: two originals, two references
    shot(page, "0-own-examples", folder)
    open_tab(page, "Reconstruct", "reconstruct")
    assert "No examples for Reconstruct with this model" in page.locator("#reconstruct-notes").inner_text()
    assert example_images(page, "reconstruct") == 0  # none of its own: not the emoji
    open_tab(page, "Local transplant", "local_transplant")

    # The photo stays as uploaded; the aligned crop is shown beside it.
    upload(page, "local_transplant-original", str(photos["astronaut"]))
    crop = page.locator("#local_transplant-original-crop img")
    crop.wait_for(state="visible", timeout=LONG)
    natural = page.evaluate("e => [e.naturalWidth, e.naturalHeight]", crop.element_handle())
    assert natural == [256, 256]
    editor = "local_transplant-references_1"
    upload(page, editor, str(photos["mirrored"]))
    editor_ready(page, editor)
    stroke(page, editor, dy=-0.05)
    shot(page, "1-uploaded", folder)

    assert "Done" in run(page, "local_transplant")
    photo = page.locator("#local_transplant-photo img")
    photo.wait_for(state="visible", timeout=LONG)
    shot(page, "2-result-in-photo", folder)
    with page.expect_download(timeout=LONG) as download:
        page.locator("#local_transplant-photo-download").click()
    saved = tmp_path / "downloaded.png"
    download.value.save_as(saved)
    pasted = np.asarray(Image.open(saved).convert("RGB"))
    original = np.asarray(Image.open(photos["astronaut"]).convert("RGB"))
    assert pasted.shape == original.shape  # at the photo's resolution
    changed = (pasted != original).any(-1)
    assert changed.sum() > 5000  # the face's square took the (random-weights) result ...
    assert not changed[:, :100].any() and not changed[-60:].any()  # ... the rest of the photo is untouched

    # Another model: loaded on first use, then switching between loaded ones only updates the page.
    first = switch_model(page, "bundled", "64x64 px")
    back = switch_model(page, FACES, "256x256 px")
    again = switch_model(page, "bundled", "64x64 px")
    print(json.dumps({"switch_ms": {"first_use": round(first), "to_loaded": round(back), "to_loaded_again":
                                    round(again)}}))
    assert "aligned on the face" not in page.locator("#header").inner_text()
    assert page.locator("#local_transplant-original-crop").is_hidden()  # that crop was the other model's
    assert example_images(page, "local_transplant") == 2  # the bundled model's (emoji): one example
    assert page.locator("#local_transplant-notes").is_hidden()  # nothing to say
    assert "Done" in run(page, "local_transplant")
    shot(page, "3-other-model", folder)
    result = page.locator("#local_transplant-image-download")
    assert "64x64" in result.inner_text()  # the bundled model's result
