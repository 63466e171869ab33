"""The app streams (issue 15): the edited image is shown as soon as it exists; the frames follow.

Over HTTP, ``gradio_client``'s ``submit`` sees the image before the last frame is rendered (the
op is held before its last frame until the client has seen the image, so no timing decides it)
and ``predict`` still gets the complete outputs. Called directly, the endpoint's first update
carries the image alone, and the before/after view the page shows beside it is ready from then on.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from smapgan.intake import images as imageio
from smapgan.ops import OpContext, Registry, discover
from smapgan.render import ReferenceRenderer

from tests.reliability import free_port

EXAMPLES = Path(__file__).resolve().parent.parent / "smapgan" / "assets" / "examples"
NEUTRAL, HEARTS = (str(EXAMPLES / f"{n}.png") for n in ("neutral_face", "heart_eyes"))
FRAMES = 32


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small models: one torch thread (see conftest)


class Gate:
    """Holds lerp before its last frame until the client has seen the image (or ``timeout`` passed)."""

    def __init__(self, timeout: float = 20.0) -> None:
        self.seen = threading.Event()
        self.timeout = timeout
        self.released: list[bool] = []  # per run: True when the image was seen before the last frame

    def reset(self) -> None:
        self.seen.clear()
        self.released.clear()


@pytest.fixture(scope="module")
def app(model):
    from gradio_client import Client

    from smapgan.app import build_demo

    found = discover(paths=[])
    lerp = found["lerp"]
    gate = Gate()

    def held_lerp(ctx, frames, **kwargs):  # a generator like lerp's own: the app streams it
        for part in lerp.fn(ctx, frames=frames, **kwargs):
            if len(part.get("animation", ())) == frames - 1:  # every frame but the last one rendered
                gate.released.append(gate.seen.wait(gate.timeout))
            yield part

    registry = Registry({
        "lerp": dataclasses.replace(lerp, fn=held_lerp),
        "local_transplant": found["local_transplant"],
        "reconstruct": found["reconstruct"],
    })
    demo = build_demo(model, renderer=ReferenceRenderer(model), registry=registry, prefill=False)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield demo, Client(demo.local_url, verbose=False), gate
    finally:
        demo.close()


def pixels(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def expected(model, fn) -> np.ndarray:
    return np.asarray(imageio.tensor_to_image(fn(OpContext(model))))


def test_the_image_arrives_before_the_last_frame_is_rendered(app, model):
    from gradio_client import handle_file

    demo, client, gate = app
    gate.reset()
    job = client.submit(first=handle_file(NEUTRAL), second=handle_file(HEARTS), frames=FRAMES, position=0.5,
                        api_name="/lerp")
    first = None
    for update in job:  # each update as it arrives
        image, gallery, gif = update
        if first is None and isinstance(image, str):
            first = update
            gate.seen.set()  # lets the op render its last frame
    assert gate.released == [True], "the last frame was rendered before the client saw the image"
    image, gallery, gif = first
    assert not (isinstance(gallery, list) and gallery) and not isinstance(gif, str), "no frame came with the image"

    final = job.result()
    assert len(job.outputs()) > 2 and final == job.outputs()[-1]  # the image, frames as they came, the end
    image, gallery, gif = final
    assert len(gallery) == FRAMES and Image.open(gif).n_frames == FRAMES
    assert np.array_equal(pixels(image), pixels(first[0]))  # the image first shown is the result
    run = OpContext(model)
    out = discover(paths=[])["lerp"].run(
        run, first=run.picture(NEUTRAL), second=run.picture(HEARTS), frames=FRAMES, position=0.5
    )
    assert np.array_equal(pixels(image), np.asarray(imageio.tensor_to_image(out["image"])))
    assert np.array_equal(pixels(gallery[-1]["image"]), np.asarray(imageio.tensor_to_image(out["animation"][-1])))


def test_predict_still_gets_complete_outputs(app, model):
    from gradio_client import handle_file

    demo, client, gate = app
    gate.reset()
    gate.seen.set()  # nothing to wait for
    image, gallery, gif = client.predict(first=handle_file(NEUTRAL), second=handle_file(HEARTS), frames=4,
                                         position=1.0, api_name="/lerp")
    assert len(gallery) == 4 and Image.open(gif).n_frames == 4
    hearts = expected(model, lambda ctx: ctx.render(ctx.encode(ctx.picture(HEARTS)), base=None))
    assert np.array_equal(pixels(image), hearts) and np.array_equal(pixels(gallery[-1]["image"]), hearts)
    image, metrics = client.predict(original=handle_file(NEUTRAL), api_name="/reconstruct")  # a plain op
    assert metrics["mse"] > 0


def test_streaming_keeps_nothing_per_update(app):
    """No update skips an output with ``gr.skip()``: Gradio 6.31 makes each into a component instance
    that the session keeps (one Gallery per call, in this session's config, for its lifetime)."""
    import gc

    import gradio as gr
    from gradio_client import handle_file

    demo, client, gate = app
    gate.reset()
    gate.seen.set()
    first, second = handle_file(NEUTRAL), handle_file(HEARTS)

    def galleries() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if isinstance(o, gr.Gallery))

    client.predict(first=first, second=second, frames=3, position=0.5, api_name="/lerp")
    before = galleries()
    for _ in range(4):
        client.predict(first=first, second=second, frames=3, position=0.5, api_name="/lerp")
    assert galleries() == before


def endpoint_and_view(demo: Any, op: str, output: str) -> tuple[Any, Any]:
    """The op's endpoint function and the event that shows ``output``'s before/after view when it changes."""
    endpoint = next(f for f in demo.fns.values() if f.api_name == op)
    follow = next(
        f for f in demo.fns.values()
        if any(event == "change" and getattr(demo.blocks.get(target), "elem_id", None) == f"{op}-{output}"
               for target, event in f.targets)
    )
    return endpoint.fn, follow.fn


def test_the_first_update_is_the_image_and_its_view_is_ready(app, eyes_layer):
    demo, _, gate = app
    run, view = endpoint_and_view(demo, "local_transplant", "image")
    session: dict[str, Any] = {}
    editor = {"background": {"path": HEARTS}, "layers": [{"path": eyes_layer}], "composite": None}
    updates = run("session:a/", session, lambda *a, **k: None, original={"path": NEUTRAL}, references_1=editor,
                  space="w+", frames=8)
    image, gallery, gif = next(updates)
    assert gallery is None and gif is None  # no frame yet (the last run's frames are cleared)
    shown = pixels(image)  # a file written once for the run (Gradio copies it, never rewrites it)
    pair = view(session)  # what the page's before/after slider shows meanwhile
    assert Image.open(pair[1]).size == (256, 256)
    *partial, final = list(updates)
    assert [len(g) for _, g, _ in partial] == [2, 5]  # the frames so far, sent again when they had doubled
    assert all(i == image and g_ is None for i, _, g_ in partial)  # the image as it was; the GIF at the end
    image_final, gallery_final, gif_final = final
    assert len(gallery_final) == 8 and Image.open(gif_final).n_frames == 8
    assert "elapsed" in session["local_transplant"] and np.array_equal(shown, pixels(pair[1])[::8, ::8])
    assert not Path(image_final).exists(), "the run's files go when it ends (Gradio has copied them)"


@pytest.fixture(scope="module")
def eyes_layer(tmp_path_factory) -> str:
    """A brush layer as the canvas exports it: RGBA, transparent except the stroke over the eyes."""
    layer = np.zeros((256, 256, 4), dtype=np.uint8)
    layer[40:140, 26:230] = (255, 42, 109, 153)
    path = tmp_path_factory.mktemp("layers") / "eyes.png"
    Image.fromarray(layer).save(path)
    return str(path)
