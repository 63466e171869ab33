"""The bundled model's training data: emoji faces of openly licensed sets, framed alike on white.

    pip install "resvg-py>=0.5,<0.6"          # renders the vector sets (tested with 0.5.0)
    python scripts/emoji_dataset.py --out /work/data/emoji --size 128 --holdout-style emojione

Writes ``OUT/images/<source>/<unified>.png``, ``OUT/metadata.jsonl`` and ``OUT/LICENSES.md``; the
folder is what ``smapgan train --data`` and the bundled model's scripts read.

Openly licensed emoji sets are published on npm (the one public image source reachable from an
offline-ish machine), in three package layouts, read from ``npm pack`` tarballs (never unpacked):

* ``datasource``: ``emoji-datasource-<set>``, 64 px PNGs named by ``emoji.json``'s ``image``;
* ``iconify``: ``@iconify-json/<set>``, SVG bodies in ``icons.json`` (named by CLDR name; some sets
  add ``chars.json``, a code point -> name map), rendered at any resolution;
* ``assets``: ``@lobehub/fluent-emoji-3d``, one bitmap per code point under ``assets/``.

Each set records the license its own package states (``info.json`` or ``package.json``), checked
when the set was added; OpenMoji (CC-BY-SA: ShareAlike would bind the weights), Apple, Facebook and
Samsung are refused by name. Emoji are chosen by name and category from ``emoji-datasource``'s
``emoji.json``. The network part (:func:`fetch_tarballs`, a thin ``npm pack`` wrapper) is kept apart
from the conversion (:func:`build_dataset`, which only reads tarballs) so the latter is testable
offline (``tests/test_emoji_data.py``).
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from smapgan.intake.images import to_rgb


# --------------------------------------------------------------------------- framing
# Emoji sets pad their drawings differently (Twemoji fills its view box, Noto leaves a margin,
# Fluent 3D has a shadow margin). A model learns faces, not margins, so every image is cropped to
# the drawing's opaque bounding box and centred in a square where it fills FILL of the side,
# the fraction measured on the 64 px Noto PNGs the first bundled model was trained on.

#: Share of the side the drawing's larger extent takes (Noto's 64 px PNGs: 60 of 64 pixels).
FILL = 0.94
#: Alpha at or below this counts as empty when measuring the drawing (anti-aliasing haze).
ALPHA_FLOOR = 8
#: SVGs are rasterized at this multiple of the output size, then reduced with Lanczos.
SUPERSAMPLE = 4


class RasterError(ValueError):
    """An SVG that cannot be rendered, or a drawing with nothing opaque in it."""


def render_svg(svg: str, pixels: int) -> Image.Image:
    """Rasterize ``svg`` to an RGBA image whose larger side is ``pixels``.

    resvg (through the ``resvg-py`` wheel) rather than CairoSVG: it is one self-contained wheel
    with no system library, and resvg is the renderer that passes most of the SVG test suite
    (gradients, masks and filters are common in Fluent and Noto).
    """
    import resvg_py  # needed by the vector sets only (see the usage above)

    try:
        png = resvg_py.svg_to_bytes(svg_string=svg, width=pixels, height=pixels)
    except (ValueError, RuntimeError) as exc:
        raise RasterError(f"cannot render SVG: {exc}") from exc
    with Image.open(io.BytesIO(bytes(png))) as img:
        return img.convert("RGBA")


def frame_on_white(image: Image.Image, size: int, fill: float = FILL) -> Image.Image:
    """Crop to the opaque drawing, centre it in a square where it fills ``fill``, flatten on white.

    Compositing happens before the resize so that edges never pick up the transparent colour.
    """
    rgba = image.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"))
    ys, xs = np.nonzero(alpha > ALPHA_FLOOR)
    if len(xs) == 0:
        raise RasterError("the drawing is fully transparent")
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    side = max(1, round(max(x1 - x0, y1 - y0) / fill))
    canvas = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    left = (side - (x1 - x0)) // 2
    top = (side - (y1 - y0)) // 2
    canvas.alpha_composite(rgba.crop((x0, y0, x1, y1)), (left, top))
    rgb = canvas.convert("RGB")
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.LANCZOS)
    return rgb

# --------------------------------------------------------------------------- the sets and their readers

class EmojiDataError(RuntimeError):
    """A user-facing failure (missing npm, offline, corrupt tarball) with an actionable message."""


@dataclass(frozen=True)
class EmojiSet:
    """One openly licensed emoji design and the npm package it comes from."""

    name: str  # our name for it (``--sources``); datasource sets: the set name in emoji.json
    layout: str  # "datasource", "iconify" or "assets"
    package: str
    version: str
    title: str
    license: str  # SPDX id, as the package states it
    license_url: str
    attribution: str
    license_source: str  # where in the package the license was read

    @property
    def spec(self) -> str:
        """The ``npm pack`` argument."""
        return f"{self.package}@{self.version}"

    @property
    def tarball(self) -> str:
        """File name ``npm pack`` gives this package's tarball."""
        return self.package.lstrip("@").replace("/", "-") + f"-{self.version}.tgz"


def _iconify(name: str, version: str, title: str, spdx: str, url: str, author: str) -> EmojiSet:
    return EmojiSet(
        name=name if name != "fluent-emoji" else "fluent-color",
        layout="iconify",
        package=f"@iconify-json/{name}",
        version=version,
        title=title,
        license=spdx,
        license_url=url,
        attribution=f"{title} by {author}, {spdx}",
        license_source="info.json `license` (and package.json `license`)",
    )


SETS: dict[str, EmojiSet] = {
    s.name: s
    for s in (
        EmojiSet(
            "google", "datasource", "emoji-datasource-google", "16.0.0", "Noto Emoji (PNG)", "Apache-2.0",
            "https://github.com/googlefonts/noto-emoji/blob/main/LICENSE",
            "Noto Emoji by Google, Apache License 2.0", "README.md (image licenses)",
        ),
        EmojiSet(
            "twitter", "datasource", "emoji-datasource-twitter", "16.0.0", "Twemoji (PNG)", "CC-BY-4.0",
            "https://github.com/jdecked/twemoji/blob/main/LICENSE-GRAPHICS",
            "Twemoji by Twitter, Inc and other contributors, CC-BY 4.0", "README.md (image licenses)",
        ),
        _iconify("noto", "1.2.9", "Noto Emoji", "Apache-2.0",
                 "https://github.com/googlefonts/noto-emoji/blob/main/svg/LICENSE", "Google Inc"),
        _iconify("noto-v1", "1.2.5", "Noto Emoji v1 (blob)", "Apache-2.0",
                 "https://github.com/googlefonts/noto-emoji/blob/main/svg/LICENSE", "Google Inc"),
        _iconify("twemoji", "1.2.5", "Twemoji", "CC-BY-4.0",
                 "https://creativecommons.org/licenses/by/4.0/", "Twitter, Inc and other contributors"),
        _iconify("fluent-emoji-flat", "1.2.6", "Fluent Emoji Flat", "MIT",
                 "https://github.com/microsoft/fluentui-emoji/blob/main/LICENSE", "Microsoft Corporation"),
        _iconify("fluent-emoji", "1.2.7", "Fluent Emoji (color)", "MIT",
                 "https://github.com/microsoft/fluentui-emoji/blob/main/LICENSE", "Microsoft Corporation"),
        EmojiSet(
            "fluent-3d", "assets", "@lobehub/fluent-emoji-3d", "1.1.0", "Fluent Emoji 3D", "MIT",
            "https://github.com/microsoft/fluentui-emoji/blob/main/LICENSE",
            "Fluent Emoji 3D by Microsoft Corporation, MIT", "package.json `license`",
        ),
        _iconify("fxemoji", "1.2.2", "Firefox OS Emoji", "Apache-2.0",
                 "https://mozilla.github.io/fxemoji/LICENSE.md", "Mozilla"),
        _iconify("emojione", "1.2.3", "EmojiOne (v2)", "CC-BY-4.0",
                 "https://creativecommons.org/licenses/by/4.0/", "Emoji One"),
        _iconify("streamline-emojis", "1.2.4", "Streamline Emojis", "CC-BY-4.0",
                 "https://creativecommons.org/licenses/by/4.0/", "Streamline"),
    )
}

#: The catalogue of names and categories, for sets that carry none (emoji.json without images).
CATALOGUE = EmojiSet(
    "catalogue", "catalogue", "emoji-datasource", "16.0.0", "emoji-datasource", "MIT",
    "https://github.com/iamcal/emoji-data/blob/master/LICENSE", "", "package.json `license`",
)

#: Sets that are never converted, and why.
REFUSED: dict[str, str] = {
    "apple": "Apple emoji images are (c) Apple Inc. and not licensed for reuse",
    "facebook": "Facebook emoji images have no clear license",
    "samsung": "Samsung emoji images are not licensed for reuse",
    "openmoji": "OpenMoji is CC-BY-SA-4.0: ShareAlike would bind the weights and every image made with them",
}


def parse_sets(text: str | Iterable[str]) -> list[str]:
    """Validate set names, refusing those whose images may not be redistributed."""
    names = [s.strip().lower() for s in (text.split(",") if isinstance(text, str) else text)]
    names = [s for s in names if s]
    if not names:
        raise ValueError("no emoji source given; choose from: " + ", ".join(SETS))
    for name in names:
        if name in REFUSED:
            raise ValueError(
                f"refusing emoji source {name!r}: {REFUSED[name]}. Use only openly licensed sets: "
                + ", ".join(SETS)
            )
        if name not in SETS:
            raise ValueError(f"unknown emoji source {name!r}; choose from: {', '.join(SETS)}")
    return list(dict.fromkeys(names))


def code_keys(unified: str) -> list[str]:
    """Spellings of a code point sequence that packages use: with and without VS16 (FE0F)."""
    full = unified.strip().lower()
    bare = "-".join(p for p in full.split("-") if p != "fe0f")
    return list(dict.fromkeys([full, bare]))


def name_keys(entry: Mapping[str, Any], cldr: Mapping[str, str]) -> list[str]:
    """Icon names an emoji may have in an Iconify set, most specific first."""
    keys = [cldr[k] for k in code_keys(str(entry.get("unified", ""))) if k in cldr]
    name = str(entry.get("name") or "").lower()
    if name:
        keys.append("-".join(name.replace("-", " ").split()))
    for short in entry.get("short_names") or []:
        keys += [short.lower().replace("_", "-"), short.lower().replace("_", "").replace("-", "")]
    return list(dict.fromkeys(k for k in keys if k))


def _read_members(path: str | os.PathLike[str], wanted) -> dict[str, bytes]:
    """Members whose name ``wanted(name)`` accepts, read in one streaming pass."""
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if member.isfile() and wanted(name):
                    handle = tar.extractfile(member)
                    if handle is None:
                        raise EmojiDataError(f"cannot read {name} in {path}")
                    with handle:
                        out[name] = handle.read()
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise EmojiDataError(f"cannot read {path}: {exc}; delete it to download it again") from exc
    return out


def read_catalogue(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """``emoji.json`` of an emoji-datasource tarball (with or without images)."""
    members = _read_members(path, lambda n: n == "package/emoji.json")
    if "package/emoji.json" not in members:
        raise EmojiDataError(f"{path} has no package/emoji.json; not an emoji-datasource tarball?")
    try:
        return json.loads(members["package/emoji.json"])
    except json.JSONDecodeError as exc:
        raise EmojiDataError(f"cannot read {path}: {exc}; delete it to download it again") from exc


class SetReader:
    """Finds one emoji's drawing in one set's tarball; ``drawing`` returns RGBA or None."""

    def __init__(self, emoji_set: EmojiSet, path: str | os.PathLike[str]) -> None:
        self.set = emoji_set
        self.path = path

    def names(self) -> dict[str, str]:
        """The set's own code point -> icon name map (empty when it has none)."""
        return {}

    def drawing(self, entry: Mapping[str, Any], pixels: int, cldr: Mapping[str, str]) -> Image.Image | None:
        raise NotImplementedError


class DatasourceReader(SetReader):
    """emoji-datasource PNGs: 64 px only, named by the catalogue's ``image`` field."""

    def __init__(self, emoji_set: EmojiSet, path: str | os.PathLike[str]) -> None:
        super().__init__(emoji_set, path)
        prefix = f"package/img/{emoji_set.name}/64/"
        members = _read_members(
            path, lambda n: n == "package/emoji.json" or (
                n.startswith(prefix) and n.endswith(".png") and "/" not in n[len(prefix):])
        )
        # this package's own emoji.json says which images it has (the catalogue may be another's)
        own = json.loads(members.pop("package/emoji.json", b"[]"))
        self.entries = {str(e.get("unified", "")).upper(): e for e in own}
        self.pngs = {name[len(prefix):]: data for name, data in members.items()}
        if not self.pngs:
            raise EmojiDataError(f"{path} has no {prefix}*.png; is it {emoji_set.package}?")

    def drawing(self, entry, pixels, cldr):
        entry = self.entries.get(str(entry.get("unified", "")).upper(), entry)
        if not entry.get(f"has_img_{self.set.name}"):
            return None
        data = self.pngs.get(str(entry.get("image", "")))
        if data is None:
            return None  # flagged as present but missing from this tarball: skip, never substitute
        with Image.open(io.BytesIO(data)) as img:
            return img.convert("RGBA")


class IconifyReader(SetReader):
    """Iconify JSON: each icon's SVG body and view box; aliases resolved when untransformed."""

    def __init__(self, emoji_set: EmojiSet, path: str | os.PathLike[str]) -> None:
        super().__init__(emoji_set, path)
        files = ("package/icons.json", "package/chars.json", "package/info.json")
        members = _read_members(path, lambda n: n in files)
        if "package/icons.json" not in members:
            raise EmojiDataError(f"{path} has no package/icons.json; not an @iconify-json tarball?")
        try:
            self.data = json.loads(members["package/icons.json"])
            self.chars = json.loads(members.get("package/chars.json", b"{}"))
            info = json.loads(members.get("package/info.json", b"{}"))
        except json.JSONDecodeError as exc:
            raise EmojiDataError(f"cannot read {path}: {exc}; delete it to download it again") from exc
        stated = (info.get("license") or {}).get("spdx")
        if stated and stated != emoji_set.license:
            raise EmojiDataError(
                f"{path} states license {stated!r}, not {emoji_set.license!r} as recorded; "
                "check the package before training on it"
            )

    def names(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.chars.items()}

    def svg(self, name: str) -> str | None:
        icons, aliases = self.data.get("icons", {}), self.data.get("aliases", {})
        alias = aliases.get(name)
        if name not in icons and alias is not None:
            if set(alias) - {"parent"}:
                return None  # a flipped or rotated alias: not the emoji's own drawing
            name = alias["parent"]
        icon = icons.get(name)
        if icon is None:
            return None
        width = icon.get("width", self.data.get("width", 16))
        height = icon.get("height", self.data.get("height", 16))
        left, top = icon.get("left", 0), icon.get("top", 0)
        return (
            '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'viewBox="{left} {top} {width} {height}" width="{width}" height="{height}">'
            f"{icon['body']}</svg>"
        )

    def drawing(self, entry, pixels, cldr):
        for key in name_keys(entry, {**cldr, **self.names()}):
            svg = self.svg(key)
            if svg is not None:
                try:
                    return render_svg(svg, pixels)
                except RasterError:
                    return None
        return None


class AssetsReader(SetReader):
    """One bitmap per code point under ``package/assets/`` (lobehub's Fluent 3D: WebP)."""

    def __init__(self, emoji_set: EmojiSet, path: str | os.PathLike[str]) -> None:
        super().__init__(emoji_set, path)
        members = _read_members(path, lambda n: n.startswith("package/assets/") and "." in n)
        self.files = {
            name.rsplit("/", 1)[-1].rsplit(".", 1)[0].lower(): data for name, data in members.items()
        }
        if not self.files:
            raise EmojiDataError(f"{path} has no package/assets/*; is it {emoji_set.package}?")

    def drawing(self, entry, pixels, cldr):
        for key in code_keys(str(entry.get("unified", ""))):
            data = self.files.get(key)
            if data is not None:
                with Image.open(io.BytesIO(data)) as img:
                    return img.convert("RGBA")
        return None


READERS = {"datasource": DatasourceReader, "iconify": IconifyReader, "assets": AssetsReader}


def open_set(name: str, path: str | os.PathLike[str]) -> SetReader:
    """The reader for set ``name``'s tarball at ``path``."""
    emoji_set = SETS[name]
    return READERS[emoji_set.layout](emoji_set, path)

# --------------------------------------------------------------------------- selection, splits, conversion

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


def main(argv: Sequence[str] | None = None) -> int:
    """Fetch the sets (or reuse cached tarballs) and convert them; bad input prints one line, returns 2."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--cache", default=str(DEFAULT_CACHE_DIR),
                        help="where npm tarballs are kept and reused (default: %(default)s)")
    parser.add_argument(
        "--categories", default=None,
        help=("comma-separated GROUP[:NAME] globs; GROUP matches the category or subcategory, NAME any "
              "short name or the Unicode name as a short name (default: face-*,cat-face,animal-mammal:*_face)"),
    )
    parser.add_argument(
        "--sources",
        default="noto,noto-v1,twemoji,fluent-emoji-flat,fluent-color,fluent-3d,fxemoji,emojione,streamline-emojis",
        help="image sets, comma-separated; also the PNG sets google and twitter (default: %(default)s)",
    )
    parser.add_argument("--holdout-style", default=None,
                        help="one source held out whole (split 'style'), for figures on a style never trained on")
    parser.add_argument("--size", type=int, default=NATIVE_SIZE, help="output size in pixels (default: %(default)s)")
    parser.add_argument("--val-fraction", type=float, default=0.1,
                        help="fraction of emoji (not images) held out, by a hash of the code point (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        sources = parse_sets(args.sources)
        tarballs = fetch_tarballs(sources, args.cache)
        png_sets = [s for s in sources if SETS[s].layout == "datasource"]
        catalogue = tarballs[png_sets[0]] if png_sets else fetch_catalogue(args.cache)
        records = build_dataset(
            tarballs, args.out, selectors=parse_selectors(args.categories), size=args.size,
            val_fraction=args.val_fraction, catalogue=catalogue, holdout_style=args.holdout_style,
        )
    except (ValueError, EmojiDataError) as exc:
        print(f"emoji_dataset: error: {exc}", file=sys.stderr)
        return 2
    print(summarize(records))
    print(f"wrote {args.out}/metadata.jsonl and {args.out}/LICENSES.md")
    return 0 if records else 1


if __name__ == "__main__":
    sys.exit(main())
