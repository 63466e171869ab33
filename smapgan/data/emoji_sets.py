"""The openly licensed emoji sets smapgan trains on, and how to read a drawing from each package.

Three package layouts are read, all from ``npm pack`` tarballs (never unpacked to disk):

* ``datasource``: ``emoji-datasource-<set>``, 64 px PNGs named by ``emoji.json``'s ``image``;
* ``iconify``: ``@iconify-json/<set>``, SVG bodies in ``icons.json`` (named by CLDR name; some sets
  add ``chars.json``, a code point -> name map), rendered at any resolution;
* ``assets``: ``@lobehub/fluent-emoji-3d``, one bitmap per code point under ``assets/``.

Each set records the license its own package states (``info.json`` or ``package.json``), checked
when the set was added; OpenMoji (CC-BY-SA: ShareAlike would bind the weights), Apple, Facebook and
Samsung are refused by name.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image

from .raster import RasterError, render_svg


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
