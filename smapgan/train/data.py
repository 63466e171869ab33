"""Training data: a folder of images, a resumable deterministic order, and batches.

The order of samples *and* their flips are a pure function of (seed, epoch, position), drawn
in the sampler, so a run resumed from a checkpoint sees exactly the batches an uninterrupted
run would, whatever the number of DataLoader workers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

log = logging.getLogger("smapgan.train")

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".pnm", ".tga"}
)
CACHE_LIMIT_BYTES = 2 << 30
_MAX_PIXELS = 16384 * 16384


class DataError(ValueError):
    """The data cannot be used for training (missing folder, no valid images, too few for a batch)."""


def list_images(root: str | os.PathLike[str]) -> list[Path]:
    """Image files under ``root`` (recursive, symlinks followed), sorted for a stable order."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {str(root)!r} does not exist or is not a directory")
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found.append(Path(dirpath) / name)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def load_image(path: str | os.PathLike[str], size: int) -> torch.Tensor:
    """Decode one image to uint8 (3, size, size): EXIF-rotated, alpha over white, center crop, resize.

    Transparent images (emoji, icons) are composited on white rather than having their alpha
    dropped, which would expose whatever colour the transparent pixels happen to hold.
    """
    from PIL import Image, ImageOps

    from ..intake.images import center_crop, to_rgb

    with Image.open(path) as im:
        if im.width * im.height > _MAX_PIXELS:
            raise ValueError(f"image too large ({im.width}x{im.height})")
        im = center_crop(to_rgb(ImageOps.exif_transpose(im)))
        side = im.width
        if side != size:
            im = im.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0 if side > 2 * size else None)
        array = np.asarray(im, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def check_image(path: Path) -> str | None:
    """None when ``path`` looks like a readable image, else the reason (cheap: header + verify)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.verify()
            if im.width < 1 or im.height < 1:
                return "empty image"
    except Exception as exc:  # PIL raises many types for bad files
        return f"{type(exc).__name__}: {exc}"
    return None


@dataclass
class ScanResult:
    paths: list[Path]
    skipped: int


def scan_folder(root: str | os.PathLike[str]) -> ScanResult:
    """Readable images under ``root``; each unreadable file gets one warning and is counted."""
    paths = list_images(root)
    if not paths:
        raise DataError(
            f"no images found in {str(root)!r} (searched recursively for {', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    valid, skipped = [], 0
    for path in paths:
        reason = check_image(path)
        if reason is None:
            valid.append(path)
        else:
            skipped += 1
            log.warning("skipping unreadable image %s: %s", path, reason)
    if skipped:
        log.warning("skipped %d unreadable file(s) of %d in %s", skipped, len(paths), root)
    return ScanResult(valid, skipped)


def split_validation(paths: Sequence[Path], fraction: float, max_images: int, seed: int) -> tuple[list[Path], list[Path]]:
    """(train, val): a seeded random ``fraction`` of ``paths`` (at most ``max_images``) held out."""
    count = min(int(round(fraction * len(paths))), max_images) if fraction > 0 else 0
    if fraction > 0 and count == 0 and len(paths) > 1 and max_images > 0:
        count = 1
    order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(seed + 7919)).tolist()
    held = set(order[:count])
    train = [p for i, p in enumerate(paths) if i not in held]
    val = [paths[i] for i in sorted(held)]
    return train, val


class ImageFolder(Dataset):
    """Images as uint8 (3, S, S); items are ``(index, flip)`` pairs chosen by the sampler.

    A file that passed the start-up check but fails to decode later is replaced by the next
    index (one warning per file), so a worker never dies on a truncated image.
    """

    def __init__(self, paths: Sequence[Path], size: int, cache: torch.Tensor | None = None) -> None:
        self.paths = list(paths)
        self.size = size
        self.cache = cache
        self._warned: set[int] = set()

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> torch.Tensor:
        if self.cache is not None:
            return self.cache[index]
        for attempt in range(len(self.paths)):
            i = (index + attempt) % len(self.paths)
            try:
                return load_image(self.paths[i], self.size)
            except Exception as exc:
                if i not in self._warned:
                    self._warned.add(i)
                    log.warning("skipping unreadable image %s: %s", self.paths[i], exc)
        raise DataError("no image of the data set could be decoded")

    def __getitem__(self, item: tuple[int, bool]) -> torch.Tensor:
        index, flip = item
        image = self.load(index)
        return image.flip(-1) if flip else image


def decode_all(paths: Sequence[Path], size: int, workers: int = 0) -> tuple[torch.Tensor, list[int]]:
    """Decode ``paths`` into one uint8 tensor (N, 3, S, S); returns it and the indices that failed."""
    out = torch.empty(len(paths), 3, size, size, dtype=torch.uint8)
    ok = torch.ones(len(paths), dtype=torch.bool)
    loader = DataLoader(_DecodeOrNone(paths, size), batch_size=None, num_workers=workers)  # items as they are
    for i, image in enumerate(loader):
        if image is None:
            ok[i] = False
        else:
            out[i] = image
    failed = (~ok).nonzero().flatten().tolist()
    return out[ok], failed


class _DecodeOrNone(Dataset):
    def __init__(self, paths: Sequence[Path], size: int) -> None:
        self.paths, self.size = list(paths), size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor | None:
        try:
            return load_image(self.paths[i], self.size)
        except Exception:
            return None


def epoch_order(n: int, seed: int, epoch: int, flip: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The permutation and flip decisions of one epoch: a pure function of its arguments."""
    g = torch.Generator().manual_seed((seed * 1_000_003 + epoch * 7_919 + 12_345) % (2**63))
    perm = torch.randperm(n, generator=g)
    flips = torch.rand(n, generator=g) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    return perm, flips


class ResumableSampler(Sampler[tuple[int, bool]]):
    """This rank's ``(index, flip)`` items of one epoch, from a settable (epoch, position).

    Global batch ``k`` of an epoch is ``perm[k*B:(k+1)*B]`` (``B = batch * world``) and rank
    ``r`` takes its ``r``-th contiguous slice, so the global data order does not depend on the
    number of ranks. The tail that does not fill a global batch is dropped.
    """

    def __init__(self, n: int, batch: int, rank: int, world: int, seed: int, flip: bool) -> None:
        self.n, self.batch, self.rank, self.world = n, batch, rank, world
        self.seed, self.flip = seed, flip
        self.batches_per_epoch = n // (batch * world)
        if self.batches_per_epoch < 1:
            raise DataError(f"{n} training images are fewer than one batch ({batch * world})")
        self.epoch, self.position = 0, 0

    def set_state(self, epoch: int, position: int) -> None:
        """Start the next iteration at batch ``position`` of ``epoch``."""
        self.epoch, self.position = epoch, position

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.position) * self.batch

    def __iter__(self) -> Iterator[tuple[int, bool]]:
        perm, flips = epoch_order(self.n, self.seed, self.epoch, self.flip)
        global_batch = self.batch * self.world
        for k in range(self.position, self.batches_per_epoch):
            start = k * global_batch + self.rank * self.batch
            for j in range(start, start + self.batch):
                i = int(perm[j])
                yield i, bool(flips[i])


class BatchStream:
    """Endless batches of float images in [-1, 1], tracking (epoch, position) for checkpoints.

    With the training set cached in RAM, batches are gathered directly from the cache (no
    DataLoader: indexing a tensor is cheaper than any worker hand-off).
    """

    def __init__(self, dataset: ImageFolder, sampler: ResumableSampler, workers: int, pin_memory: bool = False) -> None:
        self.dataset, self.sampler = dataset, sampler
        self.epoch, self.position = 0, 0
        self._iter: Iterator[torch.Tensor] | None = None
        self.loader: DataLoader | None = None
        if dataset.cache is None:
            self.loader = DataLoader(
                dataset,
                batch_size=sampler.batch,
                sampler=sampler,
                num_workers=workers,
                pin_memory=pin_memory,
                drop_last=True,
                persistent_workers=workers > 0,
                prefetch_factor=4 if workers > 0 else None,
            )

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._iter = None

    def _cached_epoch(self) -> Iterator[torch.Tensor]:
        items = list(iter(self.sampler))
        cache = self.dataset.cache
        assert cache is not None
        for start in range(0, len(items), self.sampler.batch):
            chunk = items[start : start + self.sampler.batch]
            index = torch.tensor([i for i, _ in chunk])
            flip = torch.tensor([f for _, f in chunk])
            batch = cache[index]
            if flip.any():
                batch[flip] = batch[flip].flip(-1)
            yield batch

    def next_uint8(self) -> torch.Tensor:
        """The next batch as uint8 (B, 3, S, S)."""
        while True:
            if self._iter is None:
                self.sampler.set_state(self.epoch, self.position)
                self._iter = iter(self.loader) if self.loader is not None else self._cached_epoch()
            batch = next(self._iter, None)
            if batch is not None:
                self.position += 1
                return batch
            self.epoch, self.position, self._iter = self.epoch + 1, 0, None


def to_float(images: torch.Tensor, device: torch.device, channels_last: bool = False) -> torch.Tensor:
    """uint8 (N,3,H,W) -> float32 in [-1, 1] on ``device`` (converted after the transfer: 4x fewer bytes)."""
    x = images.to(device, non_blocking=True).float().div_(127.5).sub_(1.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def should_cache(mode: str, count: int, size: int) -> bool:
    if mode == "on":
        return True
    if mode == "off":
        return False
    return count * 3 * size * size <= CACHE_LIMIT_BYTES
