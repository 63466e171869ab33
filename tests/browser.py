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
