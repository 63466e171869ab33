"""What every browser test shares: Debian's Chromium, its flags for this sandbox, and the marks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
"""Debian's build (``apt-get install -y chromium``): ``playwright install`` cannot download browsers here."""
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

MARKS = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("chromium") is None and not Path(CHROMIUM).exists(),
        reason="Debian's chromium is not installed (apt-get install -y chromium)",
    ),
]
"""``pytestmark`` of a browser test module: slow, and skipped where Chromium is absent."""


SWITCH_WATCH = """text => { window.__t0 = null; window.__switched = null;
    if (window.__observer) window.__observer.disconnect();
    if (!window.__clicks) { window.__clicks = true;  // the moment an option is chosen
        document.addEventListener('mousedown', e => { if (e.target.closest('[role=option], li'))
            window.__t0 = performance.now(); }, {capture: true}); }
    const header = document.getElementById('header');
    window.__observer = new MutationObserver(() => {
        if (window.__switched === null && window.__t0 !== null && header.innerText.includes(text))
            window.__switched = performance.now(); });
    window.__observer.observe(header, {subtree: true, childList: true, characterData: true}); }"""
"""Page script: stamps ``__t0`` when a dropdown option is pressed and ``__switched`` when the header shows ``text``."""


def switch_model(page, name: str, header_text: str, timeout_ms: int = 180_000) -> float:
    """Choose ``name`` in the app's model dropdown; the milliseconds from the click to the header
    showing ``header_text``. ``window.__t0`` stays set, for what the caller times next."""
    page.evaluate(SWITCH_WATCH, header_text)
    page.locator("#model-choice input").click()
    page.get_by_role("option", name=name, exact=True).click()
    page.wait_for_function("() => window.__switched !== null", timeout=timeout_ms)
    return page.evaluate("() => window.__switched - window.__t0")
