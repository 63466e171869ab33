"""Switching to a model already loaded, in Chromium: the milliseconds from choosing it in the dropdown
to the page showing it (the header naming its size; then its examples' images loaded), for this
checkout and, with ``--before``, for another source tree, alternating in one run.

The app serves a 256 px random-weights model (narrow channels; its config asks for aligned faces; its
own examples, from scikit-image's astronaut) and the bundled 64 px model. Each page chooses the other
model once (a load), then switches back and forth between the two, both in memory.

    git archive main smapgan ops | tar -x -C /tmp/before && mv /tmp/before/ops /tmp/before/smapgan/builtin_ops
    python bench/model_switch.py --before /tmp/before [--rounds 7]

Prints each switch, the medians, and after/before ratios, with the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_model(folder: Path) -> Path:
    """A 256 px random-weights model saying it wants aligned faces, with examples of its own."""
    import numpy as np
    import torch
    from PIL import Image

    from smapgan import StyleMapGAN, StyleMapGANConfig

    config = StyleMapGANConfig(size=256, latent_spatial_size=8, latent_channel_size=32, channel_base=1024,
                               channel_max=32, alignment="ffhq")
    torch.manual_seed(0)
    StyleMapGAN(config, with_discriminator=False).eval().save_pretrained(folder)
    examples = folder / "examples"
    examples.mkdir()
    try:
        from skimage import data

        photo = Image.fromarray(data.astronaut())
    except ImportError:
        photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (512, 512, 3), dtype=np.uint8))
    photo.crop((140, 20, 340, 220)).save(examples / "face.png")
    photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT).crop((170, 20, 370, 220)).save(examples / "mirrored.png")
    listing = {
        "lerp": [{"first": "face.png", "second": "mirrored.png", "frames": 4, "position": 0.5}],
        "local_transplant": [{"original": "face.png", "references": ["mirrored.png"], "frames": 4}],
        "reconstruct": [{"original": "face.png"}],
        "style_mix": [{"content": "face.png", "style": "mirrored.png", "mix": "coarse"}],
        "unaligned_transplant": [{"original": "face.png", "reference": "mirrored.png", "box": "0.2,0.2,0.8,0.6",
                                  "placements": "0.5,0.45"}],
    }
    (examples / "examples.json").write_text(json.dumps(listing))
    return folder


def serve(port: int, model_dir: str) -> None:
    """The app with the model folder and the bundled model, on ``port``, until stdin closes."""
    import torch

    from smapgan.app import build_demo
    from smapgan.app.models import ModelChoices
    from smapgan.ops import discover

    torch.set_num_threads(1)
    demo = build_demo(ModelChoices([model_dir, None], device="cpu"), registry=discover(paths=[]))
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    print("READY", demo.local_url, flush=True)
    sys.stdin.read()
    demo.close()


IMAGES_LOADED = """() => { if (window.__switched === null) return false;
    const tab = document.querySelector('[role=tabpanel]:not([hidden])') || document;
    const images = [...tab.querySelectorAll('.gallery img, table img, button img')]
        .filter(img => img.offsetParent !== null);
    if (!images.every(img => img.complete && img.naturalWidth > 0)) return false;
    if (window.__images === null) window.__images = performance.now();
    return true; }"""


def switch(page, name: str, header_text: str) -> tuple[float, float]:
    """Choose ``name``; ms from the click to the header showing it, and to the tab's example images loaded."""
    from tests.browser import switch_model  # the page script tests/test_photo_browser.py times with

    page.evaluate("() => { window.__images = null; }")
    header = switch_model(page, name, header_text)
    page.wait_for_function(IMAGES_LOADED, timeout=30_000, polling="raf")
    return header, page.evaluate("() => window.__images - window.__t0")


def start(source: Path, port: int, model_dir: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(source), GRADIO_ANALYTICS_ENABLED="False")
    process = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--model-dir", str(model_dir)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=source)
    line = process.stdout.readline()
    if not line.startswith("READY"):
        raise SystemExit(f"the app from {source} did not start: {line!r}")
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="a source tree to compare with (its smapgan/ package)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.model_dir)
        return
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT))  # here, not at import: a server process must find only its own tree's code
    from tests.browser import CHROMIUM, CHROMIUM_ARGS

    variants = {"after": ROOT} | ({"before": args.before.resolve()} if args.before else {})
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = make_model(Path(tmp) / "faces256")
        servers = {name: start(src, 7900 + i, model_dir) for i, (name, src) in enumerate(variants.items())}
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                pages = {}
                for i, name in enumerate(variants):
                    pages[name] = browser.new_page(viewport={"width": 1400, "height": 1300})
                    pages[name].goto(f"http://127.0.0.1:{7900 + i}/", wait_until="load")
                    pages[name].locator("#header").wait_for(timeout=60_000)
                    switch(pages[name], "bundled", "64x64 px")  # a load: not measured
                    switch(pages[name], str(model_dir), "256x256 px")  # its first showing: not measured
                targets = [("bundled", "64x64 px"), (str(model_dir), "256x256 px")]
                for round_ in range(args.rounds):
                    order = list(variants) if round_ % 2 == 0 else list(variants)[::-1]
                    for k, target in enumerate(targets):
                        for name in order:
                            shown = switch(pages[name], *target)
                            times[name].append(shown)
                            print(json.dumps({"variant": name, "to": "bundled" if k == 0 else "faces256",
                                              "header_ms": round(shown[0]), "images_ms": round(shown[1])}))
                browser.close()
        finally:
            for process in servers.values():
                process.stdin.close()
                process.wait(timeout=30)
    medians = {name: [statistics.median(t[i] for t in values) for i in (0, 1)] for name, values in times.items()}
    for name, (header, images) in medians.items():
        print(f"{name}: median header {header:.0f} ms, images {images:.0f} ms over {len(times[name])} switches")
    if "before" in medians:
        after, before = medians["after"], medians["before"]
        print(f"after/before: header {after[0] / before[0]:.2f}, images {after[1] / before[1]:.2f}")
    print("load:", os.getloadavg())


if __name__ == "__main__":
    main()
