"""The app over HTTP: gradio_client calls every op's endpoint on a live server (127.0.0.1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from smapgan.intake import images as imageio
from smapgan.ops import OpContext, discover
from smapgan.render import ReferenceRenderer
from tests.reliability import free_port

EXAMPLES = Path(__file__).resolve().parent.parent / "smapgan" / "assets" / "examples"
NEUTRAL, HEARTS, GRIN = (str(EXAMPLES / f"{n}.png") for n in ("neutral_face", "heart_eyes", "grinning"))


@pytest.fixture(scope="module")
def client(model):
    from gradio_client import Client

    from smapgan.app import build_demo

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny model is far faster on one thread of a busy machine
    # The reference renderer, so that results can be compared bit for bit with OpContext's.
    demo = build_demo(model, renderer=ReferenceRenderer(model), registry=discover(paths=[]))
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield Client(demo.local_url, verbose=False)
    finally:
        demo.close()
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def layers(tmp_path_factory) -> dict[str, str]:
    """Brush layers as the canvas exports them: RGBA, transparent except the strokes, at the canvas size."""
    folder = tmp_path_factory.mktemp("layers")
    empty = np.zeros((256, 256, 4), dtype=np.uint8)
    eyes = empty.copy()
    eyes[40:140, 26:230] = (255, 42, 109, 153)
    paths = {"empty": folder / "empty.png", "eyes": folder / "eyes.png"}
    Image.fromarray(empty).save(paths["empty"])
    Image.fromarray(eyes).save(paths["eyes"])
    return {k: str(v) for k, v in paths.items()}


def editor(background: str, *layer_paths: str) -> dict:
    from gradio_client import handle_file

    return {"background": handle_file(background), "layers": [handle_file(p) for p in layer_paths], "composite": None}


def pixels(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def expected(model, fn) -> np.ndarray:
    ctx = OpContext(model)
    return np.asarray(imageio.tensor_to_image(fn(ctx)))


def recon_of(path: str):
    return lambda ctx: ctx.render(ctx.encode(ctx.picture(path)), base=None)


def test_endpoints_are_named_after_ops(client):
    named = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {"/reconstruct", "/lerp", "/local_transplant", "/unaligned_transplant", "/semantic_edit"} <= set(named)
    params = [p["parameter_name"] for p in named["/local_transplant"]["parameters"]]
    assert params[:2] == ["original", "references_1"] and "strength" in params


def test_reconstruct(client, model):
    from gradio_client import handle_file

    image, metrics = client.predict(original=handle_file(NEUTRAL), api_name="/reconstruct")
    assert np.array_equal(pixels(image), expected(model, recon_of(NEUTRAL)))
    assert metrics["mse"] > 0 and metrics["psnr_db"] > 0


def test_lerp(client, model):
    from gradio_client import handle_file

    image, gallery, gif = client.predict(
        first=handle_file(NEUTRAL), second=handle_file(HEARTS), frames=4, position=1.0, api_name="/lerp"
    )
    assert len(gallery) == 4 and Image.open(gif).n_frames == 4
    assert np.array_equal(pixels(image), expected(model, recon_of(HEARTS)))
    assert np.array_equal(pixels(gallery[0]["image"]), expected(model, recon_of(NEUTRAL)))


def test_local_transplant_with_brush_layers(client, model, layers):
    args = dict(original=None, space="w+", strength=1.0, pooling="max", api_name="/local_transplant")
    from gradio_client import handle_file

    args["original"] = handle_file(NEUTRAL)
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="brush a region on the reference first"):
        client.predict(references_1=editor(HEARTS, layers["empty"]), frames=0, **args)
    empty = client.predict(references_1=editor(HEARTS, layers["eyes"]), frames=0, strength=0.0,
                           **{k: v for k, v in args.items() if k != "strength"})[0]
    assert np.array_equal(pixels(empty), expected(model, recon_of(NEUTRAL)))  # strength 0: the original

    image, gallery, gif = client.predict(references_1=editor(HEARTS, layers["eyes"]), frames=3, **args)
    assert len(gallery) == 3 and gif is not None

    def edit(ctx):
        mask = imageio.load_mask(layers["eyes"], ctx.size)
        o, r = ctx.picture(NEUTRAL), ctx.picture(HEARTS, mask)
        from smapgan.latent import editing

        blended = editing.blend_pyramid(ctx.pyramid(ctx.encode(o)), ctx.pyramid(ctx.encode(r)), mask)
        return ctx.render(blended, base=None)

    assert np.array_equal(pixels(image), expected(model, edit))
    assert not np.array_equal(pixels(image), pixels(empty))


def test_unaligned_transplant(client, model, layers):
    from gradio_client import handle_file

    common = dict(original=handle_file(NEUTRAL), reference=editor(HEARTS, layers["eyes"]), box="", space="w+",
                  strength=1.0, api_name="/unaligned_transplant")
    same = client.predict(placements="", **common)
    local, _, _ = client.predict(
        original=handle_file(NEUTRAL), references_1=editor(HEARTS, layers["eyes"]), space="w+", strength=1.0,
        pooling="max", frames=0, api_name="/local_transplant",
    )
    assert np.array_equal(pixels(same), pixels(local))
    moved = client.predict(placements="0.5,0.7", **common)
    assert not np.array_equal(pixels(moved), pixels(same))


def test_semantic_edit(client, model, layers):
    from gradio_client import handle_file

    zero = client.predict(original=editor(GRIN), direction="demo", strength=0, api_name="/semantic_edit")
    assert np.array_equal(pixels(zero), expected(model, recon_of(GRIN)))
    local = client.predict(original=editor(GRIN, layers["eyes"]), direction="demo", strength=1.5, api_name="/semantic_edit")
    full = client.predict(original=editor(GRIN), direction="demo", strength=1.5, api_name="/semantic_edit")
    assert not np.array_equal(pixels(local), pixels(zero)) and not np.array_equal(pixels(local), pixels(full))


def test_random_and_style_mix(client):
    from gradio_client import handle_file

    a = client.predict(seed=5, truncation=0.5, api_name="/random")
    assert np.array_equal(pixels(a), pixels(client.predict(seed=5, truncation=0.5, api_name="/random")))
    mixed = client.predict(content=handle_file(GRIN), style=handle_file(HEARTS), mix="coarse", api_name="/style_mix")
    assert pixels(mixed).shape == (32, 32, 3)


def test_errors_are_messages_not_tracebacks(client, tmp_path):
    from gradio_client import handle_file

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"GIF89a but not really")
    with pytest.raises(Exception, match="not an image in a format") as info:
        client.predict(original=handle_file(str(bad)), api_name="/reconstruct")
    assert "Traceback" not in str(info.value) and "/tmp/" not in str(info.value)
    with pytest.raises(Exception, match=r"strength must be in \[0, 1\]"):
        client.predict(
            original=handle_file(NEUTRAL), references_1=editor(HEARTS), space="w+", strength=3.0, pooling="max",
            frames=0, api_name="/local_transplant",
        )
    with pytest.raises(Exception, match="one of demo"):
        client.predict(original=editor(GRIN), direction="nope", strength=1, api_name="/semantic_edit")


def test_fast_renderer_adds_a_mode_toggle(model):
    """With a renderer that offers modes, every endpoint takes `mode` and the fast one runs."""
    import gradio as gr

    from smapgan.app import build_demo
    from smapgan.fast import FastRenderer

    demo = build_demo(model, renderer=FastRenderer(model), registry=discover(paths=[]), prefill=False)
    radios = [b for b in demo.blocks.values() if isinstance(b, gr.Radio) and b.label == "Renderer"]
    assert radios and radios[0].choices == [("exact", "exact"), ("fast", "fast")]
    # A small model: measured slower in fast mode, so the page does not offer the switch (the API keeps it).
    assert model.config.size < 256 and radios[0].visible is False
    shown = build_demo(model, renderer=FastRenderer(model), registry=discover(paths=[]), prefill=False,
                       offer_modes=True)
    assert [b.visible for b in shown.blocks.values() if isinstance(b, gr.Radio) and b.label == "Renderer"] == [True]
    fn = next(f for f in demo.fns.values() if f.api_name == "reconstruct")
    payload = {"path": NEUTRAL}
    image_exact, _ = fn.fn("session:a/", {}, lambda *a, **k: None, original=payload, mode="exact")
    image_fast, metrics = fn.fn("session:a/", {}, lambda *a, **k: None, original=payload, mode="fast")
    difference = np.abs(np.asarray(image_exact, dtype=int) - np.asarray(image_fast, dtype=int))
    assert difference.mean() < 4 and metrics["psnr_db"] > 0
