"""A real browser: the Inversion control shows refinement progress, and its stop button ends it early."""

from __future__ import annotations

import dataclasses
import re
import time

import pytest

from smapgan import StyleMapGANConfig
from smapgan.ops import Registry, discover

from tests.browser import CHROMIUM, CHROMIUM_ARGS, MARKS
from tests.models import random_model
from tests.reliability import free_port


pytestmark = MARKS


@pytest.fixture(scope="module")
def app(one_torch_thread):
    """The app with only reconstruct (its example prefilled) on a small random model; records each run's steps."""
    from smapgan.app import build_demo

    config = StyleMapGANConfig(
        size=32, latent_spatial_size=4, latent_channel_size=8, mapping_layer_num=2, channel_base=256, channel_max=32
    )
    model = random_model(config)
    op = discover(paths=[])["reconstruct"]
    runs: list[dict] = []

    def spy(ctx, **kwargs):
        record = {"steps": ctx.inversion.steps, "done": 0}
        runs.append(record)
        report = ctx.progress

        def progress(fraction: float, desc: str) -> None:
            if desc.startswith("refining"):
                record["done"] += 1
                time.sleep(0.02)  # a slow machine: leaves the browser time to see progress and press stop
            report(fraction, desc)

        ctx.progress = progress
        return op.fn(ctx, **kwargs)

    registry = Registry({op.name: dataclasses.replace(op, fn=spy)})
    demo = build_demo(model, registry=registry)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield demo.local_url, runs
    finally:
        demo.close()


def choose_refined(page, steps: int) -> None:
    """The Inversion control set to refined with ``steps`` steps (Enter commits the number)."""
    page.locator("#inversion-choice").get_by_text("refined", exact=True).click()
    field = page.locator("#inversion-steps input[type=number]")
    field.fill(str(steps))
    field.press("Enter")
    page.wait_for_timeout(500)


def test_refinement_progress_is_shown_and_stop_ends_it(app):
    from playwright.sync_api import sync_playwright

    url, runs = app
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url, wait_until="load")
            choose_refined(page, 200)
            page.locator("#reconstruct-run").click()
            progress = page.get_by_text("refining image: step", exact=False).first
            progress.wait_for(state="visible", timeout=60_000)
            page.locator("#inversion-stop").click()
            result = page.locator("#reconstruct-reconstruction-compare img").last
            result.wait_for(state="visible", timeout=60_000)
        finally:
            browser.close()
    assert len(runs) == 1 and runs[0]["steps"] == 200
    assert 0 < runs[0]["done"] < 200, f"stopped after {runs[0]['done']} of 200 steps"


def test_stop_is_shown_only_while_refining_and_the_status_says_where_it_stopped(app):
    """Stop appears once a refinement runs (not in encoder-only mode, not when idle); after a stop the
    status line says at which step of how many the fit ended."""
    from playwright.sync_api import sync_playwright

    url, runs = app
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url, wait_until="load")
            stop = page.locator("#inversion-stop")
            page.locator("#reconstruct-run").wait_for(state="visible", timeout=60_000)
            page.wait_for_function("() => document.getElementById('smapgan-style')", timeout=60_000)
            assert not stop.is_visible()  # encoder only: nothing to stop
            choose_refined(page, 200)
            assert not stop.is_visible()  # refined, but nothing runs yet
            page.locator("#reconstruct-run").click()
            stop.wait_for(state="visible", timeout=60_000)
            stop.click()
            page.wait_for_function(
                "() => /Done/.test(document.getElementById('reconstruct-status').innerText)", timeout=60_000
            )
            text = page.locator("#reconstruct-status").inner_text()
            stop.wait_for(state="hidden", timeout=10_000)
        finally:
            browser.close()
    found = re.search(r"stopped at step (\d+) of (\d+)", text)
    assert found, text
    assert int(found.group(2)) == 200 and int(found.group(1)) == runs[-1]["done"] < 200, (text, runs[-1])


def test_a_refinement_stops_within_a_second_when_its_browser_closes(app):
    """6 (issue 27; the cancellation is smapgan.app.departures): a person closes the page during a
    refinement: the server takes no refinement step more than 1 s after, and never finishes it."""
    from playwright.sync_api import sync_playwright

    url, runs = app
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url, wait_until="load")
            choose_refined(page, 200)
            before = len(runs)
            page.locator("#reconstruct-run").click()
            page.get_by_text("refining image: step", exact=False).first.wait_for(state="visible", timeout=60_000)
        finally:
            browser.close()  # the person has gone
    time.sleep(1.0)
    record = runs[before]
    at_one_second = record["done"]
    time.sleep(3.0)  # at 0.02 s or more a step, 150 steps more would be taken meanwhile
    assert record["done"] == at_one_second < 200, (at_one_second, record)
