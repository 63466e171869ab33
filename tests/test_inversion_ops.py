"""The Inversion setting: the op context refines every image input of every op, cached per image and setting."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch

import smapgan.ops.inversion as inversion_module
from smapgan.cli import main
from smapgan.ops import OpContext, discover
from smapgan.ops.inversion import Inversion
from smapgan.render import ReferenceRenderer
from tests.reliability import free_port

EXAMPLES = Path(__file__).resolve().parent.parent / "smapgan" / "assets" / "examples"
NEUTRAL, HEARTS = str(EXAMPLES / "neutral_face.png"), str(EXAMPLES / "heart_eyes.png")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small models: one torch thread (see conftest)


@pytest.fixture
def refine_calls(monkeypatch) -> list[int]:
    """Count refine() calls made through the op context."""
    calls: list[int] = []
    real = inversion_module.refine

    def counting(*args, **kwargs):
        calls.append(kwargs.get("steps", 0))
        return real(*args, **kwargs)

    monkeypatch.setattr(inversion_module, "refine", counting)
    return calls


def test_refined_inversion_fits_better_and_is_cached(model, registry, refine_calls):
    op = registry["reconstruct"]
    plain = op.run(OpContext(model), original=NEUTRAL)["metrics"]["mse"]
    messages: list[str] = []
    ctx = OpContext(model, progress=lambda f, d: messages.append(d),
                    inversion=Inversion(steps=20))
    refined = op.run(ctx, original=NEUTRAL)["metrics"]["mse"]
    assert refined < plain
    assert refine_calls == [20]
    assert messages and messages[-1] == "refining image: step 20/20"
    # Later edits of the same image with the same setting reuse the refined code.
    again = op.run(ctx, original=NEUTRAL)["metrics"]["mse"]
    assert again == refined and refine_calls == [20]
    lerp = registry["lerp"].run(ctx, first=NEUTRAL, second=HEARTS, frames=2, position=0.0)
    assert refine_calls == [20, 20]  # only the new image
    torch.testing.assert_close(lerp["image"], op.run(ctx, original=NEUTRAL)["reconstruction"])
    # Other settings are other entries; encoder only is unchanged.
    ctx.inversion = Inversion(steps=10)
    op.run(ctx, original=NEUTRAL)
    assert refine_calls == [20, 20, 10]
    ctx.inversion = Inversion()
    assert op.run(ctx, original=NEUTRAL)["metrics"]["mse"] == plain


def test_plugin_ops_get_it_for_free(model, registry, refine_calls):
    """Every image input of every op: a transplant refines the original and each reference."""
    from smapgan.intake import images as imageio

    ctx = OpContext(model, inversion=Inversion(steps=3))
    mask = imageio.box_mask((0.1, 0.1, 0.9, 0.5), 32)
    registry["local_transplant"].run(ctx, original=NEUTRAL, references=[ctx.picture(HEARTS, mask)])
    assert refine_calls == [3, 3]


def test_stopped_refinement_is_used_but_not_cached(model, registry, refine_calls):
    stop = threading.Event()
    stop.set()
    ctx = OpContext(model, inversion=Inversion(steps=50), stop=stop)
    out = registry["reconstruct"].run(ctx, original=NEUTRAL)
    assert torch.isfinite(out["reconstruction"]).all()
    stop.clear()
    registry["reconstruct"].run(ctx, original=NEUTRAL)
    assert refine_calls == [50, 50]  # refined again, to the end this time


def test_cli_refine_steps(tiny_model_dir, tmp_path, capsys):
    def mse(*extra: str) -> float:
        argv = ["edit", "reconstruct", "--model", str(tiny_model_dir), "--original", NEUTRAL,
                "--out", str(tmp_path / "out.png"), *extra]
        assert main(argv) == 0
        line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("metrics:")][0]
        return float(line.split("mse=")[1].split()[0])

    assert mse("--refine-steps", "15") < mse()


def test_cli_refines_through_the_fast_decoder_on_cpu(tiny_model_dir, tmp_path, monkeypatch):
    """``smapgan edit --refine-steps`` back-propagates through the same decoder as the app and the
    in-process op on a CPU (the renderer's folded one), not the model's slower modules (issue 28)."""
    from smapgan.fast.graph import GradDecoder

    decoders = []
    real = inversion_module.refine
    monkeypatch.setattr(inversion_module, "refine", lambda *a, **kw: decoders.append(kw["decoder"]) or real(*a, **kw))
    argv = ["edit", "reconstruct", "--model", str(tiny_model_dir), "--original", NEUTRAL,
            "--out", str(tmp_path / "out.png"), "--refine-steps", "2", "--device", "cpu"]
    assert main(argv) == 0
    assert len(decoders) == 1 and isinstance(decoders[0], GradDecoder)


def test_inversion_setting_is_validated():
    with pytest.raises(ValueError, match="steps"):
        Inversion(steps=-1)
    with pytest.raises(ValueError, match="inversion must be"):
        Inversion.from_choice("magic", 10)
    assert not Inversion.from_choice("encoder only", 100).active
    assert Inversion.from_choice("refined", 30).steps == 30


# ----------------------------------------------------------------------------- the app over HTTP
@pytest.fixture(scope="module")
def client(model):
    from gradio_client import Client

    from smapgan.app import build_demo

    demo = build_demo(model, renderer=ReferenceRenderer(model), registry=discover(paths=[]), prefill=False)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield Client(demo.local_url, verbose=False)
    finally:
        demo.close()


def test_app_inversion_control(client, refine_calls):
    from gradio_client import handle_file

    named = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    params = [p["parameter_name"] for p in named["/reconstruct"]["parameters"]]
    assert params[-2:] == ["inversion", "refine_steps"]
    assert "inversion" not in [p["parameter_name"] for p in named["/random"]["parameters"]]  # no image input

    _, plain = client.predict(original=handle_file(NEUTRAL), api_name="/reconstruct")
    assert refine_calls == []
    start = time.perf_counter()
    _, refined = client.predict(
        original=handle_file(NEUTRAL), inversion="refined", refine_steps=40, api_name="/reconstruct"
    )
    first = time.perf_counter() - start
    assert refined["mse"] < plain["mse"] and refine_calls == [40]
    start = time.perf_counter()
    _, again = client.predict(
        original=handle_file(NEUTRAL), inversion="refined", refine_steps=40, api_name="/reconstruct"
    )
    second = time.perf_counter() - start
    assert again == refined and refine_calls == [40]  # the session's cache: refined once
    assert second < first
    with pytest.raises(Exception, match="steps must be in"):
        client.predict(original=handle_file(NEUTRAL), inversion="refined", refine_steps=10_000, api_name="/reconstruct")


def test_stop_button_sets_the_session_event():
    from smapgan.app import inversion as control

    session = control.InversionSession()
    control._stop(session)
    assert session.stop.is_set()
    inversion, stop = control.settings("refined", 30, session)
    assert inversion.steps == 30 and stop is session.stop and not stop.is_set()  # each run starts cleared


def test_fast_renderer_edits_refined_codes_too(model, registry):
    from smapgan.fast import FastRenderer

    inversion = Inversion(steps=5)
    exact = registry["reconstruct"].run(OpContext(model, inversion=inversion), original=NEUTRAL)["reconstruction"]
    ctx = OpContext(model, FastRenderer(model), inversion=inversion)
    fast = registry["reconstruct"].run(ctx, original=NEUTRAL)["reconstruction"]
    torch.testing.assert_close(fast, exact, atol=1e-4, rtol=1e-4)
