"""The app's conversions between Gradio payloads and op values (no server)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from smapgan.app import intake
from smapgan.app.inputs import display_side
from smapgan.intake import images as imageio


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def editor_mask(sources: dict, size: int) -> np.ndarray | None:
    """The mask ``Op.run`` reads from an editor's parts (its brush layers over its background)."""
    return imageio.layers_mask(sources["layers"], sources["background"] or sources["composite"], size)


def test_preview_is_center_crop_at_display_size():
    wide = Image.new("RGBA", (300, 100), (0, 0, 255, 0))  # transparent blue: white after compositing
    wide.paste((255, 0, 0, 255), (100, 0, 200, 100))  # the central square is red
    preview = intake.preview_image(png(wide), 32, display_side(32))
    assert preview.size == (256, 256) and preview.mode == "RGB"
    assert np.asarray(preview)[..., 0].min() == 255 and np.asarray(preview)[..., 1].max() == 0


def test_editor_payloads_files_and_blobs(tmp_path, monkeypatch):
    background = Image.new("RGB", (64, 64), (200, 200, 200))
    layer = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    layer.paste((255, 0, 0, 128), (0, 0, 32, 32))  # top-left quarter brushed
    bg_path, layer_path = tmp_path / "bg.png", tmp_path / "layer.png"
    background.save(bg_path)
    layer.save(layer_path)

    sources = intake.editor_sources({"background": {"path": str(bg_path)}, "layers": [{"path": str(layer_path)}]})
    mask = editor_mask(sources, 16)
    assert mask.shape == (16, 16) and mask[:8, :8].all() and mask.sum() == 64

    bg_bytes, layer_bytes = png(background), png(layer.resize((128, 128)))

    from smapgan.app import blobs, gate

    # What the editor keeps for a browser upload: this session's own parts under the canvas id.
    blobs.STORE.put("session-1", "abc", "background", None, bg_bytes)
    blobs.STORE.put("session-1", "abc", "layer", 0, layer_bytes)
    monkeypatch.setattr(gate, "current_session", lambda: "session-2")
    assert intake.editor_sources({"id": "abc", "background": None, "layers": []})["background"] is None
    monkeypatch.setattr(gate, "current_session", lambda: "session-1")
    sources = intake.editor_sources({"id": "abc", "background": None, "layers": []})
    assert editor_mask(sources, 16).sum() == 64  # a layer of another size is fitted to the background
    assert blobs.STORE.take("session-1", "abc") is None  # consumed once

    empty = intake.editor_sources({"background": {"path": str(bg_path)}, "layers": []})
    assert editor_mask(empty, 16) is None


def test_an_image_example_starts_a_canvas_without_strokes(tmp_path):
    """A mask input's example is an editor value: the image as the model sees it, no preset layer
    (a layer given with the value could not be undone in the browser)."""
    from types import SimpleNamespace

    from smapgan.app.examples import EXAMPLE_FIELDS
    from smapgan.app.inputs import WidgetFactory
    from smapgan.ops import ImageInput

    Image.new("RGB", (64, 48), "white").save(tmp_path / "face.png")
    model = SimpleNamespace(config=SimpleNamespace(size=32))
    ui = WidgetFactory(model, 256, examples_dir=tmp_path)
    fields = EXAMPLE_FIELDS[ImageInput](ui, ImageInput("refs", mask="required", count=2), ["face.png"])
    assert list(fields) == ["refs_1", "refs_2"] and fields["refs_2"] is None
    assert fields["refs_1"]["background"].size == (256, 256) and fields["refs_1"]["layers"] == []


def test_an_example_whose_choice_the_model_lacks_is_skipped():
    """The semantic edit's example names a direction of the bundled model; a model without it gets no
    example (not a dropdown set to a value outside its choices)."""
    import torch

    from smapgan.app.builder import EXAMPLES_DIR
    from smapgan.app.examples import example_rows
    from smapgan.networks.config import StyleMapGANConfig
    from smapgan.model import StyleMapGAN
    from smapgan.ops import discover

    op = discover(paths=[])["semantic_edit"]
    wanted = op.examples[0]["direction"]
    config = StyleMapGANConfig(size=32, latent_spatial_size=4, latent_channel_size=8, mapping_layer_num=2,
                               channel_base=512, channel_max=32)
    model = StyleMapGAN(config, with_discriminator=False).eval()
    assert example_rows(op, model, 32, EXAMPLES_DIR) == []
    model.directions[wanted] = torch.zeros(8, 4, 4)
    rows = example_rows(op, model, 32, EXAMPLES_DIR)
    assert len(rows) == 1 and rows[0]["direction"] == wanted


def test_a_kind_gets_the_widget_of_its_nearest_known_kind():
    """The table is looked up along the class's MRO: a subclass of a known kind gets that kind's widget,
    a kind the table does not know gets the text box."""
    from dataclasses import dataclass

    from smapgan.app import inputs
    from smapgan.ops import Input, SliderInput

    @dataclass(frozen=True)
    class Percent(SliderInput):
        maximum: float = 100.0

    @dataclass(frozen=True)
    class Unknown(Input):
        pass

    assert inputs.for_kind(inputs.WIDGETS, Percent("p")) is inputs.slider
    assert inputs.for_kind(inputs.WIDGETS, Unknown("u")) is inputs.text_field


def test_the_endpoint_hands_raw_sources_to_op_run_which_decodes_each_image_once(tmp_path, monkeypatch, tiny_model_dir):
    """One intake path: the app's endpoint gives ``Op.run`` files and brush layers, not decoded pictures;
    every image and layer is decoded once, inside ``Op.run``, after the settings were checked."""
    import gradio as gr
    import pytest
    import torch

    from smapgan import StyleMapGAN
    from smapgan.app import build_demo
    from smapgan.ops import ImageInput, ImageOutput, Op, Picture, Registry, SliderInput, op
    from smapgan.render import ReferenceRenderer

    got: list[dict] = []

    @op(name="probe", inputs=[ImageInput("original"), ImageInput("reference", mask="required"),
                              SliderInput("amount", 0, 1, default=0.5)], outputs=[ImageOutput("image")])
    def probe(ctx, original, reference, amount):
        got.append({"original": original, "reference": reference})
        return {"image": original.image * amount + reference.image * reference.mask * (1 - amount)}

    registry = Registry()
    registry.add(probe, "probe", "test")
    model = StyleMapGAN.from_pretrained(tiny_model_dir)
    demo = build_demo(model, renderer=ReferenceRenderer(model), registry=registry, prefill=False)
    endpoint = next(f.fn for f in demo.fns.values() if f.api_name == "probe")

    original, background, layer = tmp_path / "original.png", tmp_path / "background.png", tmp_path / "layer.png"
    Image.new("RGB", (48, 40), (10, 200, 30)).save(original)
    Image.new("RGB", (64, 64), (200, 200, 200)).save(background)
    stroke = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    stroke.paste((255, 0, 0, 128), (0, 0, 32, 32))
    stroke.save(layer)

    handed: list[dict] = []
    run = Op.run
    inside = [False]

    def recording_run(self, ctx, **values):
        handed.append(values)
        inside[0] = True
        try:
            return run(self, ctx, **values)
        finally:
            inside[0] = False

    opened: list[tuple[str, bool]] = []
    open_image = imageio.open_image

    def counting_open(source, **kwargs):
        opened.append((str(source), inside[0]))
        return open_image(source, **kwargs)

    monkeypatch.setattr(Op, "run", recording_run)
    monkeypatch.setattr(imageio, "open_image", counting_open)
    canvas = {"background": {"path": str(background)}, "layers": [{"path": str(layer)}], "composite": None}
    values = dict(original={"path": str(original)}, reference=canvas)

    endpoint("session-1", {}, lambda *a, **k: None, **values, amount=0.25)
    assert len(handed) == 1
    assert not any(isinstance(v, (Picture, torch.Tensor, Image.Image)) for v in handed[0].values())  # raw sources
    assert sorted(opened) == sorted([(str(original), True), (str(background), True), (str(layer), True)])
    assert isinstance(got[0]["reference"], Picture) and got[0]["reference"].mask[..., :8, :8].all()

    opened.clear()
    with pytest.raises(gr.Error, match="amount must be in"):  # a bad setting: refused before any image is decoded
        endpoint("session-1", {}, lambda *a, **k: None, **values, amount=5)
    assert opened == []
