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
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from cpu_edit import build_model, test_images
from local_edit import square


def main() -> int:
    from smapgan.fast import FastRenderer
    from smapgan.latent import editing

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--tag", default="", help="printed on every line (which checkout)")
    parser.add_argument("--margin", type=float, default=None, help="local_margin (default: the renderer's)")
    parser.add_argument("--reference-maps", action="store_true",
                        help="make all of the reference's maps first (as the app's idle worker completes them)")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = build_model()
    images = test_images(2)
    size = images.shape[-1]
    median = statistics.median
    for fraction in (0.06, 0.25):
        margin = {} if args.margin is None else {"local_margin": args.margin}
        renderer = FastRenderer(model, local_max_area=1.0, **margin)
        a, b = renderer.encode(images[:1]), renderer.encode(images[1:2])
        pa, pb = renderer.pyramid(a), renderer.pyramid(b)
        if args.reference_maps:
            renderer.render(b)
        side = round(fraction ** 0.5 * size)
        renderer.render(editing.blend_pyramid(pa, pb, square(size, fraction, size // 8, size // 8)), base=a)
        edits = []
        for k in range(4):
            step = (size - side) * k // 4
            edits.append(editing.blend_pyramid(pa, pb, square(size, fraction, step, (size - side) - step)))
        for edit in edits:
            renderer.render_local(edit, base=a)
            renderer.render(edit, base=a)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            cpu: dict[str, list[float]] = {"local": [], "exact": []}
            wall: dict[str, list[float]] = {"local": [], "exact": []}
            for r in range(args.rounds):
                edit = edits[r % 4]
                for key in (("local", "exact") if r % 2 else ("exact", "local")):
                    c0, w0 = time.process_time(), time.perf_counter()
                    if key == "local":
                        _, exact = renderer.render_local(edit, base=a)
                        if exact:
                            raise RuntimeError("the local render fell back to the exact one")
                    else:
                        renderer.render(edit, base=a)
                    cpu[key].append(time.process_time() - c0)
                    wall[key].append(time.perf_counter() - w0)
            print(f"{args.tag} mask {fraction:.0%} threads {threads}: "
                  f"local cpu {median(cpu['local']):.3f} s wall {median(wall['local']):.3f} s | "
                  f"exact cpu {median(cpu['exact']):.3f} s wall {median(wall['exact']):.3f} s | "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
