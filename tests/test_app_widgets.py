"""The app's conversions between Gradio payloads and op values (no server)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from smapgan.app import widgets


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_preview_is_center_crop_at_display_size():
    wide = Image.new("RGBA", (300, 100), (0, 0, 255, 0))  # transparent blue: white after compositing
    wide.paste((255, 0, 0, 255), (100, 0, 200, 100))  # the central square is red
    preview = widgets.preview_image(png(wide), 32, widgets.display_side(32))
    assert preview.size == (256, 256) and preview.mode == "RGB"
    assert np.asarray(preview)[..., 0].min() == 255 and np.asarray(preview)[..., 1].max() == 0


def test_editor_payloads_files_and_blobs(tmp_path, monkeypatch):
    background = Image.new("RGB", (64, 64), (200, 200, 200))
    layer = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    layer.paste((255, 0, 0, 128), (0, 0, 32, 32))  # top-left quarter brushed
    bg_path, layer_path = tmp_path / "bg.png", tmp_path / "layer.png"
    background.save(bg_path)
    layer.save(layer_path)

    sources = widgets.editor_sources(None, {"background": {"path": str(bg_path)}, "layers": [{"path": str(layer_path)}]})
    mask = widgets.editor_mask(sources, 16)
    assert mask.shape == (16, 16) and mask[:8, :8].all() and mask.sum() == 64

    bg_bytes, layer_bytes = png(background), png(layer.resize((128, 128)))

    from smapgan.app import blobs, gate

    # What the editor keeps for a browser upload: this session's own parts under the canvas id.
    blobs.STORE.put("session-1", "abc", "background", None, bg_bytes)
    blobs.STORE.put("session-1", "abc", "layer", 0, layer_bytes)
    monkeypatch.setattr(gate, "current_session", lambda: "session-2")
    assert widgets.editor_sources(None, {"id": "abc", "background": None, "layers": []})["background"] is None
    monkeypatch.setattr(gate, "current_session", lambda: "session-1")
    sources = widgets.editor_sources(None, {"id": "abc", "background": None, "layers": []})
    assert widgets.editor_mask(sources, 16).sum() == 64  # a layer of another size is fitted to the background
    assert blobs.STORE.take("session-1", "abc") is None  # consumed once

    empty = widgets.editor_sources(None, {"background": {"path": str(bg_path)}, "layers": []})
    assert widgets.editor_mask(empty, 16) is None


def test_example_value_draws_the_mask_box(tmp_path):
    from smapgan.ops import ImageInput

    Image.new("RGB", (64, 64), "white").save(tmp_path / "face.png")
    value = widgets.example_value(ImageInput("ref", mask="required"), "face.png", (0.0, 0.0, 0.5, 0.5), 32, 256, tmp_path)
    assert value["background"].size == (256, 256)
    alpha = np.asarray(value["layers"][0])[..., 3]
    assert alpha[:128, :128].all() and not alpha[128:, :].any()


def test_an_example_whose_choice_the_model_lacks_is_skipped():
    """The semantic edit's example names a direction of the bundled model; a model without it gets no
    example (not a dropdown set to a value outside its choices)."""
    import torch

    from smapgan.app.builder import EXAMPLES_DIR, _example_rows
    from smapgan.networks.config import StyleMapGANConfig
    from smapgan.model import StyleMapGAN
    from smapgan.ops import discover

    op = discover(paths=[])["semantic_edit"]
    wanted = op.examples[0]["direction"]
    config = StyleMapGANConfig(size=32, latent_spatial_size=4, latent_channel_size=8, mapping_layer_num=2,
                               channel_base=512, channel_max=32)
    model = StyleMapGAN(config, with_discriminator=False).eval()
    assert _example_rows(op, model, 32, EXAMPLES_DIR) == []
    model.directions[wanted] = torch.zeros(8, 4, 4)
    rows = _example_rows(op, model, 32, EXAMPLES_DIR)
    assert len(rows) == 1 and rows[0]["direction"] == wanted
