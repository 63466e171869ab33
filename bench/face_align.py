"""Face alignment and paste-back on a 12 MP photo (the targets: <= 0.3 s and <= 0.2 s on 2 threads).

The photo is scikit-image's astronaut scaled up into a 4032x3024 frame (the face then spans
about 500 px). Prints the median of several runs of each step, after one warm-up (the first
call loads dlib's 100 MB predictor), with the machine's load.

    python bench/face_align.py [--runs 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from PIL import Image


def twelve_megapixels() -> Image.Image:
    from skimage import data

    astronaut = Image.fromarray(data.astronaut()).resize((3024, 3024), Image.Resampling.BICUBIC)
    photo = Image.new("RGB", (4032, 3024), (90, 90, 100))
    photo.paste(astronaut, (504, 0))
    return photo


def timed(fn, runs: int) -> tuple[float, object]:
    times, value = [], None
    for _ in range(runs):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)  # a benchmark script may set its own process up

    from smapgan.intake import align, faces

    photo = twelve_megapixels()
    faces.landmarker()  # load the predictor outside the timings
    aligned = align.align_photo(photo, args.size)  # warm-up
    result = Image.fromarray(255 - np.asarray(aligned.crop))

    detect_s, found = timed(lambda: faces.detect_faces(photo), args.runs)
    crop_s, _ = timed(lambda: align.crop(photo, aligned.transform), args.runs)
    align_s, _ = timed(lambda: align.align_photo(photo, args.size), args.runs)
    paste_s, _ = timed(lambda: align.paste_back(photo, result, aligned.transform), args.runs)

    print(f"photo {photo.size[0]}x{photo.size[1]} ({photo.size[0] * photo.size[1] / 1e6:.1f} MP), "
          f"face {found[0].describe()}, crop side {aligned.transform.side:.0f} px -> {args.size}")
    print(f"detect + landmarks   {detect_s * 1e3:7.1f} ms")
    print(f"crop (warp)          {crop_s * 1e3:7.1f} ms")
    print(f"align_photo (all)    {align_s * 1e3:7.1f} ms   target <= 300 ms   ratio {align_s / 0.3:.2f}")
    print(f"paste_back           {paste_s * 1e3:7.1f} ms   target <= 200 ms   ratio {paste_s / 0.2:.2f}")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores, {args.threads} torch threads")


if __name__ == "__main__":
    main()
