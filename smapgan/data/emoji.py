"""Emoji faces dataset for the bundled default model.

The openly licensed emoji sets (Noto: Apache-2.0, Twemoji: CC-BY-4.0) are published on npm by the
``emoji-datasource-*`` packages, the one public image source reachable from an offline-ish machine.
The network part (:func:`fetch_tarballs`, a thin ``npm pack`` wrapper) is kept apart from the
conversion (:func:`build_dataset`, which only reads tarballs) so the latter is testable offline.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

EMOJI_DATASOURCE_VERSION = "16.0.0"
NATIVE_SIZE = 64
DEFAULT_CACHE_DIR = Path("~/.cache/smapgan/npm")

#: Default selection: every "Smileys & Emotion" face (subcategories ``face-*``), the cat faces, and
#: the mammal heads. Each selector is ``GROUP[:NAME]``: ``GROUP`` is a glob on the category or the
#: subcategory, ``NAME`` an optional glob on any short name or on the Unicode name written as a
#: short name ("DOG FACE" -> ``dog_face``; the short name of DOG FACE is just ``dog``). The name
#: match matters: only 7 mammals have a short name ending in ``_face``, 18 have a name that does.
DEFAULT_SELECTORS: tuple[str, ...] = ("face-*", "cat-face", "animal-mammal:*_face")


@dataclass(frozen=True)
class EmojiSource:
    """One openly licensed emoji image set and where it comes from."""

    name: str  # the set name in emoji.json (``has_img_<name>``) and in ``img/<name>/64/``
    package: str
    title: str
    license: str
    license_url: str
    attribution: str


SOURCES: dict[str, EmojiSource] = {
    "google": EmojiSource(
        name="google",
        package="emoji-datasource-google",
        title="Noto Emoji",
        license="Apache-2.0",
        license_url="https://github.com/googlefonts/noto-emoji/blob/main/LICENSE",
        attribution="Noto Emoji by Google, Apache License 2.0",
    ),
    "twitter": EmojiSource(
        name="twitter",
        package="emoji-datasource-twitter",
        title="Twemoji",
        license="CC-BY-4.0",
        license_url="https://github.com/jdecked/twemoji/blob/main/LICENSE-GRAPHICS",
        attribution="Twemoji by Twitter, Inc and other contributors, CC-BY 4.0",
    ),
}

#: Sets that emoji-datasource also ships but that are not openly licensed: never converted.
REFUSED_SOURCES: dict[str, str] = {
    "apple": "Apple emoji images are (c) Apple Inc. and not licensed for reuse",
    "facebook": "Facebook emoji images have no clear license",
}

SPLITS = ("train", "val")


class EmojiDataError(RuntimeError):
    """A user-facing failure (missing npm, offline, corrupt tarball) with an actionable message."""


def parse_sources(text: str | Iterable[str]) -> list[str]:
    """Validate source names, refusing the sets whose images may not be redistributed."""
    names = [s.strip().lower() for s in (text.split(",") if isinstance(text, str) else text)]
    names = [s for s in names if s]
    if not names:
        raise ValueError("no emoji source given; choose from: " + ", ".join(SOURCES))
    for name in names:
        if name in REFUSED_SOURCES:
            raise ValueError(
                f"refusing emoji source {name!r}: {REFUSED_SOURCES[name]}. "
                f"Use only openly licensed sets: {', '.join(SOURCES)}"
            )
        if name not in SOURCES:
            raise ValueError(f"unknown emoji source {name!r}; choose from: {', '.join(SOURCES)}")
    return list(dict.fromkeys(names))


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
    rgba = image.convert("RGBA")
    flat = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    rgb = flat.convert("RGB")
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.LANCZOS)
    return rgb


def tarball_name(source: str, version: str = EMOJI_DATASOURCE_VERSION) -> str:
    """File name ``npm pack`` gives the source's package tarball."""
    return f"{SOURCES[source].package}-{version}.tgz"


def fetch_tarballs(
    sources: Sequence[str],
    cache_dir: str | os.PathLike[str] = DEFAULT_CACHE_DIR,
    version: str = EMOJI_DATASOURCE_VERSION,
    npm: str = "npm",
) -> dict[str, Path]:
    """Get each source's package tarball with ``npm pack``, reusing tarballs already cached."""
    cache = Path(cache_dir).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for source in parse_sources(sources):
        path = cache / tarball_name(source, version)
        if not path.is_file():
            _npm_pack(f"{SOURCES[source].package}@{version}", cache, npm)
            if not path.is_file():
                raise EmojiDataError(f"`npm pack` did not produce {path}")
        out[source] = path
    return out


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


def read_tarball(
    path: str | os.PathLike[str], source: str
) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """Read emoji.json and the individual 64 px PNGs (not the sheets) in one streaming pass."""
    prefix = f"package/img/{source}/{NATIVE_SIZE}/"
    entries: list[dict[str, Any]] | None = None
    pngs: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                name = member.name.removeprefix("./")
                if name == "package/emoji.json":
                    entries = json.loads(_read_member(tar, member))
                elif name.startswith(prefix) and name.endswith(".png"):
                    rest = name[len(prefix) :]
                    if "/" not in rest:
                        pngs[rest] = _read_member(tar, member)
    except (OSError, tarfile.TarError, EOFError, json.JSONDecodeError) as exc:
        raise EmojiDataError(f"cannot read {path}: {exc}; delete it to download it again") from exc
    if entries is None:
        raise EmojiDataError(f"{path} has no package/emoji.json; not an emoji-datasource tarball?")
    if not pngs:
        raise EmojiDataError(f"{path} has no {prefix}*.png; is it emoji-datasource-{source}?")
    return entries, pngs


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    if handle is None:
        raise EmojiDataError(f"cannot read {member.name}")
    with handle:
        return handle.read()


def build_dataset(
    tarballs: Mapping[str, str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    selectors: Sequence[str] = DEFAULT_SELECTORS,
    size: int = NATIVE_SIZE,
    val_fraction: float = 0.1,
) -> list[dict[str, Any]]:
    """Convert emoji-datasource tarballs (``{source: path}``) into ``out_dir``; return the records.

    Writes ``images/<source>/<unified>.png`` (RGB on white), ``metadata.jsonl`` and ``LICENSES.md``.
    """
    sources = parse_sources(list(tarballs))
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    out = Path(out_dir)
    records: list[dict[str, Any]] = []
    for source in sources:
        info = SOURCES[source]
        entries, pngs = read_tarball(tarballs[source], source)
        image_dir = out / "images" / source
        image_dir.mkdir(parents=True, exist_ok=True)
        written: set[str] = set()
        picked = [e for e in entries if e.get(f"has_img_{source}") and matches(e, selectors)]
        for entry in sorted(picked, key=lambda e: (e.get("sort_order", 0), e["unified"])):
            unified = str(entry["unified"]).upper()
            data = pngs.get(str(entry.get("image", "")))
            if data is None:
                continue  # flagged as present but missing from this tarball: skip, never substitute
            with Image.open(io.BytesIO(data)) as img:
                rgb = composite_on_white(img, size)
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
                    "license": info.license,
                    "attribution": info.attribution,
                    "split": split_of(unified, val_fraction),
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
        "Images come from the npm packages `emoji-datasource-<set>` "
        f"{EMOJI_DATASOURCE_VERSION} (the package code is MIT; the images keep their own licenses "
        "below). They were composited onto a white background"
        " and possibly resized; no other changes were made.",
        "",
    ]
    for source in parse_sources(sources):
        info = SOURCES[source]
        lines += [
            f"## {info.title} (`images/{source}/`)",
            "",
            f"- License: {info.license} ({info.license_url})",
            f"- Attribution: {info.attribution}",
            f"- Package: `{info.package}@{EMOJI_DATASOURCE_VERSION}`",
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
    lines.append(f"{'source':<10}" + "".join(f"{s:>8}" for s in SPLITS) + f"{'total':>8}")
    for source in dict.fromkeys(r["source"] for r in records):
        counts = [by_source[(source, s)] for s in SPLITS]
        lines.append(f"{source:<10}" + "".join(f"{c:>8}" for c in counts) + f"{sum(counts):>8}")
    by_group = Counter((r["category"], r["subcategory"], r["split"]) for r in records)
    groups = dict.fromkeys((r["category"], r["subcategory"]) for r in records)
    lines.append(f"{'category / subcategory':<42}" + "".join(f"{s:>8}" for s in SPLITS))
    for cat, sub in groups:
        label = f"{cat} / {sub}"
        lines.append(f"{label:<42}" + "".join(f"{by_group[(cat, sub, s)]:>8}" for s in SPLITS))
    return "\n".join(lines)
