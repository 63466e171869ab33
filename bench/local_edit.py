"""The next edit rendered locally (frozen statistics), beside the frozen-statistics full render and the exact one.

Three parts, all in-process on ``--threads`` threads (2: the targets of issue 30):

1. **Speed**, release 256/8x8 layout with random weights (every parameter perturbed) and the bundled
   model: a pair is encoded and a first edit rendered exactly (the app's first result); then, per
   round, the mask moves and the *next* edit is rendered three ways, in alternating order:
   ``render_local`` (ours, forced local at every area: ``local_max_area=1``), ``render_frozen`` (the
   same statistics, the whole synthesis) and ``render(edit, base)`` (exact). 6% and 25% square masks,
   w+ blend. Medians, ratios, and the PSNR of local and frozen against exact.
2. **Where it pays**: the local render's time and planned cost (fraction of a full synthesis' conv
   FLOPs) against the mask's area (2% to 50%), beside the exact render: the crossover sets
   ``LOCAL_MAX_COST``.
3. **Quality** on the bundled model: PSNR local vs exact over pairs of the hidden style (emojione,
   never trained on) and of held-out emoji (the ``val`` split), square masks of each ``--areas`` at
   three places each; min / 5th percentile / median / mean, for the default margin (and, with
   ``--margins``, without one: frozen statistics alone). The area where the worst case drops under
   35 dB sets ``LOCAL_MAX_AREA``. Images from ``--data`` (``scripts/emoji_dataset.py``'s folder, with
   ``metadata.jsonl``); without it, the bundled examples' ``val`` split only.

    python bench/local_edit.py [--rounds 7] [--threads 2] [--data /work/data/emoji] [--pairs 12]
        [--parts speed,crossover,quality] [--areas 0.06,0.09,0.12,0.16,0.25] [--margins]
        [--margin 0.0625] [--convs float32|bfloat16]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch
from cpu_edit import build_model, psnr, test_images
from machine import cpu_name


def square(size: int, fraction: float, y: int, x: int) -> torch.Tensor:
    side = max(1, round(fraction ** 0.5 * size))
    m = torch.zeros(1, 1, size, size)
    m[..., y:y + side, x:x + side] = 1
    return m


def load_image(path: Path, size: int) -> torch.Tensor:
    from PIL import Image

    im = Image.open(path).convert("RGB").resize((size, size), Image.BICUBIC)
    data = torch.tensor(bytearray(im.tobytes()), dtype=torch.uint8).view(size, size, 3)
    return data.permute(2, 0, 1)[None].float() / 127.5 - 1


def eval_sets(data: Path | None, size: int, pairs: int) -> dict[str, list[torch.Tensor]]:
    """Images of the hidden style and of held-out emoji (``--data``), else the bundled examples' val split."""
    if data is not None and (data / "metadata.jsonl").exists():
        rows = [json.loads(line) for line in (data / "metadata.jsonl").read_text().splitlines() if line.strip()]
        style = [r["file"] for r in rows if r.get("split") == "style" or r.get("source") == "emojione"]
        val = [r["file"] for r in rows if r.get("split") == "val"]
        return {name: [load_image(data / f, size) for f in files[:2 * pairs]]
                for name, files in (("hidden style", style), ("held-out", val))}
    import smapgan

    folder = Path(smapgan.__file__).parent / "assets" / "examples"
    rows = json.loads((folder / "index.json").read_text())
    return {"held-out (examples)": [load_image(folder / r["file"], size) for r in rows if r["split"] == "val"]}


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def speed(name: str, model: Any, images: torch.Tensor, rounds: int, local: dict[str, Any]) -> None:
    from smapgan.fast import FastRenderer
    from smapgan.latent import editing

    size = images.shape[-1]
    renderer = FastRenderer(model, local_max_area=1.0, **local)  # the local render measured at every area
    a, b = renderer.encode(images[:1]), renderer.encode(images[1:2])
    pa, pb = renderer.pyramid(a), renderer.pyramid(b)
    print(f"\n[{name}] next edit, w+ blend, median of {rounds} (seconds); PSNR against exact (dB); "
          f"local margin {renderer.local_margin}, window convs in {renderer.local_conv_dtype or renderer.dtype}")
    print(f"{'mask':>5} {'local':>7} {'frozen-full':>11} {'exact':>7} {'exact/local':>11} "
          f"{'PSNR local':>10} {'PSNR frozen':>11} {'local used':>10}")
    for fraction in (0.06, 0.25):
        side = round(fraction ** 0.5 * size)
        first = editing.blend_pyramid(pa, pb, square(size, fraction, size // 8, size // 8))
        renderer.render(first, base=a)  # the first edit, exact (the app's first result)
        times: dict[str, list[float]] = {"local": [], "frozen": [], "exact": []}
        psnrs: dict[str, list[float]] = {"local": [], "frozen": []}
        used = 0
        for r in range(rounds + 1):  # round 0 warms up (records the base's features) and is not counted
            step = (size - side) * (r % 4) // 4
            edit = editing.blend_pyramid(pa, pb, square(size, fraction, step, (size - side) - step))
            out: dict[str, torch.Tensor] = {}
            jobs: list[tuple[str, Callable[[], Any]]] = [
                ("local", lambda: renderer.render_local(edit, base=a)),
                ("frozen", lambda: renderer.render_frozen(edit, base=a)),
                ("exact", lambda: renderer.render(edit, base=a)),
            ]
            for key, job in (jobs if r % 2 else jobs[::-1]):
                t0 = time.perf_counter()
                result = job()
                dt = time.perf_counter() - t0
                if key == "local":
                    result, exact = result
                    used += (not exact) and r > 0
                out[key] = result
                if r:
                    times[key].append(dt)
            if r:
                psnrs["local"].append(psnr(out["local"].clamp(-1, 1), out["exact"].clamp(-1, 1)))
                psnrs["frozen"].append(psnr(out["frozen"].clamp(-1, 1), out["exact"].clamp(-1, 1)))
        tl, tf, te = (median(times[k]) for k in ("local", "frozen", "exact"))
        print(f"{fraction:>5.0%} {tl:>7.3f} {tf:>11.3f} {te:>7.3f} {te / tl:>10.2f}x "
              f"{min(psnrs['local']):>10.1f} {min(psnrs['frozen']):>11.1f} {used:>7}/{rounds}")


def crossover(name: str, model: Any, images: torch.Tensor, rounds: int) -> None:
    from smapgan.fast import FastRenderer
    from smapgan.fast.local import plan
    from smapgan.latent import editing

    size = images.shape[-1]
    renderer = FastRenderer(model, local_max_cost=1.0, local_max_area=1.0)  # always local: where does it stop paying
    a, b = renderer.encode(images[:1]), renderer.encode(images[1:2])
    pa, pb = renderer.pyramid(a), renderer.pyramid(b)
    renderer.render_local(editing.blend_pyramid(pa, pb, square(size, 0.01, 0, 0)), base=a)
    decoder = renderer._engine.decoder(torch.float32)
    print(f"\n[{name}] local vs exact against the mask's area (medians of {rounds}; centred square)")
    print(f"{'area':>5} {'planned cost':>12} {'local s':>8} {'exact s':>8} {'local/exact':>11}")
    for fraction in (0.02, 0.06, 0.12, 0.25, 0.5):
        side = round(fraction ** 0.5 * size)
        edit = editing.blend_pyramid(pa, pb, square(size, fraction, (size - side) // 2, (size - side) // 2))
        entry = renderer.cache.get(a.key)
        with renderer._engine.lock, torch.inference_mode():
            _, patches = renderer._patches(edit, entry)
        margin = max(1, round(renderer.local_margin * size))
        sizes = [tuple(m.shape[-2:]) for m in entry.pyramid]
        cost = plan(decoder, sizes, [None if p is None else p.box for p in patches], margin).cost
        tl, te = [], []
        for r in range(rounds):
            for key in (("l", "e") if r % 2 else ("e", "l")):
                t0 = time.perf_counter()
                renderer.render_local(edit, base=a) if key == "l" else renderer.render(edit, base=a)
                (tl if key == "l" else te).append(time.perf_counter() - t0)
        print(f"{fraction:>5.0%} {cost:>12.2f} {median(tl):>8.3f} {median(te):>8.3f} {median(tl) / median(te):>11.2f}")


def quality(model: Any, data: Path | None, pairs: int, areas: list[float], margins: bool, local: dict[str, Any],
            sets: str = "") -> None:
    from smapgan.fast import FastRenderer
    from smapgan.latent import editing

    size = model.config.size
    renderers = {"default margin": FastRenderer(model, local_max_cost=1.0, local_max_area=1.0, **local)}
    if margins:
        renderers["no margin (frozen stats)"] = FastRenderer(model, local_max_cost=1.0, local_max_area=1.0,
                                                             **{**local, "local_margin": None})
    places = [(size // 8, size // 8), (size // 3, size // 3), (0, size // 2)]
    print(f"\n[bundled model] PSNR local vs exact (dB), {len(places)} places per mask; "
          f"margin {renderers['default margin'].local_margin:.4f} of the side; window convs in "
          f"{renderers['default margin'].local_conv_dtype or torch.float32}")
    print(f"{'set':>20} {'renderer':>25} {'mask':>5} {'n':>4} {'min':>6} {'p5':>6} {'median':>7} {'mean':>6}")
    for set_name, images in eval_sets(data, size, pairs).items():
        if sets and not any(part in set_name for part in sets.split(",")):
            continue
        for rname, renderer in renderers.items():
            for fraction in areas:
                values = []
                for k in range(0, len(images) - 1, 2):
                    a, b = renderer.encode(images[k]), renderer.encode(images[k + 1])
                    pa, pb = renderer.pyramid(a), renderer.pyramid(b)
                    for y, x in places:
                        edit = editing.blend_pyramid(pa, pb, square(size, fraction, y, x))
                        image, _ = renderer.render_local(edit, base=a)
                        values.append(psnr(image.clamp(-1, 1), renderer.render(edit, base=a).clamp(-1, 1)))
                values.sort()
                p5 = values[int(0.05 * (len(values) - 1))]
                print(f"{set_name:>20} {rname:>25} {fraction:>5.0%} {len(values):>4} {values[0]:>6.1f} {p5:>6.1f} "
                      f"{median(values):>7.1f} {statistics.mean(values):>6.1f}")


def main() -> int:
    import smapgan
    from smapgan import StyleMapGAN

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", type=Path, default=None, help="scripts/emoji_dataset.py's folder (metadata.jsonl)")
    parser.add_argument("--pairs", type=int, default=12, help="pairs per evaluation set")
    parser.add_argument("--parts", default="speed,crossover,quality")
    parser.add_argument("--areas", default="0.06,0.25", help="mask areas of the quality part")
    parser.add_argument("--margins", action="store_true", help="quality: also without a margin (frozen statistics)")
    parser.add_argument("--sets", default="", help="quality: only the sets whose name contains one of these")
    parser.add_argument("--margin", type=float, default=None, help="speed, quality: local_margin (default: the "
                        "renderer's)")
    parser.add_argument("--convs", choices=("float32", "bfloat16"), default=None,
                        help="speed, quality: local_conv_dtype (default: the renderer's, bf16 on CPUs with native bf16)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    parts = set(args.parts.split(","))
    local: dict[str, Any] = {}
    if args.margin is not None:
        local["local_margin"] = args.margin
    if args.convs is not None:
        local["local_conv_dtype"] = getattr(torch, args.convs)
    print(f"CPU: {cpu_name()}; torch {torch.__version__}; {torch.get_num_threads()} threads; "
          f"load at start {os.getloadavg()}")
    bundled = StyleMapGAN.from_pretrained(smapgan.DEFAULT_MODEL).eval()
    small_images = test_images(2, seed=3)
    small_images = torch.nn.functional.interpolate(small_images, size=bundled.config.size, mode="area")
    if "speed" in parts or "crossover" in parts:
        release = build_model()
        images = test_images(2)
    if "speed" in parts:
        speed("release 256/8x8, random weights", release, images, args.rounds, local)
        speed("bundled 64/16x16", bundled, small_images, args.rounds, local)
    if "crossover" in parts:
        crossover("release 256/8x8, random weights", release, images, max(3, args.rounds // 2))
        crossover("bundled 64/16x16", bundled, small_images, max(3, args.rounds // 2))
    if "quality" in parts:
        quality(bundled, args.data, args.pairs, [float(a) for a in args.areas.split(",")], args.margins, local,
                args.sets)
    print(f"\nload at end {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
