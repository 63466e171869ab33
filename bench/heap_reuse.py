"""Moved-mask edits of a session that has seen several pairs: the heap's free pages kept or faulted in again.

A person edits three pairs in turn (release 256/8x8 config, random weights, the app's renderer with its
idle worker): each visit makes the first transplant, lets the idle worker finish, then moves the mask
four times; every pair is visited twice. Timed: the moved-mask edits (24), with their minor page faults.

Side by side, each in a fresh process (malloc's state is per process), alternating:

* ``resident``: the renderer as it is (``smapgan.fast.memory.FreeHeapKeeper``: trims when the free heap
  still *resident* exceeds the budget);
* ``free-count``: the rule it replaced, on glibc's count of free bytes, which keeps the holes a trim has
  already returned, so once a second pair has been cached it trims after every render.

    python bench/heap_reuse.py [--rounds 2] [--threads 2]
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
from cpu_edit import build_model, test_images
from first_edit import mask_at
from machine import cpu_name

POLICIES = ("resident", "free-count")


def session(policy: str) -> dict:
    from smapgan.fast import FastRenderer, memory
    from smapgan.ops import OpContext, StylemapCache, discover

    class FreeCountKeeper(memory.FreeHeapKeeper):
        """The replaced rule: every free byte counts, resident or already returned."""

        def resident_free_bytes(self) -> int | None:
            return memory.free_heap_bytes()

    model = build_model()
    transplant = discover(paths=[])["local_transplant"]
    renderer = FastRenderer(model, fill_when_idle=True)
    if policy == "free-count":
        renderer._engine.heap = FreeCountKeeper()
    cache = StylemapCache()
    moved = [mask_at(96, 32), mask_at(32, 96), mask_at(80, 80), mask_at(16, 16)]
    pairs = [test_images(2, seed=7000 + k) for k in range(3)]
    times, faults = [], []

    def minflt() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    with torch.inference_mode():
        for _visit in range(2):
            for x in pairs:
                ctx = OpContext(model, renderer, cache)

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
    return {"times": times, "faults": faults, "rss_mb": (memory.resident_bytes() or 0) / 2**20}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--policy", choices=POLICIES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.policy:
        print(json.dumps(session(args.policy)))
        return 0
    load0 = os.getloadavg()[0]
    results: dict[str, list[dict]] = {p: [] for p in POLICIES}
    for _ in range(args.rounds):
        for policy in POLICIES:
            out = subprocess.run([sys.executable, __file__, "--policy", policy, "--threads", str(args.threads)],
                                 capture_output=True, text=True, check=True)
            results[policy].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs; threads {args.threads}; torch {torch.__version__}; "
          f"python {platform.python_version()}; load average {load0:.2f} at start, {os.getloadavg()[0]:.2f} at end")
    print(f"24 moved-mask edits per session (3 pairs x 2 visits x 4), {args.rounds} fresh sessions per rule, alternating\n")
    print("| rule | edit median (per session) | page faults per edit, median | RSS at the end |")
    print("|---|---|---|---|")
    medians = {}
    for policy, runs in results.items():
        meds = [statistics.median(r["times"]) for r in runs]
        medians[policy] = statistics.median(meds)
        faults = statistics.median([f for r in runs for f in r["faults"]])
        rss = ", ".join(f"{r['rss_mb']:.0f}" for r in runs)
        print(f"| {policy} | {', '.join(f'{m:.3f} s' for m in meds)} | {faults:.0f} | {rss} MB |")
    print(f"\nresident / free-count: {medians['resident'] / medians['free-count']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
