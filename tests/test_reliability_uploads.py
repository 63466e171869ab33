"""Hostile uploads through gradio_client against a live app (issue 6.1).

Every kind of file a public app receives goes into every op's image and mask inputs. Each is
either used correctly (the result equals that of a clean, equivalent PNG) or refused with a
``gr.Error`` whose text says why (never a generic error, a traceback or a server path), and a
normal edit right after still gives the same result as before.

The default suite sends each file to one slot of each kind (a plain image input, an editor's
background, an editor's brush layer); the slow test sends each to every slot of every op.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from tests.reliability import EXAMPLES, Case, hostile_images, live_app

NEUTRAL, HEARTS, GRIN = (str(EXAMPLES / f"{n}.png") for n in ("neutral_face", "heart_eyes", "grinning"))
GENERIC = "has raised an exception but has not enabled verbose error reporting"


@pytest.fixture(scope="module")
def client(tiny_model_dir: Path):
    from gradio_client import Client

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with live_app(tiny_model_dir) as demo:
        yield Client(demo.local_url, verbose=False)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("hostile")
    cases = {c.name: c for c in hostile_images(folder)}
    layer = np.zeros((64, 64, 4), np.uint8)
    layer[10:30, 8:56] = (255, 42, 109, 160)  # a stroke across the eyes
    layer[28:40, 28:40] = (255, 42, 109, 160)  # and one on the center (what a 1x1 background keeps)
    Image.fromarray(layer).save(folder / "stroke.png")
    return {"cases": cases, "stroke": str(folder / "stroke.png"), "folder": folder}


def editor(background: str, *layers: str) -> dict:
    from gradio_client import handle_file

    return {"background": handle_file(background), "layers": [handle_file(p) for p in layers], "composite": None}


@dataclass(frozen=True)
class Slot:
    """One image or mask input of one op, and a full call that puts a file there."""

    name: str
    call: Callable[[str, str, str], dict]  # (file, its brush layer, other editors' layer) -> predict kwargs
    mask: bool = False
    """The file is a brush layer."""
    background: bool = False
    """The file is an editor's background, under the brush layer given with it."""


def _file(path: str) -> Any:
    from gradio_client import handle_file

    return handle_file(path)


EXACT = {"mode": "exact"}
SLOTS = [
    Slot("reconstruct.original", lambda f, s, s0: dict(original=_file(f), api_name="/reconstruct")),
    Slot("lerp.first", lambda f, s, s0: dict(first=_file(f), second=_file(HEARTS), frames=2, position=0.25, api_name="/lerp")),
    Slot("lerp.second", lambda f, s, s0: dict(first=_file(NEUTRAL), second=_file(f), frames=2, position=0.75, api_name="/lerp")),
    Slot("local_transplant.original", lambda f, s, s0: dict(original=_file(f), references_1=editor(HEARTS, s0), frames=0, api_name="/local_transplant")),
    Slot("local_transplant.references_1", lambda f, s, s0: dict(original=_file(NEUTRAL), references_1=editor(f, s), frames=0, api_name="/local_transplant"), background=True),
    Slot("local_transplant.references_1.mask", lambda f, s, s0: dict(original=_file(NEUTRAL), references_1=editor(HEARTS, f), frames=0, api_name="/local_transplant"), mask=True),
    Slot("local_transplant.references_3", lambda f, s, s0: dict(original=_file(NEUTRAL), references_1=editor(HEARTS, s0), references_3=editor(f, s), frames=0, api_name="/local_transplant"), background=True),
    Slot("local_transplant.references_3.mask", lambda f, s, s0: dict(original=_file(NEUTRAL), references_1=editor(HEARTS, s0), references_3=editor(GRIN, f), frames=0, api_name="/local_transplant"), mask=True),
    Slot("unaligned_transplant.original", lambda f, s, s0: dict(original=_file(f), reference=editor(HEARTS, s0), box="", placements="0.5,0.6", api_name="/unaligned_transplant")),
    Slot("unaligned_transplant.reference", lambda f, s, s0: dict(original=_file(NEUTRAL), reference=editor(f, s), box="", placements="0.5,0.6", api_name="/unaligned_transplant"), background=True),
    Slot("unaligned_transplant.reference.mask", lambda f, s, s0: dict(original=_file(NEUTRAL), reference=editor(HEARTS, f), box="", placements="", api_name="/unaligned_transplant"), mask=True),
    Slot("semantic_edit.original", lambda f, s, s0: dict(original=editor(f), direction="demo", strength=1.5, api_name="/semantic_edit")),
    Slot("semantic_edit.original.mask", lambda f, s, s0: dict(original=editor(GRIN, f), direction="demo", strength=1.5, api_name="/semantic_edit"), mask=True),
    Slot("style_mix.content", lambda f, s, s0: dict(content=_file(f), style=_file(HEARTS), api_name="/style_mix")),
    Slot("style_mix.style", lambda f, s, s0: dict(content=_file(GRIN), style=_file(f), api_name="/style_mix")),
]
BY_NAME = {s.name: s for s in SLOTS}
# One slot per way a file reaches the decoder: a plain image input, an editor's background, a brush layer.
FAST_SLOTS = ["reconstruct.original", "semantic_edit.original", "semantic_edit.original.mask"]
CASES = [
    "zero_bytes", "truncated_png", "truncated_jpeg", "decompression_bomb", "over_pixel_limit", "cmyk_jpeg",
    "png_16bit_gray", "png_16bit_rgb", "palette", "grayscale", "rgba", "animated_gif", "exif_rotated_jpeg",
    "text_named_png", "svg", "one_pixel",
]


def first_image(result: Any) -> np.ndarray:
    """The op's main image output (the first output) as an RGB array."""
    path = result[0] if isinstance(result, (tuple, list)) else result
    return np.asarray(Image.open(path).convert("RGB"))


def predict(client, slot: Slot, path: str | Path, stroke: str, other: str | None = None) -> np.ndarray:
    """Run the slot's op with ``path`` in the slot (exact renderer: results compare bit for bit)."""
    return first_image(client.predict(**slot.call(str(path), stroke, other or stroke), **EXACT))


def assert_clear_error(info: pytest.ExceptionInfo, pattern: str) -> None:
    message = str(info.value)
    assert re.search(pattern, message), message
    assert GENERIC not in message and "Traceback" not in message
    assert "/tmp/" not in message and "gradio/" not in message, message  # no server paths


def check(client, files: dict, baselines: dict, slot_name: str, case_name: str) -> None:
    """One hostile file in one slot: a clear refusal then a normal edit, or the clean equivalent's result."""
    from gradio_client.exceptions import AppError

    slot, case = BY_NAME[slot_name], files["cases"][case_name]
    stroke = files["stroke"]
    if slot_name not in baselines:
        baselines[slot_name] = predict(client, slot, GRIN if not slot.mask else files["stroke"], stroke)
    if case.error is not None:
        with pytest.raises(AppError) as info:
            predict(client, slot, case.path, stroke)
        assert_clear_error(info, case.error)
        # The app keeps serving, and the same clean edit still gives the same pixels.
        again = predict(client, slot, GRIN if not slot.mask else stroke, stroke)
        assert np.array_equal(again, baselines[slot_name])
        return
    clean = case.as_mask() if slot.mask else case.same_as
    got = predict(client, slot, case.path, stroke)
    layer = stroke
    if slot.background:
        # An editor's brush layer is first fit to its background: for a background of another size
        # (the 1x1 image) the same strokes are those of the layer resized to that size.
        size = Image.open(case.path).size
        if size != Image.open(clean).size:
            layer = str(Path(files["folder"]) / f"stroke_{size[0]}x{size[1]}.png")
            Image.open(stroke).resize(size, Image.Resampling.NEAREST).save(layer)
    want = predict(client, slot, clean, layer, stroke)
    assert np.array_equal(got, want), f"{case_name} in {slot_name} differs from its clean equivalent"


@pytest.fixture(scope="module")
def baselines() -> dict:
    return {}


@pytest.mark.parametrize("slot_name", FAST_SLOTS)
@pytest.mark.parametrize("case_name", CASES)
def test_hostile_upload_is_used_or_refused_clearly(client, files, baselines, slot_name, case_name):
    check(client, files, baselines, slot_name, case_name)


@pytest.mark.slow
@pytest.mark.parametrize("slot_name", [s.name for s in SLOTS if s.name not in FAST_SLOTS])
def test_hostile_uploads_in_every_slot_of_every_op(client, files, baselines, slot_name):
    for case_name in CASES:
        check(client, files, baselines, slot_name, case_name)


def test_every_image_and_mask_input_is_covered(client):
    """A new op (or a new image input) must be added to SLOTS, so that it gets the hostile files too."""
    named = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    image_params = set()
    for endpoint, info in named.items():
        for p in info["parameters"]:
            if "image" in str(p.get("component", "")).lower():
                image_params.add(f"{endpoint.lstrip('/')}.{p['parameter_name']}")
    assert "semantic_edit.original" in image_params and "reconstruct.original" in image_params
    covered = {s.name.removesuffix(".mask") for s in SLOTS}
    # references_2 takes exactly the path of references_1 and references_3 (same binding).
    missing = {p for p in image_params if p not in covered and p != "local_transplant.references_2"}
    assert not missing, f"image inputs without hostile-upload coverage: {sorted(missing)}"


# --------------------------------------------------------------------------- masks


def test_empty_full_and_resized_masks(client, files, tmp_path):
    """Empty brush layers select nothing, full ones everything, and a layer's size does not matter."""
    from gradio_client.exceptions import AppError

    side = 64
    empty, full = np.zeros((side, side, 4), np.uint8), np.zeros((side, side, 4), np.uint8)
    full[...] = (255, 42, 109, 160)
    paths = {}
    for name, layer in {"empty": empty, "full": full}.items():
        paths[name] = str(tmp_path / f"{name}.png")
        Image.fromarray(layer).save(paths[name])
    stroke = Image.open(files["stroke"])
    for name, factor in {"half": 0.5, "double": 2.0}.items():
        paths[name] = str(tmp_path / f"{name}.png")
        stroke.resize((int(side * factor),) * 2, Image.Resampling.NEAREST).save(paths[name])

    def recon(path: str) -> np.ndarray:
        return first_image(client.predict(original=_file(path), api_name="/reconstruct", **EXACT))

    def local(layer: str) -> np.ndarray:
        return first_image(client.predict(original=_file(NEUTRAL), references_1=editor(HEARTS, layer), frames=0,
                                          api_name="/local_transplant", **EXACT))

    with pytest.raises(AppError) as info:  # nothing brushed: told what to do
        local(paths["empty"])
    assert_clear_error(info, "brush a region on the reference first")
    assert np.array_equal(local(paths["full"]), recon(HEARTS))  # everything brushed: the reference
    stroked = local(files["stroke"])
    assert not np.array_equal(stroked, recon(NEUTRAL))
    assert np.array_equal(local(paths["half"]), stroked) and np.array_equal(local(paths["double"]), stroked)

    def unaligned(layer: str) -> np.ndarray:
        return first_image(client.predict(original=_file(NEUTRAL), reference=editor(HEARTS, layer), box="",
                                          placements="", api_name="/unaligned_transplant", **EXACT))

    with pytest.raises(AppError) as info:
        unaligned(paths["empty"])
    assert_clear_error(info, "brush a region on the reference first")
    assert np.array_equal(unaligned(paths["full"]), recon(HEARTS))
    assert np.array_equal(unaligned(paths["half"]), unaligned(files["stroke"]))

    def semantic(*layers: str) -> np.ndarray:
        return first_image(client.predict(original=editor(GRIN, *layers), direction="demo", strength=1.5,
                                          api_name="/semantic_edit", **EXACT))

    everywhere = semantic()
    assert np.array_equal(semantic(paths["empty"]), everywhere)  # no strokes: the documented global edit
    assert np.array_equal(semantic(paths["full"]), everywhere)
    assert np.array_equal(semantic(paths["double"]), semantic(files["stroke"]))


# --------------------------------------------------------------------------- limits and paths


def test_oversized_upload_is_refused_before_it_is_stored(client, tmp_path):
    """The launcher caps uploads at imageio.MAX_BYTES: Gradio refuses larger files at the upload."""
    import httpx

    from smapgan.intake.images import MAX_BYTES

    assert MAX_BYTES == 50 * 2**20  # the documented limit

    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.truncate(MAX_BYTES + 1)
    with pytest.raises(ValueError, match="exceeds the maximum file size of 52428800 bytes"):
        client.predict(original=_file(str(big)), api_name="/reconstruct", **EXACT)  # gradio_client checks first
    with open(big, "rb") as f:  # and the server refuses it from any other client
        answer = httpx.post(f"{client.src.rstrip('/')}/gradio_api/upload", files={"files": ("big.png", f, "image/png")},
                            timeout=120)
    assert answer.status_code == 413 and "52428800" in answer.text
    assert np.array_equal(first_image(client.predict(original=_file(GRIN), api_name="/reconstruct", **EXACT)),
                          first_image(client.predict(original=_file(GRIN), api_name="/reconstruct", **EXACT)))


def test_server_files_cannot_be_read_through_a_bare_path(client):
    """With preprocessing off, a payload's path is checked by smapgan: only uploaded files are read."""
    from gradio_client.exceptions import AppError

    for payload in ({"path": NEUTRAL}, {"path": "/etc/hostname"}, {"path": "/tmp/gradio/../../etc/hostname"}):
        with pytest.raises(AppError) as info:
            client.predict(original=payload, api_name="/reconstruct", **EXACT)
        assert_clear_error(info, "only files uploaded to this app can be used")
