"""The local next edit's cost in process CPU time, for comparing two checkouts on a shared machine.

Wall time on the 2 shared cores swings 2-3x with other people's jobs; the CPU time this process
spends on one thread swings much less. Release 256/8x8 layout with random weights, w+ blend of a
pair, 6% and 25% square masks: the mask cycles through 4 places (as in ``local_edit.py``), every
place is rendered once first (the base's features and every map tile it needs are made), then
``--rounds`` next edits alternate ``render_local`` (forced local) and the exact ``render``. Medians
at 1 thread (CPU time; wall beside it) and at 2 threads (wall; CPU beside it), with the load.

Run it in two checkouts in alternation, each with its own environment, e.g.::

    for i in 1 2 3; do for tree in /work/main /work/wt/mine; do
        (cd $tree && .venv/bin/python bench/local_edit_cpu.py --tag $tree); done; done

or compare the preview's convolution dtypes in one process, call by call (``--convs float32,bfloat16``).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
from typing import Any, Callable

import torch
from cpu_edit import build_model, test_images
from local_edit import square


def _local(renderer: Any, base: Any, edits: list[Any], r: int) -> None:
    _, exact = renderer.render_local(edits[r % 4], base=base)
    if exact:
        raise RuntimeError("the local render fell back to the exact one")


def main() -> int:
    from smapgan.fast import FastRenderer
    from smapgan.latent import editing

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--tag", default="", help="printed on every line (which checkout)")
    parser.add_argument("--margin", type=float, default=None, help="local_margin (default: the renderer's)")
    parser.add_argument("--reference-maps", action="store_true",
                        help="make all of the reference's maps first (as the app's idle worker completes them)")
    parser.add_argument("--convs", default="", help="local_conv_dtype of the preview, comma-separated to compare "
                        "several in this process, call by call (e.g. float32,bfloat16; default: the renderer's)")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = build_model()
    images = test_images(2)
    size = images.shape[-1]
    median = statistics.median
    kinds = args.convs.split(",") if args.convs else ["default"]
    for fraction in (0.06, 0.25):
        options = {} if args.margin is None else {"local_margin": args.margin}
        side = round(fraction ** 0.5 * size)
        jobs: dict[str, Callable[[int], Any]] = {}
        for kind in kinds:
            convs = {} if kind == "default" else {"local_conv_dtype": getattr(torch, kind)}
            renderer = FastRenderer(model, local_max_area=1.0, **options, **convs)
            a, b = renderer.encode(images[:1]), renderer.encode(images[1:2])
            pa, pb = renderer.pyramid(a), renderer.pyramid(b)
            if args.reference_maps:
                renderer.render(b)
            renderer.render(editing.blend_pyramid(pa, pb, square(size, fraction, size // 8, size // 8)), base=a)
            edits = []
            for k in range(4):
                step = (size - side) * k // 4
                edits.append(editing.blend_pyramid(pa, pb, square(size, fraction, step, (size - side) - step)))
            for edit in edits:
                renderer.render_local(edit, base=a)
                renderer.render(edit, base=a)
            jobs[f"local {kind}" if len(kinds) > 1 else "local"] = functools.partial(_local, renderer, a, edits)
            if "exact" not in jobs:
                jobs["exact"] = lambda r, renderer=renderer, a=a, edits=edits: renderer.render(edits[r % 4], base=a)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            cpu: dict[str, list[float]] = {key: [] for key in jobs}
            wall: dict[str, list[float]] = {key: [] for key in jobs}
            for r in range(args.rounds):
                for key in (list(jobs) if r % 2 else list(jobs)[::-1]):
                    c0, w0 = time.process_time(), time.perf_counter()
                    jobs[key](r)
                    cpu[key].append(time.process_time() - c0)
                    wall[key].append(time.perf_counter() - w0)
            print(f"{args.tag} mask {fraction:.0%} threads {threads}: "
                  + " | ".join(f"{key} cpu {median(cpu[key]):.3f} s wall {median(wall[key]):.3f} s" for key in jobs)
                  + f" | load {os.getloadavg()[0]:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
