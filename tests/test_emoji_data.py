"""Offline tests of the emoji dataset recipe (scripts/emoji_dataset.py), on tiny fake npm tarballs."""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))  # scripts are not a package
import emoji_dataset as emoji  # noqa: E402

RED = (255, 0, 0, 255)

# (unified, name, short_names, category, subcategory)
ENTRIES = [
    ("1F600", "GRINNING FACE", ["grinning"], "Smileys & Emotion", "face-smiling"),
    ("1F60D", "SMILING FACE WITH HEART-SHAPED EYES", ["heart_eyes"], "Smileys & Emotion", "face-affection"),
    ("1F610", "NEUTRAL FACE", ["neutral_face"], "Smileys & Emotion", "face-neutral-skeptical"),
    ("1F638", "GRINNING CAT FACE WITH SMILING EYES", ["smile_cat"], "Smileys & Emotion", "cat-face"),
    ("1F436", "DOG FACE", ["dog"], "Animals & Nature", "animal-mammal"),
    ("1F43C", "PANDA FACE", ["panda_face"], "Animals & Nature", "animal-mammal"),
    ("1F415", "DOG", ["dog2"], "Animals & Nature", "animal-mammal"),
    ("2764-FE0F", "HEAVY BLACK HEART", ["heart"], "Smileys & Emotion", "heart"),
    ("1F648", "SEE-NO-EVIL MONKEY", ["see_no_evil"], "Smileys & Emotion", "monkey-face"),
]
DEFAULT_PICKED = {"1F600", "1F60D", "1F610", "1F638", "1F436", "1F43C"}


def _png(pixels: dict[tuple[int, int], tuple[int, int, int, int]], size: int = 64) -> bytes:
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))  # transparent *black*: must not show
    for xy, rgba in pixels.items():
        img.putpixel(xy, rgba)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def make_tarball(path: Path, source: str, missing: frozenset[str] = frozenset()) -> Path:
    """A stand-in for emoji-datasource-<source>: emoji.json, 64 px PNGs and a decoy sheet."""
    entries = []
    for order, (unified, name, short_names, category, subcategory) in enumerate(ENTRIES):
        entries.append(
            {
                "name": name,
                "unified": unified,
                "image": unified.lower() + ".png",
                "short_name": short_names[0],
                "short_names": short_names,
                "category": category,
                "subcategory": subcategory,
                "sort_order": order,
                **{f"has_img_{s}": unified not in missing for s in ("apple", "google", "twitter", "facebook")},
            }
        )
    with tarfile.open(path, "w:gz") as tar:
        _add(tar, "package/package.json", b'{"name": "emoji-datasource-%s"}' % source.encode())
        _add(tar, "package/emoji.json", json.dumps(entries).encode())
        _add(tar, f"package/img/{source}/sheets/64.png", _png({}, size=8))
        for unified, *_ in ENTRIES:
            pixels = {(10, 10): RED, (20, 20): (0, 0, 0, 128)}
            _add(tar, f"package/img/{source}/64/{unified.lower()}.png", _png(pixels))
    return path


@pytest.fixture
def tarballs(tmp_path: Path) -> dict[str, Path]:
    return {
        "google": make_tarball(tmp_path / emoji.SETS["google"].tarball, "google"),
        "twitter": make_tarball(tmp_path / emoji.SETS["twitter"].tarball, "twitter", frozenset({"1F610"})),
    }


def _read_metadata(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]


def test_composite_onto_white() -> None:
    img = Image.open(io.BytesIO(_png({(10, 10): RED, (20, 20): (0, 0, 0, 128)})))
    rgb = emoji.composite_on_white(img)
    assert rgb.mode == "RGB" and rgb.size == (64, 64)
    assert rgb.getpixel((0, 0)) == (255, 255, 255)  # transparent black -> white, no black bleed
    assert rgb.getpixel((10, 10)) == (255, 0, 0)
    assert all(abs(c - 127) <= 1 for c in rgb.getpixel((20, 20)))
    assert emoji.composite_on_white(img, size=32).size == (32, 32)


def test_build_dataset_writes_images_metadata_and_licenses(tarballs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    records = emoji.build_dataset(tarballs, out, val_fraction=0.5)
    assert records == _read_metadata(out)
    google = {r["unified"] for r in records if r["source"] == "google"}
    twitter = {r["unified"] for r in records if r["source"] == "twitter"}
    assert google == DEFAULT_PICKED
    assert twitter == DEFAULT_PICKED - {"1F610"}  # has_img_twitter false: skipped, not substituted
    for r in records:
        assert set(r) >= {"file", "name", "short_names", "category", "subcategory", "source",
                          "license", "attribution", "split"}
        assert r["file"] == f"images/{r['source']}/{r['unified']}.png"
        with Image.open(out / r["file"]) as img:
            assert img.mode == "RGB" and img.size == (64, 64)
            assert img.getpixel((0, 0)) == (255, 255, 255)
            assert img.getpixel((10, 10)) == (255, 0, 0)
        assert r["license"] == {"google": "Apache-2.0", "twitter": "CC-BY-4.0"}[r["source"]]
        assert r["split"] in ("train", "val")
    dog = next(r for r in records if r["unified"] == "1F436")
    assert dog["name"] == "dog face" and dog["short_names"] == ["dog"]
    assert dog["category"] == "Animals & Nature" and dog["subcategory"] == "animal-mammal"
    licenses = (out / "LICENSES.md").read_text()
    assert "Twemoji by Twitter, Inc and other contributors, CC-BY 4.0" in licenses
    assert "Noto Emoji by Google, Apache License 2.0" in licenses


def test_rerun_with_narrower_selection_drops_stale_images(tarballs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    emoji.build_dataset({"google": tarballs["google"]}, out)
    emoji.build_dataset({"google": tarballs["google"]}, out, selectors=("cat-face",), size=32)
    assert sorted(p.name for p in (out / "images" / "google").iterdir()) == ["1F638.png"]
    assert Image.open(out / "images/google/1F638.png").size == (32, 32)


def test_split_is_deterministic_and_shared_across_sources(tarballs: dict[str, Path], tmp_path: Path) -> None:
    a = emoji.build_dataset(tarballs, tmp_path / "a", val_fraction=0.5)
    b = emoji.build_dataset(tarballs, tmp_path / "b", val_fraction=0.5)
    assert [r["split"] for r in a] == [r["split"] for r in b]
    by_code: dict[str, set[str]] = {}
    for r in a:
        by_code.setdefault(r["unified"], set()).add(r["split"])
    assert all(len(splits) == 1 for splits in by_code.values())
    assert emoji.split_of("1f600", 0.5) == emoji.split_of("1F600", 0.5)
    codes = [f"{i:05X}" for i in range(0x1F000, 0x1F400)]
    n_val = sum(emoji.split_of(c, 0.1) == "val" for c in codes)
    assert 60 < n_val < 150  # ~10% of 1024
    assert all(emoji.split_of(c, 0.0) == "train" for c in codes)


def test_category_selectors() -> None:
    def picked(selectors: tuple[str, ...]) -> set[str]:
        keys = ("unified", "name", "short_names", "category", "subcategory")
        return {e[0] for e in ENTRIES if emoji.matches(dict(zip(keys, e)), selectors)}

    assert picked(emoji.DEFAULT_SELECTORS) == DEFAULT_PICKED
    assert emoji.parse_selectors(None) == emoji.DEFAULT_SELECTORS
    assert picked(emoji.parse_selectors("face-affection, cat-face")) == {"1F60D", "1F638"}
    assert picked(emoji.parse_selectors("Animals & Nature")) == {"1F436", "1F43C", "1F415"}
    assert picked(emoji.parse_selectors("animal-mammal:dog*")) == {"1F436", "1F415"}


@pytest.mark.parametrize("name", ["apple", "facebook", "google,Apple"])
def test_refuses_unlicensed_sets(name: str, tarballs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="refusing emoji source"):
        emoji.parse_sets(name)
    with pytest.raises(ValueError, match="refusing"):
        emoji.build_dataset({"apple": tarballs["google"]}, tmp_path / "out")
    with pytest.raises(ValueError, match="refusing"):
        emoji.fetch_tarballs(["facebook"], tmp_path / "cache", npm="npm-must-not-run")
    assert not (tmp_path / "out").exists()


def test_missing_npm_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(emoji.EmojiDataError, match=r"npm pack emoji-datasource-google@16\.0\.0"):
        emoji.fetch_tarballs(["google"], tmp_path, npm="smapgan-no-such-npm")


def test_cached_tarballs_are_reused_without_npm(tarballs: dict[str, Path], tmp_path: Path) -> None:
    found = emoji.fetch_tarballs(["google", "twitter"], tmp_path, npm="smapgan-no-such-npm")
    assert found == tarballs


def test_cli_offline_with_cache(tarballs: dict[str, Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert emoji.main(["--out", str(out), "--cache", str(tmp_path), "--sources", "google"]) == 0
    assert "google" in capsys.readouterr().out
    assert {r["source"] for r in _read_metadata(out)} == {"google"}
    assert emoji.main(["--out", str(out), "--cache", str(tmp_path), "--sources", "apple"]) == 2
    assert "refusing emoji source 'apple'" in capsys.readouterr().err


# --- vector (Iconify) and bitmap-asset sets, and the held-out style -------------------------------

CIRCLE = '<circle cx="16" cy="16" r="8" fill="#ff0000"/>'  # a 16-unit drawing in a 32-unit view box


def make_catalogue(path: Path) -> Path:
    """A stand-in for emoji-datasource (emoji.json only, no images)."""
    return make_tarball(path, "none")


def make_iconify(path: Path, prefix: str, spdx: str, chars: bool) -> Path:
    """A stand-in for @iconify-json/<prefix>: icons by CLDR name, optional code point map.

    Without a map (emojione), 1F60D is found only through the CLDR name another set maps it to.
    """
    icons = {
        "grinning-face": {"body": CIRCLE},
        "smiling-face-with-heart-eyes": {"body": CIRCLE.replace("#ff0000", "#00ff00")},
        "dog-face": {"body": CIRCLE},
    }
    data = {"prefix": prefix, "icons": icons, "aliases": {"dog-flipped": {"parent": "dog-face", "hFlip": True}},
            "width": 32, "height": 32}
    with tarfile.open(path, "w:gz") as tar:
        _add(tar, "package/icons.json", json.dumps(data).encode())
        _add(tar, "package/info.json", json.dumps({"license": {"spdx": spdx}}).encode())
        if chars:
            _add(tar, "package/chars.json", json.dumps({"1f600": "grinning-face", "1f60d": "smiling-face-with-heart-eyes"}).encode())
    return path


def make_assets(path: Path) -> Path:
    """A stand-in for @lobehub/fluent-emoji-3d: one WebP per code point."""
    img = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    for x in range(10, 30):
        for y in range(5, 35):
            img.putpixel((x, y), (0, 0, 255, 255))
    buf = io.BytesIO()
    img.save(buf, format="WEBP", lossless=True)
    with tarfile.open(path, "w:gz") as tar:
        _add(tar, "package/assets/1f600.webp", buf.getvalue())
        _add(tar, "package/assets/1f436.webp", buf.getvalue())
    return path


@pytest.fixture
def vector_tarballs(tmp_path: Path) -> dict[str, Path]:
    pytest.importorskip("resvg_py")
    return {
        "noto": make_iconify(tmp_path / emoji.SETS["noto"].tarball, "noto", "Apache-2.0", chars=True),
        "emojione": make_iconify(tmp_path / emoji.SETS["emojione"].tarball, "emojione", "CC-BY-4.0", chars=False),
        "fluent-3d": make_assets(tmp_path / emoji.SETS["fluent-3d"].tarball),
    }


def test_vector_and_asset_sets_are_rendered_framed_alike(vector_tarballs, tmp_path: Path) -> None:
    catalogue = make_catalogue(tmp_path / "emoji-datasource-16.0.0.tgz")
    out = tmp_path / "out"
    records = emoji.build_dataset(vector_tarballs, out, size=64, val_fraction=0.0, catalogue=catalogue,
                                  holdout_style="emojione")
    by = {(r["source"], r["unified"]): r for r in records}
    assert set(by) == {("noto", "1F600"), ("noto", "1F60D"), ("noto", "1F436"),
                       ("emojione", "1F600"), ("emojione", "1F60D"), ("emojione", "1F436"),
                       ("fluent-3d", "1F600"), ("fluent-3d", "1F436")}
    assert {r["split"] for r in records if r["source"] == "emojione"} == {"style"}
    assert {r["split"] for r in records if r["source"] != "emojione"} == {"train"}
    assert by[("noto", "1F600")]["license"] == "Apache-2.0"
    assert by[("fluent-3d", "1F600")]["package"] == "@lobehub/fluent-emoji-3d@1.1.0"
    for r in records:
        with Image.open(out / r["file"]) as img:
            assert img.mode == "RGB" and img.size == (64, 64)
            px = np.asarray(img).astype(int)
        drawn = np.nonzero((px < 200).any(-1))  # ignore the faint Lanczos ringing
        extent = max(np.ptp(drawn[0]), np.ptp(drawn[1])) + 1
        assert abs(extent - 0.94 * 64) <= 3, (r["file"], extent)  # the drawing fills 94% of the side
        assert tuple(px[0, 0]) == (255, 255, 255)  # on white
    with Image.open(out / by[("noto", "1F60D")]["file"]) as img:  # its own colour, from its own icon
        assert img.getpixel((32, 32))[1] > 200 and img.getpixel((32, 32))[0] < 50
    licenses = (out / "LICENSES.md").read_text()
    assert "Fluent Emoji 3D by Microsoft Corporation, MIT" in licenses and "EmojiOne" in licenses


def test_vector_sets_need_a_catalogue(vector_tarballs, tmp_path: Path) -> None:
    with pytest.raises(emoji.EmojiDataError, match="npm pack emoji-datasource@16.0.0"):
        emoji.build_dataset({"noto": vector_tarballs["noto"]}, tmp_path / "out")


def test_a_package_stating_another_license_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("resvg_py")
    bad = make_iconify(tmp_path / emoji.SETS["twemoji"].tarball, "twemoji", "CC-BY-SA-4.0", chars=True)
    with pytest.raises(emoji.EmojiDataError, match="CC-BY-SA-4.0"):
        emoji.build_dataset({"twemoji": bad}, tmp_path / "out", catalogue=make_catalogue(tmp_path / "c.tgz"))


@pytest.mark.parametrize("name", ["openmoji", "samsung"])
def test_sharealike_and_unlicensed_styles_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match=f"refusing emoji source '{name}'"):
        emoji.parse_sets(f"noto,{name}")
