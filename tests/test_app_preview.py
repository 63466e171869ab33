"""The app shows a next edit's local render at once, then the exact render (issue 30, item 2).

The endpoint is called directly as the page's Run calls it (``preview=True``, the hidden flag Run's
first step sets): the first edit of a pair is exact at once; the next one (the brushed region moved)
yields the local preview first and the exact render last, the very PNG the exact path gives; with the
same session's next edit queued, the run stops after its preview and no exact render is made. An API
caller leaves ``preview`` out and gets the exact render alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from smapgan import StyleMapGAN
from smapgan.app import previews
from smapgan.fast import FastRenderer
from smapgan.ops import Registry, discover

EXAMPLES = Path(__file__).resolve().parent.parent / "smapgan" / "assets" / "examples"
NEUTRAL, HEARTS = (str(EXAMPLES / f"{n}.png") for n in ("neutral_face", "heart_eyes"))


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small models: one torch thread (see conftest)


@pytest.fixture(scope="module")
def model(tiny_model_dir) -> StyleMapGAN:
    return StyleMapGAN.from_pretrained(tiny_model_dir)


def layer(folder: Path, y0: int, y1: int, x0: int, x1: int) -> str:
    """A brush layer as the canvas exports it (256 px, RGBA): transparent except one rectangle."""
    data = np.zeros((256, 256, 4), dtype=np.uint8)
    data[y0:y1, x0:x1] = (255, 42, 109, 153)
    path = folder / f"layer-{y0}-{x0}.png"
    Image.fromarray(data).save(path)
    return str(path)


@pytest.fixture()
def app(model):
    from smapgan.app import build_demo

    renderer = FastRenderer(model, local_max_cost=1.0, local_max_area=1.0)  # always local where it can
    registry = Registry({"local_transplant": discover(paths=[])["local_transplant"]})
    demo = build_demo(model, renderer=renderer, registry=registry, prefill=False)
    endpoint = next(f for f in demo.fns.values() if f.api_name == "local_transplant").fn
    return endpoint, renderer


def edit(endpoint: Any, session: dict, brush: str, **extra: Any) -> list[np.ndarray]:
    """Each update's image, read as it comes (a run's files go when it ends)."""
    editor = {"background": {"path": HEARTS}, "layers": [{"path": brush}], "composite": None}
    updates = endpoint("session:a/", session, lambda *a, **k: None, original={"path": NEUTRAL},
                       references_1=editor, space="w+", frames=0, **extra)
    return [pixels(u) for u in updates]


def pixels(update: Any) -> np.ndarray:
    image = update[0] if isinstance(update, (list, tuple)) else update
    return np.asarray(Image.open(image).convert("RGB"))


def exact_png(model: StyleMapGAN, brush: str) -> np.ndarray:
    """The same edit through the exact path (the API's default) of a fresh app: nothing cached, no preview."""
    from smapgan.app import build_demo

    registry = Registry({"local_transplant": discover(paths=[])["local_transplant"]})
    demo = build_demo(model, renderer=FastRenderer(model), registry=registry, prefill=False)
    endpoint = next(f for f in demo.fns.values() if f.api_name == "local_transplant").fn
    return edit(endpoint, {}, brush)[-1]


def test_a_next_edit_shows_the_local_render_then_the_exact_one(app, model, tmp_path):
    endpoint, renderer = app
    session: dict[str, Any] = {}
    first = edit(endpoint, session, layer(tmp_path, 40, 120, 30, 110), preview=True)
    # the first edit: exact at once, in one update (complete: the API's result, not sent a second time)
    assert len(first) == 1 and "preview_s" not in session["local_transplant"]
    moved = layer(tmp_path, 120, 200, 100, 180)
    local_before = renderer.stats["local"]
    updates = edit(endpoint, session, moved, preview=True)
    memo = session["local_transplant"]
    assert renderer.stats["local"] == local_before + 1 and memo["preview_s"] > 0
    assert len(updates) == 2  # the preview, then the exact render: the last update, the API's result
    preview, final = updates
    assert not np.array_equal(preview, final) and memo["preview"] is False
    want = exact_png(model, moved)
    assert np.array_equal(final, want), "the last image the app yields is the exact render, bit for bit"
    assert "Done in" in previews.status(memo) and "A local preview was shown" in previews.status(memo)


def test_a_newer_edit_cancels_the_stale_exact_render(app, model, tmp_path, monkeypatch):
    endpoint, renderer = app
    session: dict[str, Any] = {}
    edit(endpoint, session, layer(tmp_path, 40, 120, 30, 110), preview=True)
    monkeypatch.setattr(previews, "newer_edit", lambda: True)  # the session's next edit is queued
    renders = renderer.stats["renders"]
    updates = edit(endpoint, session, layer(tmp_path, 120, 200, 100, 180), preview=True)
    assert len(updates) == 1 and session["local_transplant"]["preview"] is True  # the preview, then nothing
    assert renderer.stats["renders"] == renders + 1  # the local render only: no exact render was made
    assert "elapsed" not in session["local_transplant"]


def test_an_exact_render_made_stale_while_it_ran_is_not_shown(app, model, tmp_path, monkeypatch):
    endpoint, renderer = app
    session: dict[str, Any] = {}
    edit(endpoint, session, layer(tmp_path, 40, 120, 30, 110), preview=True)
    asked: list[int] = []

    def newer_once_the_exact_is_made() -> bool:  # the next edit is queued while the exact render runs
        asked.append(renderer.stats["renders"])
        return len(asked) > 1  # asked after the preview is sent (before the exact render), then with it made

    monkeypatch.setattr(previews, "newer_edit", newer_once_the_exact_is_made)
    renders = renderer.stats["renders"]
    updates = edit(endpoint, session, layer(tmp_path, 120, 200, 100, 180), preview=True)
    assert asked == [renders + 1, renders + 2]  # the exact render was made, then found stale
    assert len(updates) == 1 and session["local_transplant"]["preview"] is True  # and never sent


def test_the_api_gets_the_exact_render_alone(app, model, tmp_path):
    endpoint, renderer = app
    session: dict[str, Any] = {}
    edit(endpoint, session, layer(tmp_path, 40, 120, 30, 110))
    moved = layer(tmp_path, 120, 200, 100, 180)
    updates = edit(endpoint, session, moved)  # no `preview`: as gradio_client calls it by default
    assert renderer.stats["local"] == 0 and "preview_s" not in session["local_transplant"]
    assert np.array_equal(updates[-1], exact_png(model, moved))
    with pytest.raises(Exception, match="preview must be true or false"):
        edit(endpoint, session, moved, preview="maybe")


def test_a_finished_runs_status_line_stays_done():
    """The run's last update re-sends its images, which fires the status line's image change after the run
    has ended: the line must stay the run's "Done" line, not go back to "Exact render" (the browser test
    of a person's undo-and-rerun caught the line ending as the latter)."""
    running = {"preview_s": 0.2, "preview": False}
    assert previews.EXACT_TEXT in previews.status(running)
    finished = {**running, "elapsed": 1.5}
    line = previews.status(finished)
    assert "Done in 1.50 s." in line and "A local preview was shown after 0.20 s." in line
    assert "mask is empty" in previews.status({**finished, "error": "the mask is empty"})
