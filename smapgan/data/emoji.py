"""Emoji faces dataset for the bundled default model.

Openly licensed emoji sets are published on npm (the one public image source reachable from an
offline-ish machine): PNG sets by ``emoji-datasource-*``, vector sets by ``@iconify-json/*`` and
Fluent 3D by ``@lobehub/fluent-emoji-3d`` (:mod:`smapgan.data.emoji_sets` lists them with their
licenses). Emoji are chosen by name and category from ``emoji-datasource``'s ``emoji.json``. The
network part (:func:`fetch_tarballs`, a thin ``npm pack`` wrapper) is kept apart from the
conversion (:func:`build_dataset`, which only reads tarballs) so the latter is testable offline.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from .emoji_sets import (
    CATALOGUE,
    SETS,
    EmojiDataError,
    EmojiSet,
    open_set,
    parse_sets,
    read_catalogue,
)
from ..intake.images import to_rgb
from .raster import SUPERSAMPLE, RasterError, frame_on_white

NATIVE_SIZE = 64
DEFAULT_CACHE_DIR = Path("~/.cache/smapgan/npm")

#: Default selection: every "Smileys & Emotion" face (subcategories ``face-*``), the cat faces, and
#: the mammal heads. Each selector is ``GROUP[:NAME]``: ``GROUP`` is a glob on the category or the
#: subcategory, ``NAME`` an optional glob on any short name or on the Unicode name written as a
#: short name ("DOG FACE" -> ``dog_face``; the short name of DOG FACE is just ``dog``). The name
#: match matters: only 7 mammals have a short name ending in ``_face``, 18 have a name that does.
DEFAULT_SELECTORS: tuple[str, ...] = ("face-*", "cat-face", "animal-mammal:*_face")

SPLITS = ("train", "val", "style")


def parse_selectors(text: str | None) -> tuple[str, ...]:
    """Split a ``--categories`` value; empty or None means :data:`DEFAULT_SELECTORS`."""
    if not text:
        return DEFAULT_SELECTORS
    selectors = tuple(s.strip() for s in text.split(",") if s.strip())
    return selectors or DEFAULT_SELECTORS


def _name_keys(entry: Mapping[str, Any]) -> list[str]:
    keys = [s.lower() for s in entry.get("short_names") or [entry.get("short_name", "")]]
    name = str(entry.get("name") or "").lower()
    if name:
        keys.append("_".join(name.replace("-", " ").split()))
    return keys


def matches(entry: Mapping[str, Any], selectors: Sequence[str] = DEFAULT_SELECTORS) -> bool:
    """Whether an emoji.json entry is picked by any ``GROUP[:NAME]`` selector (globs, no case)."""
    groups = (str(entry.get("category", "")).lower(), str(entry.get("subcategory", "")).lower())
    for selector in selectors:
        group, _, name = selector.partition(":")
        group, name = group.strip().lower(), name.strip().lower()
        if not any(fnmatch.fnmatchcase(g, group) for g in groups):
            continue
        if not name or any(fnmatch.fnmatchcase(k, name) for k in _name_keys(entry)):
            return True
    return False


def split_of(unified: str, val_fraction: float) -> str:
    """Split by a hash of the code point only: an emoji is held out in all sources at once."""
    digest = hashlib.sha256(unified.strip().upper().encode("ascii")).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    return "val" if u < val_fraction else "train"


def composite_on_white(image: Image.Image, size: int = NATIVE_SIZE) -> Image.Image:
    """Flatten straight-alpha RGBA onto white (before any resize, so edges never pick up black)."""
    rgb = to_rgb(image.convert("RGBA"))
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.LANCZOS)
    return rgb


def fetch_tarballs(
    sources: Sequence[str],
    cache_dir: str | os.PathLike[str] = DEFAULT_CACHE_DIR,
    npm: str = "npm",
) -> dict[str, Path]:
    """Get each source's package tarball with ``npm pack``, reusing tarballs already cached."""
    return {source: _fetch(SETS[source], cache_dir, npm) for source in parse_sets(sources)}


def fetch_catalogue(cache_dir: str | os.PathLike[str] = DEFAULT_CACHE_DIR, npm: str = "npm") -> Path:
    """``emoji-datasource`` (emoji.json, no images): names and categories for the vector sets."""
    return _fetch(CATALOGUE, cache_dir, npm)


def _fetch(emoji_set: EmojiSet, cache_dir: str | os.PathLike[str], npm: str) -> Path:
    cache = Path(cache_dir).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / emoji_set.tarball
    if not path.is_file():
        _npm_pack(emoji_set.spec, cache, npm)
        if not path.is_file():
            raise EmojiDataError(f"`npm pack` did not produce {path}")
    return path


def _npm_pack(spec: str, cache: Path, npm: str) -> None:
    command = f"npm pack {spec}"
    exe = shutil.which(npm)
    if exe is None:
        raise EmojiDataError(
            f"`{npm}` was not found on PATH; it is needed to run `{command}`. Install Node.js/npm, "
            f"or run that command elsewhere and put the .tgz into {cache}"
        )
    try:
        proc = subprocess.run(
            [exe, "pack", spec], cwd=cache, capture_output=True, text=True, timeout=900
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EmojiDataError(f"`{command}` (in {cache}) failed: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise EmojiDataError(
            f"`{command}` (in {cache}) failed with exit code {proc.returncode}; is the npm "
            f"registry reachable? You can also put the .tgz into {cache} by hand.\n{tail}"
        )


def build_dataset(
    tarballs: Mapping[str, str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    selectors: Sequence[str] = DEFAULT_SELECTORS,
    size: int = NATIVE_SIZE,
    val_fraction: float = 0.1,
    catalogue: str | os.PathLike[str] | None = None,
    holdout_style: str | None = None,
) -> list[dict[str, Any]]:
    """Convert set tarballs (``{source: path}``) into ``out_dir``; return the records.

    Writes ``images/<source>/<unified>.png`` (RGB on white), ``metadata.jsonl`` and ``LICENSES.md``.
    Emoji are chosen from ``catalogue`` (an emoji-datasource tarball; by default the first PNG set
    given). Splits: ``val`` holds whole emoji out of every set (a hash of the code point), ``style``
    holds the whole ``holdout_style`` set out, for figures on a design the model never saw.
    """
    sources = parse_sets(list(tarballs))
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    if holdout_style is not None and holdout_style not in sources:
        raise ValueError(f"held-out style {holdout_style!r} is not among the sources {sources}")
    if catalogue is None:
        catalogue = next((tarballs[s] for s in sources if SETS[s].layout == "datasource"), None)
        if catalogue is None:
            raise EmojiDataError(
                "the vector sets carry no emoji names or categories: give the emoji-datasource "
                f"tarball (`npm pack {CATALOGUE.spec}`) as the catalogue"
            )
    entries = read_catalogue(catalogue)
    picked = sorted((e for e in entries if matches(e, selectors)), key=lambda e: (e.get("sort_order", 0), e["unified"]))
    readers = {source: open_set(source, tarballs[source]) for source in sources}
    cldr: dict[str, str] = {}
    for reader in readers.values():  # CLDR icon names, for the sets that have no code point map
        cldr.update(reader.names())
    out = Path(out_dir)
    records: list[dict[str, Any]] = []
    for source, reader in readers.items():
        info = SETS[source]
        image_dir = out / "images" / source
        image_dir.mkdir(parents=True, exist_ok=True)
        written: set[str] = set()
        for entry in picked:
            unified = str(entry["unified"]).upper()
            drawing = reader.drawing(entry, size * SUPERSAMPLE, cldr)
            if drawing is None:
                continue  # not in this set: skip, never substitute
            try:  # PNG sets keep their own framing, which the vector sets are framed to match
                rgb = composite_on_white(drawing, size) if info.layout == "datasource" else frame_on_white(drawing, size)
            except RasterError:
                continue
            file_name = f"{unified}.png"
            rgb.save(image_dir / file_name, format="PNG", optimize=True)
            written.add(file_name)
            records.append(
                {
                    "file": f"images/{source}/{file_name}",
                    "unified": unified,
                    "name": str(entry.get("name") or "").lower(),
                    "short_names": list(entry.get("short_names") or [entry.get("short_name")]),
                    "category": entry.get("category"),
                    "subcategory": entry.get("subcategory"),
                    "source": source,
                    "package": info.spec,
                    "license": info.license,
                    "attribution": info.attribution,
                    "split": "style" if source == holdout_style else split_of(unified, val_fraction),
                }
            )
        for stale in image_dir.glob("*.png"):  # left over from a run with another selection
            if stale.name not in written:
                stale.unlink()
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    _write_text(out / "metadata.jsonl", lines)
    write_licenses(out, sources)
    return records


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def licenses_markdown(sources: Sequence[str]) -> str:
    """LICENSES.md text: one section per image set, with the attribution CC-BY requires."""
    lines = [
        "# Licenses of the emoji images",
        "",
        "Images come from the npm packages named below (the packages' code is MIT or as stated; the "
        "images keep their own licenses below). They were rendered or resized, framed alike and "
        "composited onto a white background; no other changes were made.",
        "",
    ]
    for source in parse_sets(sources):
        info = SETS[source]
        lines += [
            f"## {info.title} (`images/{source}/`)",
            "",
            f"- License: {info.license} ({info.license_url}), as stated by the package's {info.license_source}",
            f"- Attribution: {info.attribution}",
            f"- Package: `{info.spec}`",
            "",
        ]
    return "\n".join(lines)


def write_licenses(out_dir: str | os.PathLike[str], sources: Sequence[str]) -> Path:
    """Write ``LICENSES.md`` next to the images so the attribution travels with the data."""
    path = Path(out_dir) / "LICENSES.md"
    _write_text(path, licenses_markdown(sources))
    return path


def summarize(records: Sequence[Mapping[str, Any]]) -> str:
    """Counts per source x split and per category/subcategory, for the command's output."""
    if not records:
        return "no images written (check --categories)"
    lines = [f"{len(records)} images, {len({r['unified'] for r in records})} distinct emoji"]
    by_source = Counter((r["source"], r["split"]) for r in records)
    width = max(10, *(len(r["source"]) + 2 for r in records))
    lines.append(f"{'source':<{width}}" + "".join(f"{s:>8}" for s in SPLITS) + f"{'total':>8}")
    for source in dict.fromkeys(r["source"] for r in records):
        counts = [by_source[(source, s)] for s in SPLITS]
        lines.append(f"{source:<{width}}" + "".join(f"{c:>8}" for c in counts) + f"{sum(counts):>8}")
    by_group = Counter((r["category"], r["subcategory"], r["split"]) for r in records)
    groups = dict.fromkeys((r["category"], r["subcategory"]) for r in records)
    lines.append(f"{'category / subcategory':<42}" + "".join(f"{s:>8}" for s in SPLITS))
    for cat, sub in groups:
        label = f"{cat} / {sub}"
        lines.append(f"{label:<42}" + "".join(f"{by_group[(cat, sub, s)]:>8}" for s in SPLITS))
    return "\n".join(lines)
