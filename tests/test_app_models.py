"""Several models in one app (smapgan.app.models), photos aligned for the model that asks
(smapgan.app.photos), the device flag and ZeroGPU: over HTTP where it matters."""

from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from smapgan import StyleMapGAN
from smapgan.app.models import BUNDLED, ModelChoices
from smapgan.intake import images as imageio
from smapgan.model.hub import push_folder
from smapgan.ops import OpContext, discover
from smapgan.render import ReferenceRenderer

skimage_data = pytest.importorskip("skimage.data")
FACES = "smapgan-tester/faces"


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small models: one torch thread (see conftest)


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    Image.fromarray(skimage_data.astronaut()).save(path)
    return path


@pytest.fixture
def faces_model_dir(tiny_model_dir, tmp_path) -> Path:
    """The tiny model, saying it was trained on aligned faces, without directions."""
    target = tmp_path / "faces"
    shutil.copytree(tiny_model_dir, target)
    (target / "directions.safetensors").unlink()
    config = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**config, "alignment": "ffhq"}))
    # Its own examples: one for Reconstruct, none for the other ops.
    (target / "examples").mkdir()
    Image.new("RGB", (40, 40), (200, 30, 90)).save(target / "examples" / "face.png")
    (target / "examples" / "examples.json").write_text(json.dumps({"reconstruct": [{"original": "face.png"}]}))
    return target


def counting_loader(loads: list[str]):
    def load(source: str, revision: str | None, device: str) -> tuple[StyleMapGAN, Any]:
        loads.append(source)
        model = StyleMapGAN.from_pretrained(source)
        return model, ReferenceRenderer(model)
    return load


# ------------------------------------------------------------------------------ the set of models
def test_models_load_on_first_use_and_the_least_recent_is_dropped(tiny_model_dir, faces_model_dir):
    loads: list[str] = []
    models = ModelChoices([str(tiny_model_dir), str(faces_model_dir)], max_loaded=1, loader=counting_loader(loads))
    assert models.names[-1] == BUNDLED  # always offered
    assert loads == [] and models.loaded() == []
    first = models.get()
    assert loads == [str(tiny_model_dir)] and models.get() is first  # kept: no second load
    models.get(str(faces_model_dir))
    assert models.loaded() == [str(faces_model_dir)]  # K = 1: the first was dropped
    again = models.get(str(tiny_model_dir))
    assert loads == [str(tiny_model_dir), str(faces_model_dir), str(tiny_model_dir)]
    assert again is not first
    with pytest.raises(ValueError, match="model must be one of"):
        models.get("someone/else")


def test_the_device_flows_to_each_models_renderer(tiny_model_dir, monkeypatch):
    import smapgan.device

    seen: list[Any] = []
    real = smapgan.device.renderer_for_device

    def recording(model, device="auto", *, fill_when_idle=False):
        seen.append((device, fill_when_idle))
        return real(model, device, fill_when_idle=fill_when_idle)

    monkeypatch.setattr(smapgan.device, "renderer_for_device", recording)
    served = ModelChoices([str(tiny_model_dir)], device="cpu").get()
    assert seen == [("cpu", True)]
    assert next(served.model.parameters()).device.type == "cpu"


def test_app_device_cuda_without_a_gpu_is_a_clear_error(tiny_model_dir, monkeypatch, capsys):
    from smapgan.app.launcher import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["--model", str(tiny_model_dir), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "app.py: error:" in err and "cuda" in err and "Traceback" not in err


def test_on_a_zerogpu_space_the_ops_run_under_spaces_gpu(tiny_model_dir, monkeypatch):
    from smapgan.app import build_demo

    wrapped: list[str] = []

    def gpu(fn):
        wrapped.append(fn.__name__)
        return fn

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=gpu))
    model = StyleMapGAN.from_pretrained(tiny_model_dir)
    build_demo(model, renderer=ReferenceRenderer(model), registry=discover(paths=[]), prefill=False)
    assert set(wrapped) == set(discover(paths=[]).names())  # every op's endpoint, nothing else
    monkeypatch.delitem(sys.modules, "spaces")
    wrapped.clear()
    build_demo(model, renderer=ReferenceRenderer(model), registry=discover(paths=[]), prefill=False)
    assert wrapped == []  # without the package nothing changes


# ------------------------------------------------------------------------------ over HTTP
@pytest.fixture
def two_model_app(hub, tiny_model_dir, faces_model_dir):
    """The app over HTTP with the bundled-like tiny model (a folder) and a face model from the Hub double."""
    from gradio_client import Client

    from smapgan.app import build_demo

    push_folder(faces_model_dir, FACES)
    loads: list[str] = []

    def load(source: str, revision: str | None, device: str):
        from smapgan.defaults import default_model_path

        loads.append(source)
        model = StyleMapGAN.from_pretrained(default_model_path() if source == BUNDLED else source, revision=revision)
        return model, ReferenceRenderer(model)  # results compared bit for bit with OpContext's

    models = ModelChoices([str(tiny_model_dir), FACES], max_loaded=2, loader=load)
    demo = build_demo(models, registry=discover(paths=[]), prefill=False)
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        yield Client(demo.local_url, verbose=False), models, loads, demo
    finally:
        demo.close()


def reconstruct(client: Any, photo: Path, **extra: Any) -> np.ndarray:
    from gradio_client import handle_file

    image, _metrics = client.predict(original=handle_file(str(photo)), api_name="/reconstruct", **extra)
    return np.asarray(Image.open(image).convert("RGB"))


def expected(model: StyleMapGAN, crop: Image.Image) -> np.ndarray:
    ctx = OpContext(model)
    encoded = ctx.encode(ctx.picture(crop))
    return np.asarray(imageio.tensor_to_image(ctx.render(encoded, base=encoded)))


def test_two_models_over_http_each_give_their_own_result(two_model_app, astronaut, tiny_model_dir):
    pytest.importorskip("dlib")
    from smapgan.intake.align import align_photo, open_photo

    client, models, loads, _ = two_model_app
    assert loads == [str(tiny_model_dir)]  # the default only, until another is asked for
    plain = reconstruct(client, astronaut)
    faces = reconstruct(client, astronaut, model=FACES)
    assert loads == [str(tiny_model_dir), FACES]
    tiny, face_model = models.get(str(tiny_model_dir)).model, models.get(FACES).model
    photo = open_photo(astronaut)
    # The default model center-crops; the face model (alignment: ffhq) gets the FFHQ crop of the face.
    assert np.array_equal(plain, expected(tiny, imageio.fit(photo, tiny.config.size)))
    assert np.array_equal(faces, expected(face_model, align_photo(photo, face_model.config.size).crop))
    assert not np.array_equal(faces, expected(face_model, imageio.fit(photo, face_model.config.size)))
    # crop=center asks the face model for the center crop instead; the first model again: no new load.
    centered = reconstruct(client, astronaut, model=FACES, crop="center")
    assert np.array_equal(centered, expected(face_model, imageio.fit(photo, face_model.config.size)))
    assert np.array_equal(reconstruct(client, astronaut, model=str(tiny_model_dir)), plain)
    assert loads == [str(tiny_model_dir), FACES]


def test_no_face_and_a_missing_op_say_so_over_http(two_model_app, tmp_path, astronaut):
    pytest.importorskip("dlib")
    from gradio_client import handle_file

    client, *_ = two_model_app
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 160), (90, 120, 200)).save(blank)
    with pytest.raises(Exception, match="no face was found in the first image; choose the center crop"):
        reconstruct(client, blank, model=FACES)
    assert reconstruct(client, blank, model=FACES, crop="center").shape == (32, 32, 3)  # the center crop stays
    with pytest.raises(Exception, match="nothing to choose from for this model"):
        client.predict(original=handle_file(str(astronaut)), model=FACES, api_name="/semantic_edit")


def by_elem_id(demo: Any, elem_id: str) -> Any:
    return next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def choose(demo: Any, name: str) -> dict[int, Any]:
    """What the page shows once ``name`` is chosen in the dropdown, by block id: the unqueued switch, and
    where it hands the model to the queue (not in memory, or not shown yet), the load and the switch again."""
    import gradio as gr

    choice, pending = by_elem_id(demo, "model-choice"), by_elem_id(demo, "model-pending")
    show = next(f for f in demo.fns.values() if [i._id for i in f.inputs] == [choice._id])
    load = next(f for f in demo.fns.values() if [i._id for i in f.inputs] == [pending._id])
    assert show.queue is False and load.queue is not False  # only a load waits in the queue
    values = show.fn(name)
    if not isinstance(values[-1], type(gr.skip())):
        load.fn(values[-1])
        values = show.fn(name)
    assert isinstance(values[-1], type(gr.skip()))  # shown: nothing left to load
    return dict(zip([o._id for o in show.outputs], values))


def test_choosing_a_model_shows_its_directions_examples_and_notices(two_model_app, tiny_model_dir):
    """The dropdown's handler: the face model has no directions, so Semantic edit says so; back again, not."""
    import gradio as gr

    _client, models, loads, demo = two_model_app
    notes = by_elem_id(demo, "semantic_edit-notes")
    shown = choose(demo, FACES)
    assert "not available for this model" in shown[notes._id]
    direction = by_elem_id(demo, "semantic_edit-direction")
    assert shown[direction._id]["choices"] == []
    datasets = [b for b in demo.blocks.values() if isinstance(b, gr.Dataset)]
    assert datasets
    for dataset in datasets:  # each model's examples, in the columns the page shows
        sent = shown[dataset._id]
        assert all(len(sample) == len(dataset._components) for sample in sent.raw_samples), dataset
    back = choose(demo, str(tiny_model_dir))
    assert "not available" not in back[notes._id]
    own = discover(paths=[]).ops["semantic_edit"].input("direction").options(models.get(str(tiny_model_dir)).model)
    assert own and back[direction._id]["choices"] == own
    assert loads == [str(tiny_model_dir), FACES]  # switching between models in memory loads nothing


def test_each_model_shows_its_own_examples(two_model_app, tiny_model_dir, faces_model_dir):
    """The face model (from the Hub) lists one example of its own; the tiny model (a folder) has none and
    says so; the bundled model shows the ops' own (emoji), which no other model shows."""
    import gradio as gr

    _client, models, _loads, demo = two_model_app
    ops = discover(paths=[]).names()
    datasets = [b for b in demo.blocks.values() if isinstance(b, gr.Dataset)]
    reconstruct = next(b for b in demo.blocks.values() if isinstance(b, gr.Dataset)
                       and any(getattr(c, "elem_id", None) == "reconstruct-original" for c in b._components))
    notes = {op: by_elem_id(demo, f"{op}-notes") for op in ops}

    def examples_shown(shown: dict[int, Any]) -> dict[int, list[list[Any]]]:
        return {d._id: shown[d._id].raw_samples for d in datasets if shown[d._id].visible}

    faces = choose(demo, FACES)
    assert list(examples_shown(faces)) == [reconstruct._id]  # Reconstruct's own example, nothing else
    (path,) = examples_shown(faces)[reconstruct._id][0]
    face = np.asarray(Image.open(path).convert("RGB"))
    assert (face == (200, 30, 90)).all()  # the model's own picture, not an emoji
    assert "No examples" not in faces[notes["reconstruct"]._id]
    assert all("No examples" in faces[notes[op]._id] for op in ops if op != "reconstruct")

    tiny = choose(demo, str(tiny_model_dir))
    assert examples_shown(tiny) == {}
    assert all("No examples" in tiny[notes[op]._id] for op in ops)

    bundled = choose(demo, BUNDLED)
    shown = examples_shown(bundled)
    declared = [op for op in ops if discover(paths=[]).ops[op].examples]
    # every op's own examples, the semantic edit's too (its direction is one the first model lacks)
    assert reconstruct._id in shown and len(shown) == len(declared)
    (emoji,) = shown[reconstruct._id][0]
    assert not (np.asarray(Image.open(emoji).convert("RGB")) == (200, 30, 90)).all()
    assert not any(bundled[note._id] for note in notes.values())  # nothing to say: not shown


def test_a_models_examples_listing_cannot_reach_outside_its_folder(tmp_path, tiny_model_dir):
    """A listing names files of its folder only; one that is not JSON is reported, not a crash."""
    from smapgan.app.examples import example_rows, read_examples

    folder = tmp_path / "examples"
    folder.mkdir()
    secret = tmp_path / "secret.png"
    Image.new("RGB", (8, 8)).save(secret)
    (folder / "examples.json").write_text(json.dumps({"reconstruct": [
        {"original": str(secret)}, {"original": "../secret.png"}]}))
    examples = read_examples(folder)
    op = discover(paths=[]).ops["reconstruct"]
    model = StyleMapGAN.from_pretrained(tiny_model_dir)
    assert example_rows(op, model, 32, folder, examples.of(op)) == []  # both skipped
    (folder / "examples.json").write_text("{not json")
    broken = read_examples(folder)
    assert broken.of(op) == [] and "examples.json is not readable JSON" in broken.problem


def test_refinement_is_priced_by_the_model_each_job_names(tiny_model_dir, tmp_path, monkeypatch):
    """Two models with different GFLOP per step: each refinement job is charged its own model's."""
    from smapgan import StyleMapGANConfig
    from smapgan.app import build_demo, gate
    from smapgan.latent.invert import step_gflop
    from smapgan.ops.inversion import REFINED

    config = StyleMapGANConfig(size=64, latent_spatial_size=4, latent_channel_size=8, mapping_layer_num=2,
                               channel_base=256, channel_max=32)
    StyleMapGAN(config, with_discriminator=False).save_pretrained(tmp_path / "larger")
    priced: list[Any] = []
    monkeypatch.setattr(gate, "install_fair_queue", lambda demo, price=None: priced.append(price))
    models = ModelChoices([str(tiny_model_dir), str(tmp_path / "larger")], loader=counting_loader([]))
    demo = build_demo(models, registry=discover(paths=[]), prefill=False)
    (price,) = priced
    event = next(f for f in demo.fns.values() if f.api_name == "reconstruct")

    def job(model: str) -> list[Any]:
        given = {"inversion-choice": REFINED, "inversion-steps": 10, "model-choice": model,
                 "reconstruct-original": {"path": "photo.png"}}
        return [given.get(getattr(block, "elem_id", None)) for block in event.inputs]

    small = step_gflop(models.get(str(tiny_model_dir)).model)
    assert price(event, job(str(tiny_model_dir))) == pytest.approx(10 * small)
    # Not in memory yet (its size unknown): charged as the dearest model counted so far.
    assert price(event, job(str(tmp_path / "larger"))) == pytest.approx(10 * small)
    large = step_gflop(models.get(str(tmp_path / "larger")).model)
    assert large > 1.4 * small
    assert price(event, job(str(tmp_path / "larger"))) == pytest.approx(10 * large)
    assert price(event, job(str(tiny_model_dir))) == pytest.approx(10 * small)


def test_several_faces_the_face_parameter_chooses(two_model_app, tmp_path):
    pytest.importorskip("dlib")
    from smapgan.intake.align import align_photo, open_photo

    client, models, *_ = two_model_app
    astronaut = Image.fromarray(skimage_data.astronaut())
    pair = Image.new("RGB", (1024, 512))
    pair.paste(astronaut, (0, 0))
    pair.paste(astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((400, 400)), (600, 56))
    path = tmp_path / "two.png"
    pair.save(path)
    photo = open_photo(path)
    found = len(align_photo(photo, 32).faces)
    assert found >= 2  # the two astronauts (dlib's HOG also reports weak spurious ones, ranked last)
    face_model = models.get(FACES).model
    for face in (0, 1):
        got = reconstruct(client, path, model=FACES, face=face)
        assert np.array_equal(got, expected(face_model, align_photo(photo, 32, face=face).crop)), face
    with pytest.raises(Exception, match=f"face {found} was asked for, but the photo has {found}"):
        reconstruct(client, path, model=FACES, face=found)


def test_a_mask_drawn_on_the_photo_is_cut_like_the_photo(faces_model_dir, astronaut):
    """A brushed region on the photo lands where that region is in the aligned crop (not the center crop's)."""
    pytest.importorskip("dlib")
    from smapgan.app.photos import PhotoContext
    from smapgan.ops.picture import PictureSource
    from smapgan.intake.align import align_photo, open_photo

    model = StyleMapGAN.from_pretrained(faces_model_dir)
    photo = open_photo(astronaut)
    face = align_photo(photo, 32).faces[0]
    left, top, right, bottom = (int(v) for v in face.box)
    brushed = np.zeros((photo.size[1], photo.size[0]), dtype=bool)
    brushed[top:(top + bottom) // 2, left:right] = True  # the face's upper half: eyes and brows
    mask = Image.fromarray(brushed.astype(np.uint8) * 255, "L")
    picture = PhotoContext(model, align="face").load_picture(PictureSource(astronaut, mask=mask))
    rows, cols = np.nonzero(picture.mask[0, 0].numpy())
    assert len(rows) > 20
    assert 8 <= rows.mean() <= 16 and 12 <= cols.mean() <= 20  # the eyes' band of an FFHQ crop (32 px)
    centered = PhotoContext(model, align="center").load_picture(PictureSource(astronaut, mask=mask))
    assert torch.equal(centered.mask, imageio.mask_to_tensor(imageio.fit_mask(brushed, 32)))


def test_a_center_crop_goes_back_into_a_wide_photo(tiny_model_dir, tmp_path):
    """Paste-back for a model that center-crops: a wide photo gets the result in its middle square;
    a square photo is its crop itself (no photo result)."""
    from smapgan.app.photos import PhotoContext

    model = StyleMapGAN.from_pretrained(tiny_model_dir)
    wide, square = tmp_path / "wide.png", tmp_path / "square.png"
    Image.new("RGB", (120, 60), (20, 40, 60)).save(wide)
    Image.new("RGB", (60, 60), (20, 40, 60)).save(square)
    ctx = PhotoContext(model, align="center")
    picture = ctx.load_picture(str(wide))
    assert torch.equal(picture.image, imageio.image_to_tensor(imageio.load_image(str(wide), 32)))  # as always
    white = torch.ones(1, 3, 32, 32)
    pasted = np.asarray(ctx.in_photo(white))
    assert pasted.shape == (60, 120, 3)
    assert (pasted[:, :28] == (20, 40, 60)).all() and (pasted[:, -28:] == (20, 40, 60)).all()  # outside: untouched
    assert (pasted[20:40, 50:70] == 255).all()  # the middle square: the result
    other = PhotoContext(model, align="center")
    other.load_picture(str(square))
    assert other.in_photo(white) is None
