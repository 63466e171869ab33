"""Offline tests of the emoji dataset converter, on tiny fake emoji-datasource tarballs."""

from __future__ import annotations

import argparse
import io
import json
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from smapgan.commands import data as data_command
from smapgan.data import emoji

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
        "google": make_tarball(tmp_path / emoji.tarball_name("google"), "google"),
        "twitter": make_tarball(tmp_path / emoji.tarball_name("twitter"), "twitter", frozenset({"1F610"})),
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
        emoji.parse_sources(name)
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


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    data_command.add_arguments(parser)
    return data_command.run(parser.parse_args(argv))


def test_cli_offline_with_cache(tarballs: dict[str, Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert _cli(["emoji", "--out", str(out), "--cache", str(tmp_path), "--sources", "google"]) == 0
    assert "google" in capsys.readouterr().out
    assert {r["source"] for r in _read_metadata(out)} == {"google"}
    assert _cli(["emoji", "--out", str(out), "--cache", str(tmp_path), "--sources", "apple"]) == 2
    assert "refusing emoji source 'apple'" in capsys.readouterr().err
