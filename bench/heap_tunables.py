"""Does keeping freed feature maps in glibc's heap still pay? glibc's defaults vs. a process setting.

A 256 px render allocates and frees feature maps of 8-34 MB; with glibc's defaults blocks that large
are mmapped and unmapped, so each render faults fresh pages in. The setting tried keeps them in the
heap, from outside the library (environment, read by glibc at start-up)::

    GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=536870912

(no mmap for large blocks; the heap's top is returned to the OS beyond 512 MB free).

A person edits pairs in the app's way (release 256/8x8 config, random weights, the app's renderer
with its idle worker): each pair's first transplant, the idle worker finished, then the mask moved
four times; every pair is visited once. Timed: the moved-mask edits, with their minor page faults.
Each session runs in a fresh process (malloc's state is per process), the two settings alternating.

    python bench/heap_tunables.py [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch
from cpu_edit import build_model, rss_mb, test_images
from first_edit import mask_at
from machine import cpu_name

SETTINGS = {
    "glibc defaults": None,
    "heap reuse": "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=536870912",
}
PAIRS = 2
VISITS = 1


def session() -> dict:
    from smapgan.fast import FastRenderer
    from smapgan.ops import OpContext, discover

    model = build_model()
    transplant = discover(paths=[])["local_transplant"]
    renderer = FastRenderer(model, fill_when_idle=True)
    ctx = OpContext(model, renderer)
    moved = [mask_at(96, 32), mask_at(32, 96), mask_at(80, 80), mask_at(16, 16)]
    pairs = [test_images(2, seed=7000 + k) for k in range(PAIRS)]
    times, faults = [], []

    def minflt() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    with torch.inference_mode():
        for _visit in range(VISITS):
            for x in pairs:

                def edit(mask: torch.Tensor) -> None:
                    transplant.run(ctx, original=ctx.picture(x[:1]), references=[ctx.picture(x[1:], mask)],
                                   space="w+", strength=1.0, pooling="max", frames=0)

                edit(mask_at(64, 64))
                renderer.wait_idle()
                for mask in moved:
                    f0, t0 = minflt(), time.perf_counter()
                    edit(mask)
                    times.append(time.perf_counter() - t0)
                    faults.append(minflt() - f0)
    return {"times": times, "faults": faults, "rss_mb": rss_mb()[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--session", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.session:
        print(json.dumps(session()))
        return 0
    load0 = os.getloadavg()[0]
    results: dict[str, list[dict]] = {name: [] for name in SETTINGS}
    for _ in range(args.rounds):
        for name, tunables in SETTINGS.items():
            env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
            if tunables:
                env["GLIBC_TUNABLES"] = tunables
            out = subprocess.run([sys.executable, __file__, "--session", "--threads", str(args.threads)],
                                 capture_output=True, text=True, check=True, env=env)
            results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    edits = PAIRS * VISITS * 4
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs; threads {args.threads}; torch {torch.__version__}; "
          f"python {platform.python_version()}; load average {load0:.2f} at start, {os.getloadavg()[0]:.2f} at end")
    print(f"{edits} moved-mask 256 px edits per session, {args.rounds} fresh sessions per setting, alternating\n")
    print("| setting | edit median per session | median | page faults per edit | RSS at the end |")
    print("|---|---|---|---|---|")
    medians = {}
    for name, runs in results.items():
        per_session = [statistics.median(r["times"]) for r in runs]
        medians[name] = statistics.median(t for r in runs for t in r["times"])
        faults = statistics.median(f for r in runs for f in r["faults"])
        rss = ", ".join(f"{r['rss_mb']:.0f}" for r in runs)
        print(f"| {name} | {', '.join(f'{m:.3f}' for m in per_session)} s | {medians[name]:.3f} s | {faults:.0f} | "
              f"{rss} MB |")
    defaults, reuse = medians["glibc defaults"], medians["heap reuse"]
    print(f"\nheap reuse / glibc defaults: {reuse / defaults:.2f} (saves {1 - reuse / defaults:.0%} of an edit)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
