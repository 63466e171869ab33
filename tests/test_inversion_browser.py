"""A real browser: the Inversion control shows refinement progress, and its stop button ends it early."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
import torch

from smapgan import StyleMapGAN, StyleMapGANConfig
from smapgan.ops import Registry, discover

from tests.browser import CHROMIUM, CHROMIUM_ARGS, MARKS
from tests.reliability import free_port


pytestmark = MARKS


@pytest.fixture(scope="module")
def app():
    """The app with only reconstruct (its example prefilled) on a small random model; records each run's steps."""
    from smapgan.app import build_demo

    config = StyleMapGANConfig(
        size=32, latent_spatial_size=4, latent_channel_size=8, mapping_layer_num=2, channel_base=256, channel_max=32
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = StyleMapGAN(config, with_discriminator=False).eval()
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
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    demo = build_demo(model, registry=registry)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield demo.local_url, runs
    finally:
        demo.close()
        torch.set_num_threads(threads)


def test_refinement_progress_is_shown_and_stop_ends_it(app):
    from playwright.sync_api import sync_playwright

    url, runs = app
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url, wait_until="load")
            page.locator("#inversion-choice").get_by_text("refined", exact=True).click()
            steps = page.locator("#inversion-steps input[type=number]")
            steps.fill("200")
            steps.press("Enter")
            page.wait_for_timeout(500)
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
