"""A new input kind is one class in one file: the API and the CLI take it with no other edit, the app
shows it as a text box, or with its own widget once that is one entry of the app's table.

:class:`ColorInput` below is a kind no smapgan module names. An op plugin (written to a folder of
``SMAPGAN_OPS_PATH``) declares it; the app shows it (a colour picker registered in
``smapgan.app.inputs.WIDGETS``, else a text box), the API lists it by name with its default and runs
it (gradio_client, against a live app), ``smapgan edit`` takes it as ``--set color=...``, and
malformed values are one-line errors everywhere.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from PIL import Image

from smapgan.ops import Input, OpContext, OpError, discover
from smapgan.ops.spec import parse_input, short_repr

EXAMPLES = Path(__file__).resolve().parent.parent / "smapgan" / "assets" / "examples"
NEUTRAL = str(EXAMPLES / "neutral_face.png")


@dataclass(frozen=True)
class ColorInput(Input):
    """An RGB colour ``#rrggbb``, given to the op as three numbers in [-1, 1]."""

    default: str = "#808080"
    kind: ClassVar[str] = "color"

    def default_value(self, model: Any = None) -> Any:
        return self.default

    def parse(self, value: Any, model: Any = None) -> Any:
        value = self.default if value in (None, "") else value
        if not isinstance(value, str) or not re.fullmatch(r"#[0-9a-fA-F]{6}", value):
            raise OpError(f"{self.name} must be a colour #rrggbb, got {short_repr(value)}")
        return tuple(int(value[i : i + 2], 16) / 127.5 - 1 for i in (1, 3, 5))

    def describe(self) -> str:
        return f"colour #rrggbb, default {self.default}"


def color_picker(ui: Any, item: ColorInput) -> Any:
    """The colour input's widget in the app (its entry in ``smapgan.app.inputs.WIDGETS``)."""
    import gradio as gr

    picker = gr.ColorPicker(value=ui.start(item.name, item.default), label=item.title, elem_id=ui.elem_id(item.name))
    return ui.single(item, picker)


TINT_OP = textwrap.dedent(
    """
    import torch

    from smapgan.ops import ImageInput, ImageOutput, SliderInput, op
    from tests.test_spec_kinds import ColorInput

    @op(name="tint", title="Tint", description="Mix the reconstruction with a colour.",
        inputs=[ImageInput("original"), ColorInput("color"), SliderInput("amount", default=1.0)],
        outputs=[ImageOutput("image")])
    def tint(ctx, original, color, amount):
        encoded = ctx.encode(original)
        image = ctx.render(encoded, base=encoded)
        return {"image": image * (1 - amount) + torch.tensor(color).view(1, 3, 1, 1) * amount}
    """
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small models: one torch thread (see conftest)


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "tint.py").write_text(TINT_OP)
    monkeypatch.setenv("SMAPGAN_OPS_PATH", str(folder))
    return folder


def color_of(path: Any) -> tuple[int, ...]:
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    assert (pixels == pixels[0]).all()  # amount 1: the whole image is the colour
    return tuple(int(v) for v in pixels[0])


def test_python_api_parses_and_checks_the_new_kind(plugins, tiny_model_dir):
    from smapgan import StyleMapGAN
    from smapgan.intake import images as imageio

    found = discover()["tint"]
    ctx = OpContext(StyleMapGAN.from_pretrained(tiny_model_dir))
    image = found.run(ctx, original=NEUTRAL, color="#ff0000")["image"]
    assert np.asarray(imageio.tensor_to_image(image))[0, 0].tolist() == [255, 0, 0]
    with pytest.raises(OpError, match="color must be a colour #rrggbb, got 'red'"):
        found.run(ctx, original=NEUTRAL, color="red")
    with pytest.raises(OpError, match="the limit is 2000"):  # the limits apply to every kind
        parse_input(found.input("color"), "#" * 5000)
    assert "color: colour #rrggbb, default #808080" in found.usage()


def test_cli_takes_the_new_kind(plugins, tiny_model_dir, tmp_path, capsys):
    from smapgan.cli import main

    out = tmp_path / "tinted.png"
    common = ["edit", "tint", "--model", str(tiny_model_dir), "--original", NEUTRAL]
    assert main([*common, "--set", "color=#00ff00", "--out", str(out)]) == 0
    assert color_of(out) == (0, 255, 0)
    capsys.readouterr()
    assert main([*common, "--set", "color=green", "--out", str(tmp_path / "no.png")]) == 2
    err = capsys.readouterr().err
    assert "color must be a colour #rrggbb" in err and len(err.strip().splitlines()) == 1
    assert main(["ops"]) == 0 and "color: colour #rrggbb" in capsys.readouterr().out


@pytest.mark.parametrize("registered", [True, False], ids=["own-widget", "text-box"])
def test_app_and_its_api_take_the_new_kind(plugins, tiny_model_dir, monkeypatch, registered):
    import gradio as gr
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from smapgan import StyleMapGAN
    from smapgan.app import build_demo, inputs

    if registered:
        monkeypatch.setitem(inputs.WIDGETS, ColorInput, color_picker)
    demo = build_demo(StyleMapGAN.from_pretrained(tiny_model_dir), registry=discover(), prefill=False)
    shown = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "tint-color"]
    assert [type(b) for b in shown] == [gr.ColorPicker if registered else gr.Textbox]
    params = {p["parameter_name"]: p for p in demo.get_api_info()["named_endpoints"]["/tint"]["parameters"]}
    assert list(params)[:3] == ["original", "color", "amount"]
    assert params["color"]["parameter_has_default"] and params["color"]["parameter_default"] == "#808080"
    demo.launch(prevent_thread_lock=True, quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        image = client.predict(original=handle_file(NEUTRAL), color="#0000ff", api_name="/tint")
        assert color_of(image) == (0, 0, 255)
        with pytest.raises(AppError, match="color must be a colour #rrggbb"):
            client.predict(original=handle_file(NEUTRAL), color="blue", api_name="/tint")
    finally:
        demo.close()


def test_a_kinds_own_fields_follow_the_name():
    """As docs/ops.md writes them: SliderInput(name, minimum, maximum, ...); label and info by keyword only
    (positional, -1 and 1 were the label and the help text, and the range stayed [0, 1])."""
    from smapgan.ops import SliderInput

    slider = SliderInput("amount", -1, 1, default=0.2)
    assert (slider.minimum, slider.maximum, slider.label, slider.info) == (-1, 1, "", "")
    with pytest.raises(TypeError):
        SliderInput("amount", -1, 1, 0.2, None, False, "", "Amount")  # a label is not positional
