"""Screenshots of every tab of the app, on arrival and after a run, as a person uses it.

``python scripts/screenshots.py --out DIR [--model DIR_OR_REPO]``: serves the app on a free port,
drives Debian's Chromium with Playwright (brushes a stroke where an op needs a region, clicks a
placement, runs the op) and writes ``DIR/<op>-arrival.png`` and ``DIR/<op>-result.png``.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def editor_ready(page, elem_id: str, timeout_ms: int = 60_000) -> None:
    """Wait until an editor's canvas is shown and its picture has loaded (the page says it is ready)."""
    page.locator(f"#{elem_id} canvas").first.wait_for(state="visible", timeout=timeout_ms)
    page.wait_for_function(
        "id => { const e = document.getElementById(id); return e && e.dataset.smapganReady === '1'; }",
        arg=elem_id, timeout=timeout_ms,
    )


def stroke(page, elem_id: str, dy: float = -0.15, length: float = 0.5) -> None:
    """A horizontal brush stroke across an editor's canvas, ``dy`` of its height above the center.

    The editor is centred in the window first: mouse events off screen (the page scrolled by an
    earlier click) reach no element, and the stroke would be silently lost.
    """
    page.locator(f"#{elem_id}").evaluate("e => e.scrollIntoView({block: 'center'})")
    box = page.locator(f"#{elem_id} canvas").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2 + dy * box["height"]
    half = length * box["width"] / 2
    page.mouse.move(cx - half, cy)
    page.mouse.down()
    for i in range(1, 13):
        page.mouse.move(cx - half + 2 * half * i / 12, cy, steps=2)
    page.mouse.up()


def run_and_wait(page, op: str, timeout_ms: int = 120_000) -> str:
    """Click Run and wait until it is enabled again; the tab's status line (done or the error)."""
    page.evaluate("op => { document.getElementById(op + '-status').dataset.before = 'x'; }", op)
    page.locator(f"#{op}-run").click()
    page.wait_for_function(  # the status line is replaced (Running...), then Run comes back
        "op => { const s = document.getElementById(op + '-status'); const b = document.getElementById(op + '-run');"
        " return b && !b.disabled && /Done|error/i.test(s.innerText + s.innerHTML); }",
        arg=op, timeout=timeout_ms,
    )
    return page.locator(f"#{op}-status").inner_text()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--model", help="model folder or Hub repo id (default: the bundled model)")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--ops", nargs="*", help="only these tabs (op names; default: every tab)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from playwright.sync_api import sync_playwright

    from smapgan.app import build_demo
    from smapgan.app.launcher import load_model
    from smapgan.ops import discover

    args.out.mkdir(parents=True, exist_ok=True)
    registry = discover()
    demo = build_demo(load_model(args.model), registry=registry)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": args.width, "height": 1000})
            page.goto(demo.local_url, wait_until="load")
            for found in registry.sorted():
                if args.ops and found.name not in args.ops:
                    continue
                page.get_by_role("tab", name=found.title, exact=True).click()
                page.locator(f"#{found.name}-run").wait_for(state="visible", timeout=60_000)
                editors = [
                    f"{found.name}-{i.name}_1" if i.count > 1 else f"{found.name}-{i.name}"
                    for i in found.image_inputs if i.mask != "none"
                ]
                for elem_id in editors:
                    editor_ready(page, elem_id)
                page.screenshot(path=str(args.out / f"{found.name}-arrival.png"), full_page=True)
                for item in found.image_inputs:
                    elem_id = f"{found.name}-{item.name}_1" if item.count > 1 else f"{found.name}-{item.name}"
                    if item.mask == "required":
                        stroke(page, elem_id)
                for item in found.inputs:  # a placement: click on the image it is placed on
                    if getattr(item, "kind", "") == "points" and item.on:
                        img = page.locator(f"#{found.name}-{item.on} img").first
                        box = img.bounding_box()
                        img.click(position={"x": box["width"] * 0.5, "y": box["height"] * 0.7})
                        page.wait_for_function(
                            "id => (document.querySelector('#' + id + ' textarea') || {}).value",
                            arg=f"{found.name}-{item.name}", timeout=30_000,
                        )
                status = run_and_wait(page, found.name)
                print(f"{found.name}: {status.strip()}")
                page.screenshot(path=str(args.out / f"{found.name}-result.png"), full_page=True)
            browser.close()
    finally:
        demo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
