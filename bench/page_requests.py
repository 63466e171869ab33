"""What the app's page sends to the server for a first and a next edit, watched in Chromium.

Serves the bundled model's app in this process, opens its local transplant tab (the first example
prefilled) in Debian's Chromium (playwright), and drives it as a person does: a brush stroke on the
reference and Run (the first edit of the pair), then another stroke and Run (a next edit: the mask
moved), each time until the status line says "Done". Every request the page sends from the first
stroke on is listed per phase: each upload with the server's path it got (Gradio names an upload by
its content: the same path is the same bytes), each queued job with the file payloads it names,
and a count of the rest (downloads, the page's unqueued events). ``bench/local_app.py``'s
"HTTP, as page" column sends what this shows.

    python bench/page_requests.py [--edits 2]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OP = "local_transplant"
EDITOR = f"{OP}-references_1"
LONG_MS = 300_000


def short(path: str) -> str:
    """A server path as ``<first 8 of its folder>/<name>`` (the folder is the content's hash)."""
    parts = Path(path).parts
    return f"{parts[-2][:8]}/{parts[-1]}" if len(parts) >= 2 else path


def files_named(value: Any) -> Any:
    """A job's payload with each file payload shown as its short server path (other values as they are)."""
    if isinstance(value, dict):
        if "path" in value:
            return short(str(value["path"]))
        return {k: files_named(v) for k, v in value.items() if v not in (None, [])}
    if isinstance(value, list):
        return [files_named(v) for v in value]
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--edits", type=int, default=2, help="Runs after the first stroke (the first is the first edit)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from smapgan.app import build_demo
    from smapgan.app.launcher import load_model
    from tests.browser import CHROMIUM, CHROMIUM_ARGS
    from tests.reliability import free_port
    from tests.test_app_preview_browser import stroke

    demo = build_demo(load_model(None))
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    phase = ["page load"]
    log: list[tuple[str, str]] = []
    others: collections.Counter[tuple[str, str]] = collections.Counter()

    def on_request(request: Any) -> None:
        if "/queue/join" in request.url:
            body = json.loads(request.post_data or "{}")
            log.append((phase[0], f"job fn {body.get('fn_index')}: {json.dumps(files_named(body.get('data')))}"))
        elif "/upload" not in request.url:
            others[(phase[0], f"{request.method} {request.resource_type}")] += 1

    def on_response(response: Any) -> None:
        if "/gradio_api/upload" in response.url and response.ok:
            try:
                paths = response.json()
            except Exception:  # the browser closed before this late upload's body was read
                return
            log.append((phase[0], f"upload -> {', '.join(short(p) for p in paths)}"))

    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.on("request", on_request)
            page.on("response", on_response)
            page.goto(demo.local_url, wait_until="load")
            page.get_by_role("tab", name="Local transplant", exact=True).click()
            page.wait_for_function(
                "id => document.getElementById(id) && document.getElementById(id).dataset.smapganReady === '1'",
                arg=EDITOR, timeout=LONG_MS,
            )
            for i in range(args.edits):
                name = "first edit" if i == 0 else f"next edit {i}"
                phase[0] = f"{name}: stroke"
                stroke(page, -0.12 + 0.2 * i)
                time.sleep(1)  # the editor's uploads of the stroke are done
                phase[0] = f"{name}: Run"
                page.locator(f"#{OP}-run").click()
                page.wait_for_function(
                    "op => /Done/.test(document.getElementById(op + '-status').innerText)"
                    " && !document.getElementById(op + '-run').disabled", arg=OP, timeout=LONG_MS,
                )
                time.sleep(1)  # what the page sends once the run has ended
            browser.close()
    finally:
        demo.close()
    for name in dict.fromkeys(ph for ph, _ in log):
        if name == "page load":
            continue
        print(f"\n== {name}")
        uploads = collections.Counter(text for ph, text in log if ph == name and text.startswith("upload"))
        for text, count in uploads.items():
            print(f"  {text}  (x{count})")
        for ph, text in log:
            if ph == name and not text.startswith("upload"):
                print(f"  {text}")
        rest = {kind: n for (ph, kind), n in others.items() if ph == name}
        print(f"  other requests: {rest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
