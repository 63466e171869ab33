"""Streaming ops (issue 15): an op may yield its outputs as they become ready.

``Op.stream`` yields the outputs known so far after each step; ``Op.run`` is its last state. The two
animated built-in ops yield the edited image before any frame is rendered, then the frames one by
one, with the same values as before they streamed (their former code is kept here to compare).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from smapgan.latent import editing
from smapgan.intake import images as imageio
from smapgan.ops import FramesOutput, ImageInput, ImageOutput, OpContext, OpError, growing, op
from smapgan.render import ReferenceRenderer

EXAMPLES = Path(__file__).resolve().parent.parent / "smapgan" / "assets" / "examples"


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small models: one torch thread (see conftest)


@pytest.fixture(params=["reference", "fast"])
def fresh(request, model) -> Callable[[], OpContext]:
    """A new context with a new renderer of the kind (no cache shared between the runs compared)."""
    if request.param == "reference":
        return lambda: OpContext(model, renderer=ReferenceRenderer(model))
    from smapgan.fast import FastRenderer

    return lambda: OpContext(model, renderer=FastRenderer(model))


def pictures(ctx: OpContext) -> tuple[Any, Any]:
    original = ctx.picture(EXAMPLES / "neutral_face.png")
    reference = ctx.picture(EXAMPLES / "heart_eyes.png", imageio.box_mask((0.1, 0.15, 0.9, 0.55), ctx.size))
    return original, reference


# ----------------------------------------------------------------- the ops' former (list) code, to compare
def former_local_transplant(ctx: OpContext, original, reference, space: str, frames: int) -> dict:
    """local_transplant before it streamed (max pooling, strength 1, no feather)."""
    base = ctx.encode(original)
    ts = [1.0 if frames == 1 else i / (frames - 1) for i in range(frames)]
    if space == "w+":
        edited = editing.blend_pyramid(ctx.pyramid(base), ctx.pyramid(ctx.encode(reference)), reference.mask)
        animation = list(ctx.iter_path(base, edited, ts))
        return {"image": animation[-1], "animation": animation}
    stylemap = editing.blend_stylemap(base.stylemap, ctx.encode(reference).stylemap, reference.mask)
    image = ctx.render(ctx.expand(stylemap, base=base), base=base)
    animation = []
    for t in ts:
        lerped = editing.lerp(base.stylemap, stylemap, t)
        animation.append(image if t == 1.0 else ctx.render(ctx.expand(lerped, base=base), base=base))
    return {"image": image, "animation": animation}


def former_lerp(ctx: OpContext, first, second, frames: int, position: float) -> dict:
    start, end = ctx.encode(first), ctx.encode(second)

    def at(t: float) -> torch.Tensor:
        return ctx.render(ctx.expand(editing.lerp(start.stylemap, end.stylemap, t), base=start), base=start)

    image = at(position)
    ts = torch.linspace(0, 1, frames).tolist()
    animation = [at(0.0 if i == 0 else 1.0 if i == frames - 1 else t) for i, t in enumerate(ts)]
    return {"image": image, "animation": animation}


def check_streamed(states, frames: int, reported: list[str]) -> dict:
    """The image alone first, before any frame; then one more frame per state; the last state complete."""
    first = next(states)
    assert list(first) == ["image"], "the image comes first, without the animation"
    assert reported == [], "no frame was rendered before the image was yielded"
    rest = list(states)
    final = rest[-1]
    assert [len(s["animation"]) for s in rest] == (list(range(1, frames + 1)) if frames else [0])
    assert len(reported) == frames  # one frame rendered per state: none rendered ahead
    assert all(s["image"] is first["image"] for s in rest)  # the image exactly as first yielded
    for state in rest:  # earlier states are left as they were yielded
        assert all(a is b for a, b in zip(state["animation"], final["animation"]))
    return final


@pytest.mark.parametrize("space", ["w+", "w"])
def test_local_transplant_streams_the_image_before_its_frames(registry, fresh, space):
    found = registry["local_transplant"]
    assert found.streams
    ctx = fresh()
    reported: list[str] = []
    ctx.progress = lambda fraction, desc: reported.append(desc)
    original, reference = pictures(ctx)
    states = found.stream(ctx, original=original, references=[reference], space=space, frames=8)
    final = check_streamed(states, 8, reported)

    former_ctx = fresh()
    former = former_local_transplant(former_ctx, *pictures(former_ctx), space=space, frames=8)
    assert all(torch.equal(a, b) for a, b in zip(final["animation"], former["animation"], strict=True))
    if space == "w+":  # rendered as the frames=0 path renders it; the last frame is the same edit
        exact = isinstance(ctx.renderer, ReferenceRenderer)
        torch.testing.assert_close(final["image"], former["image"], rtol=0, atol=0 if exact else 1e-4)
    else:
        assert torch.equal(final["image"], former["image"])

    run_ctx = fresh()
    original, reference = pictures(run_ctx)
    ran = found.run(run_ctx, original=original, references=[reference], space=space, frames=8)
    assert list(ran) == ["image", "animation"] and torch.equal(ran["image"], final["image"])
    assert all(torch.equal(a, b) for a, b in zip(ran["animation"], final["animation"], strict=True))


def test_local_transplant_without_frames_streams_an_empty_animation(registry, model):
    ctx = OpContext(model)
    original, reference = pictures(ctx)
    states = list(registry["local_transplant"].stream(ctx, original=original, references=[reference], frames=0))
    assert [list(s) for s in states] == [["image"], ["image", "animation"]]
    assert states[-1]["animation"] == [] and states[-1]["image"] is states[0]["image"]


def test_lerp_streams_the_image_before_its_frames(registry, fresh):
    found = registry["lerp"]
    assert found.streams
    ctx = fresh()
    reported: list[str] = []
    ctx.progress = lambda fraction, desc: reported.append(desc)
    first, second = ctx.picture(EXAMPLES / "neutral_face.png"), ctx.picture(EXAMPLES / "heart_eyes.png")
    final = check_streamed(found.stream(ctx, first=first, second=second, frames=8, position=0.3), 8, reported)

    former = former_lerp(fresh(), first, second, frames=8, position=0.3)
    assert torch.equal(final["image"], former["image"])
    assert all(torch.equal(a, b) for a, b in zip(final["animation"], former["animation"], strict=True))
    ran = found.run(fresh(), first=first, second=second, frames=8, position=0.3)
    assert torch.equal(ran["image"], final["image"])
    assert all(torch.equal(a, b) for a, b in zip(ran["animation"], final["animation"], strict=True))


# ------------------------------------------------------------------------------- the protocol
def test_a_plain_op_is_one_state_and_run_is_the_last_state(model):
    @op(name="plain", inputs=[ImageInput("original")], outputs=[ImageOutput("image")])
    def plain(ctx, original):
        return {"image": original.image, "ignored": 1}

    ctx = OpContext(model)
    picture = ctx.picture(EXAMPLES / "neutral_face.png")
    states = list(plain.stream(ctx, original=picture))
    assert not plain.streams and len(states) == 1 and list(states[0]) == ["image"]
    assert plain.run(ctx, original=picture)["image"] is picture.image


def test_states_merge_what_each_step_yields(model):
    @op(name="steps", inputs=[], outputs=[ImageOutput("image"), FramesOutput("animation")])
    def steps(ctx):
        yield {"image": 1}
        yield {"animation": [1]}
        yield {"image": 2, "unknown": 3}

    assert steps.streams
    ctx = OpContext(model)
    assert list(steps.stream(ctx)) == [{"image": 1}, {"image": 1, "animation": [1]}, {"image": 2, "animation": [1]}]
    assert steps.run(ctx) == {"image": 2, "animation": [1]}


def test_a_stream_missing_an_output_fails_naming_it(model):
    @op(name="unfinished", inputs=[], outputs=[ImageOutput("image"), FramesOutput("animation")])
    def unfinished(ctx):
        yield {"image": 1}

    @op(name="unreturned", inputs=[], outputs=[ImageOutput("image"), FramesOutput("animation")])
    def unreturned(ctx):
        return {"image": 1}

    ctx = OpContext(model)
    states = unfinished.stream(ctx)
    assert next(states) == {"image": 1}  # what came is shown; the end is the error
    with pytest.raises(TypeError, match="op 'unfinished' ended without yielding animation"):
        next(states)
    with pytest.raises(TypeError, match="op 'unfinished' ended without yielding animation"):
        unfinished.run(ctx)
    with pytest.raises(TypeError, match="op 'unreturned' did not return animation"):  # as before streaming
        unreturned.run(ctx)


def test_a_stream_of_non_dicts_or_a_non_dict_result_is_refused(model):
    @op(name="numbers", inputs=[], outputs=[ImageOutput("image")])
    def numbers(ctx):
        yield 1

    @op(name="listed", inputs=[], outputs=[ImageOutput("image")])
    def listed(ctx):
        return [{"image": 1}]

    with pytest.raises(TypeError, match="op 'numbers' yielded 1, not a dict of outputs"):
        numbers.run(OpContext(model))
    with pytest.raises(TypeError, match="op 'listed' must return a dict of outputs or yield dicts"):
        listed.run(OpContext(model))


def test_inputs_are_checked_before_the_first_state_and_closing_ends_the_op(model):
    ended: list[bool] = []

    @op(name="endless", inputs=[], outputs=[ImageOutput("image")])
    def endless(ctx):
        try:
            while True:
                yield {"image": 1}
        finally:
            ended.append(True)

    with pytest.raises(OpError, match="has no input nope"):
        next(endless.stream(OpContext(model), nope=1))
    states = endless.stream(OpContext(model))
    assert next(states) == {"image": 1} and ended == []
    states.close()
    assert ended == [True]


def test_growing_yields_new_lists():
    states = list(growing("animation", iter("abc")))
    assert states == [{"animation": ["a"]}, {"animation": ["a", "b"]}, {"animation": ["a", "b", "c"]}]
    assert states[0]["animation"] is not states[1]["animation"]
    assert list(growing("animation", [])) == [{"animation": []}]
