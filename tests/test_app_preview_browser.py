"""In Chromium (issue 30, item 2): a next edit shows its local preview, said so, then the exact render.

The bundled model's local transplant, prefilled with its example: a stroke and a first Run (exact at
once), then one more brush stroke on the reference and Run again. The op is held after the preview until the
test has seen the status line say "Preview" (no timing decides it); then the run ends, and the image
the page shows (the before/after slider's after side) is the exact render of the same inputs by
a fresh renderer, pixel for pixel. Screenshots of both moments go to ``$SMAPGAN_SCREENSHOTS`` when set.
"""

from __future__ import annotations

import dataclasses
import io
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from smapgan.fast import FastRenderer
from smapgan.intake import images as imageio
from smapgan.ops import OpContext, Registry, discover

from tests.browser import CHROMIUM, CHROMIUM_ARGS, MARKS
from tests.reliability import free_port

LONG = 180_000  # ms
OP = "local_transplant"
EDITOR = f"{OP}-references_1"

pytestmark = MARKS


@pytest.fixture(scope="module")
def app(one_torch_thread):
    """The bundled model's local transplant (its example prefilled), held after each preview."""
    from smapgan.app import build_demo
    from smapgan.app.launcher import load_model

    model = load_model(None)
    found = discover(paths=[])[OP]
    seen = threading.Event()
    runs: list[dict[str, Any]] = []

    def held(ctx, **kwargs):
        runs.append({"inputs": kwargs, "previewed": False})
        for part in found.fn(ctx, **kwargs):
            yield part
            if ctx.showing_preview:
                runs[-1]["previewed"] = True
                runs[-1]["released"] = seen.wait(60)

    registry = Registry({OP: dataclasses.replace(found, fn=held)})
    # Local wherever it can: the example's mask (a third of the image) is above the default area.
    renderer = FastRenderer(model, local_max_cost=1.0, local_max_area=1.0)
    demo = build_demo(model, renderer=renderer, registry=registry)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield demo.local_url, model, found, seen, runs
    finally:
        seen.set()
        demo.close()


def status(page) -> str:
    return page.locator(f"#{OP}-status").inner_text()


def stroke(page, dy: float) -> None:
    """A horizontal stroke across the reference's canvas, ``dy`` (of its height) below its centre."""
    page.locator(f"#{EDITOR}").evaluate("e => e.scrollIntoView({block: 'center'})")
    box = page.locator(f"#{EDITOR} canvas").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2 + dy * box["height"]
    page.mouse.move(cx - 50, cy)
    page.mouse.down()
    for i in range(1, 11):
        page.mouse.move(cx - 50 + 10 * i, cy, steps=2)
    page.mouse.up()


def fetch(page, url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page.request.get(url).body())).convert("RGB"))


def shown_after(page) -> np.ndarray:
    """The after side of the result's before/after slider (the last image of the view)."""
    srcs = page.eval_on_selector_all(f"#{OP}-image-compare img", "els => els.map(e => e.src)")
    assert srcs, "the before/after view shows nothing"
    return fetch(page, srcs[-1])


def shot(page, name: str) -> None:
    folder = os.environ.get("SMAPGAN_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def test_the_preview_is_said_and_the_exact_render_is_shown_last(app):
    from playwright.sync_api import sync_playwright

    url, model, found, seen, runs = app
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(url, wait_until="load")
            page.get_by_role("tab", name="Local transplant", exact=True).click()
            page.wait_for_function(
                "id => document.getElementById(id) && document.getElementById(id).dataset.smapganReady === '1'",
                arg=EDITOR, timeout=LONG,
            )
            stroke(page, -0.12)  # over the eyes
            page.locator(f"#{OP}-run").click()  # the first edit of the pair: exact at once
            page.wait_for_function(
                "op => /Done/.test(document.getElementById(op + '-status').innerText)"
                " && !document.getElementById(op + '-run').disabled", arg=OP, timeout=LONG,
            )
            first = shown_after(page)
            stroke(page, 0.3)  # the mask changes: a next edit of the same pair
            page.locator(f"#{OP}-run").click()
            page.wait_for_function(
                "op => /Preview/.test(document.getElementById(op + '-status').innerText)", arg=OP, timeout=LONG,
            )
            preview_status = status(page)
            page.wait_for_function(
                "n => document.querySelectorAll('#local_transplant-image-compare img').length >= n", arg=1,
                timeout=LONG,
            )
            shot(page, "preview")
            preview = shown_after(page)
            seen.set()
            page.wait_for_function(
                "op => /Done/.test(document.getElementById(op + '-status').innerText)"
                " && !document.getElementById(op + '-run').disabled", arg=OP, timeout=LONG,
            )
            shot(page, "exact")
            done_status = status(page)
            final = shown_after(page)
        finally:
            seen.set()
            browser.close()
    assert [r["previewed"] for r in runs] == [False, True] and runs[1]["released"], runs
    assert "Preview (local render)" in preview_status and "preview was shown" in done_status, done_status
    exact = found.run(OpContext(model, FastRenderer(model)), **runs[1]["inputs"])["image"]  # nothing cached
    want = np.asarray(imageio.tensor_to_image(exact))
    scale = final.shape[0] // want.shape[0]  # the slider shows the model's pixels upscaled (nearest)
    assert np.array_equal(final[::scale, ::scale], want), "the final image shown is the exact render"
    assert not np.array_equal(preview, final) and not np.array_equal(first, final)
