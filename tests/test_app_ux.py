"""The app as a person uses it, third round (issue 27), in Chromium: one test per rough edge.

Each failed on the app before its fix. The page and its helpers are those of
tests/test_app_person.py (the bundled 64 px model, every built-in op); waits are on conditions.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from tests.browser import MARKS
from tests.test_app_person import (  # noqa: F401  (fixtures)
    LONG, browser, editor_ready, files, open_tab, page, run, status, stroke, upload, url,
)

pytestmark = MARKS
SOON = 30_000  # ms: what the page does at once (an upload's refusal), on a busy machine

REFUSED = "is not an image in a format this app can read"


def wait_status(page, op: str, pattern: str, timeout: int = SOON) -> str:
    page.wait_for_function(
        "([op, p]) => new RegExp(p).test(document.getElementById(op + '-status').innerText)",
        arg=[op, pattern], timeout=timeout,
    )
    return status(page, op)


def shown_and_served(page, selector: str) -> tuple[np.ndarray, Image.Image]:
    """What the person sees of an image element (a screenshot of its box, 2 px more on every side:
    the box may start between pixels) and the file it shows."""
    image = page.locator(selector).first
    image.scroll_into_view_if_needed()
    box = image.bounding_box()
    clip = {"x": round(box["x"]) - 2, "y": round(box["y"]) - 2,
            "width": round(box["width"]) + 4, "height": round(box["height"]) + 4}
    seen = np.asarray(Image.open(io.BytesIO(page.screenshot(clip=clip))).convert("RGB")).astype(int)
    served = Image.open(io.BytesIO(page.request.get(image.get_attribute("src")).body()))
    return seen, served


def mismatch(seen: np.ndarray, image: Image.Image, side: int) -> float:
    """Mean difference between the screenshot and ``image`` upscaled to ``side`` px by repeating
    pixels (white where transparent), at the best of the few placements the margin allows."""
    flat = Image.new("RGB", image.size, "white")
    rgba = image.convert("RGBA")
    flat.paste(rgba, mask=rgba.getchannel("A"))
    expected = np.asarray(flat.resize((side, side), Image.Resampling.NEAREST)).astype(int)
    return min(
        float(np.abs(seen[dy:dy + side, dx:dx + side] - expected).mean())
        for dy in range(seen.shape[0] - side + 1) for dx in range(seen.shape[1] - side + 1)
    )


# ------------------------------------------------------------------------------------- 1
def test_unreadable_file_in_a_canvas_is_refused_at_upload(page, files):
    """1: a text file named .png in a brush canvas: the plain inputs' message at once, the canvas
    emptied (not a blank white picture that takes strokes) and usable for the next file."""
    open_tab(page, "Local transplant", "local_transplant")
    editor = "local_transplant-references_1"
    editor_ready(page, editor)
    upload(page, editor, files["bad"])
    assert f"image 'notes.png' {REFUSED}" in wait_status(page, "local_transplant", REFUSED)
    assert page.locator(f"#{editor}").get_by_text("Upload an image").is_visible()  # empty, not white
    upload(page, editor, files["cat"])
    editor_ready(page, editor)
    stroke(page, editor)
    assert "Done" in run(page, "local_transplant")

    open_tab(page, "Semantic edit", "semantic_edit")  # refused at upload there too, not at Run
    editor_ready(page, "semantic_edit-original")
    upload(page, "semantic_edit-original", files["bad"])
    assert REFUSED in wait_status(page, "semantic_edit", REFUSED)


# ------------------------------------------------------------------------------------- 2
def test_results_and_gifs_are_shown_at_the_canvas_size_pixel_exact(page):
    """2: Random's 64 px result and the GIFs fill the canvas size, each model pixel a square block."""
    open_tab(page, "Random", "random")
    assert "Done" in run(page, "random")
    seen, served = shown_and_served(page, "#random-image img")
    assert served.size == (64, 64) and seen.shape[:2] == (260, 260), (served.size, seen.shape)
    assert mismatch(seen, served, 256) < 4

    open_tab(page, "Interpolate", "lerp")
    page.locator("#lerp-first img").first.wait_for(state="visible", timeout=LONG)
    assert "Done" in run(page, "lerp")
    seen, gif = shown_and_served(page, "#lerp-animation-gif img")
    assert gif.format == "GIF" and gif.size == (64, 64) and seen.shape[:2] == (260, 260), (gif.size, seen.shape)
    frames = []
    for index in range(gif.n_frames):  # the screenshot holds whichever frame was on screen
        gif.seek(index)
        frames.append(mismatch(seen, gif.convert("RGBA"), 256))
    assert min(frames) < 4, frames


# ------------------------------------------------------------------------------------- 3
def test_a_failed_run_shows_no_empty_error_badges(page):
    """3: a run refused for want of a stroke: the status line says why; no output pane shows an "Error" badge."""
    open_tab(page, "Local transplant", "local_transplant")
    editor_ready(page, "local_transplant-references_1")
    assert "brush a region on the reference first" in run(page, "local_transplant")
    badges = page.locator("[data-testid='status-tracker'] .error")
    shown = [badges.nth(i).inner_text() for i in range(badges.count()) if badges.nth(i).is_visible()]
    assert not shown, shown


# ------------------------------------------------------------------------------------- 4
def test_messages_name_fields_by_their_labels(page, files):
    """4: the image a run lacks is named by the label the page shows it with, not its parameter name."""
    open_tab(page, "Semantic edit", "semantic_edit")
    editor_ready(page, "semantic_edit-original")
    upload(page, "semantic_edit-original", files["bad"])  # the canvas ends up without an image
    page.wait_for_timeout(2000)  # the browser has tried the file (and the refusal, if any, has come)
    text = run(page, "semantic_edit")
    assert "'Image (brush to edit locally)' needs an image" in text, text
    assert "'original'" not in text and "semantic_edit" not in text, text


# ------------------------------------------------------------------------------------- 7
def test_stale_error_popup_is_closed_by_the_next_run(page):
    """7: the pop-up of a failed run goes as soon as the next run starts (its own timer is 10 s);
    none is left after that run succeeds."""
    open_tab(page, "Unaligned transplant", "unaligned_transplant")
    box = page.locator("#unaligned_transplant-box textarea, #unaligned_transplant-box input").first
    box.fill("2,2,3,3")
    assert "need 0 <= x0 < x1 <= 1" in run(page, "unaligned_transplant")
    popup = page.locator("[data-testid='toast-body']").filter(has_text="need 0 <= x0")
    popup.first.wait_for(state="visible", timeout=SOON)
    box.fill("0.1,0.2,0.9,0.55")
    page.locator("#unaligned_transplant-run").click()
    popup.first.wait_for(state="detached", timeout=1_500)
    page.wait_for_function(
        "() => /Done/.test(document.getElementById('unaligned_transplant-status').innerText)", timeout=LONG
    )
    assert page.locator("[data-testid='toast-body']").count() == 0


def test_a_refused_upload_takes_the_old_result_with_it(page, files):
    """7: after an upload is refused, the result of the image that was there is no longer shown beside it."""
    open_tab(page, "Reconstruct", "reconstruct")
    page.locator("#reconstruct-original img").first.wait_for(state="visible", timeout=LONG)
    assert "Done" in run(page, "reconstruct")
    result = page.locator("#reconstruct-reconstruction-compare img")
    result.first.wait_for(state="visible", timeout=LONG)
    upload(page, "reconstruct-original", files["bad"])
    assert REFUSED in wait_status(page, "reconstruct", REFUSED)
    result.first.wait_for(state="detached", timeout=SOON)
    assert not page.locator("#reconstruct-reconstruction-download").is_visible()


# ------------------------------------------------------------------------------------- 8
def test_semantic_strength_says_where_artifacts_begin(page):
    """8: the strength slider stops where edits start to show colour artifacts, and says so beside it."""
    open_tab(page, "Semantic edit", "semantic_edit")
    text = page.locator("#semantic_edit-strength").inner_text()
    assert re.search(r"Capped at ±1\.5\b.*artifacts", text), text
    slider = page.locator("#semantic_edit-strength input[type=range]")
    assert (slider.get_attribute("min"), slider.get_attribute("max")) == ("-1.5", "1.5")
