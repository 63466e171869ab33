"""The bundled default model (``smapgan.DEFAULT_MODEL``): complete, small, as good as its card says, and
every op runs on it with its default example, through the CLI's renderer and the app's alike.

The folder is built by ``scripts/build_default_model.py``; its ``figures.json`` holds the
figures the model card reports, which these tests hold the model to.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

import smapgan
from smapgan import StyleMapGAN
from smapgan.intake import images as imageio
from smapgan.latent.metrics import reconstruction_figures
from smapgan.ops import FramesOutput, ImageOutput, NumbersOutput, OpContext, discover
from smapgan.ops.examples import EXAMPLES_DIR, example_values

MODEL_DIR = Path(smapgan.DEFAULT_MODEL)
MAX_BYTES = 30 * 1024 * 1024

pytestmark = [
    pytest.mark.skipif(
        not (MODEL_DIR / "model.safetensors").is_file(),
        reason=f"the bundled default model is not in {MODEL_DIR} (build it: python scripts/build_default_model.py)",
    ),
    pytest.mark.usefixtures("one_torch_thread"),  # small models: one torch thread (see conftest)
]

REGISTRY = discover()
OPS = [o for o in REGISTRY.sorted() if o.examples]


@pytest.fixture(scope="module")
def model() -> StyleMapGAN:
    return StyleMapGAN.from_pretrained(MODEL_DIR)


@pytest.fixture(scope="module")
def figures() -> dict[str, Any]:
    return json.loads((MODEL_DIR / "figures.json").read_text())


def held_out_examples() -> list[dict[str, Any]]:
    index = json.loads((EXAMPLES_DIR / "index.json").read_text())
    return [e for e in index if e.get("split") == "val"]


def reconstruction(model: StyleMapGAN, image: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model.decode(model.encode(image))


# ----------------------------------------------------------------------------------- the folder
def test_folder_is_complete_and_small() -> None:
    names = {p.name for p in MODEL_DIR.iterdir()}
    assert {"config.json", "model.safetensors", "directions.safetensors", "README.md", "figures.json"} <= names
    size = sum(p.stat().st_size for p in MODEL_DIR.rglob("*") if p.is_file())
    assert size <= MAX_BYTES, f"{MODEL_DIR} is {size / 1e6:.1f} MB"


def test_model_card_names_sources_licenses_and_attribution() -> None:
    card = (MODEL_DIR / "README.md").read_text()
    header = card.split("---")[1]
    assert "library_name: smapgan" in header and "license:" in header
    for text in (
        "Noto Emoji by Google Inc, Apache-2.0",
        "Twemoji by Twitter, Inc and other contributors, CC-BY-4.0",
        "smapgan train",
        "MSE_src",
    ):
        assert text in card


def test_default_model_path_is_the_package_folder() -> None:
    from smapgan.defaults import default_model_path

    assert Path(default_model_path()) == MODEL_DIR


def test_directions_are_few_and_unit_per_cell(model: StyleMapGAN, figures: dict[str, Any]) -> None:
    c, side = model.config.latent_channel_size, model.config.latent_spatial_size
    assert 2 <= len(model.directions) <= 4
    for name, direction in model.directions.items():
        assert direction.shape == (c, side, side), name
        assert torch.isfinite(direction).all(), name
        # unit norm per stylemap cell: the L2 norm over all values is sqrt(number of cells) = side
        assert direction.norm().item() == pytest.approx(side, rel=1e-4), name
    assert sorted(d["name"] for d in figures["directions"]) == sorted(model.directions)


# ------------------------------------------------------------------------------ reconstruction
def test_reconstructs_held_out_examples_within_the_reported_mse(model: StyleMapGAN, figures: dict[str, Any]) -> None:
    held = figures["reconstruction"]["val"]
    examples = held_out_examples()
    assert examples, "index.json lists no held-out example"
    images = torch.cat([imageio.image_to_tensor(imageio.load_image(EXAMPLES_DIR / e["file"], 64)) for e in examples])
    errors = [reconstruction_figures(model, images[i : i + 1]).mse for i in range(len(images))]
    # Each example is one of the held-out images figures.json was measured on (same pixels, same path).
    for example, error in zip(examples, errors):
        recorded = held["per_image"][f"{example['source']}/{example['unified']}"]
        assert error == pytest.approx(recorded, abs=1e-4), example["file"]
    # The reported figure is a mean over the whole held-out split: a subset of k of its N images
    # may be somewhat harder; allow three standard errors of a k-subset mean.
    k, n = len(errors), held["count"]
    margin = 3 * held["mse_std"] / math.sqrt(k) * math.sqrt(max(n - k, 0) / max(n - 1, 1))
    mean = sum(errors) / k
    assert mean <= held["mse"] + margin, f"held-out examples: MSE {mean:.4f} > {held['mse']:.4f} + {margin:.4f}"
    assert max(errors) <= held["mse_max"] + 1e-4


# ------------------------------------------------------------------------------------ the ops
def test_every_builtin_op_declares_an_example() -> None:
    builtin = [o.name for o in REGISTRY.sorted() if o.source.startswith("builtin")]
    assert builtin
    assert [n for n in builtin if not REGISTRY[n].examples] == []


def check_image(value: Any, size: int) -> None:
    assert isinstance(value, torch.Tensor) and value.shape == (1, 3, size, size)
    assert torch.isfinite(value).all()
    # On the [-1, 1] scale (not [0, 1] or [0, 255]): renders are unclamped (leaky ReLU) and
    # overshoot somewhat, more so early in training; a broken network is off by far more.
    assert value.abs().max() < 10 and (value.abs() <= 1.5).float().mean() > 0.9
    assert value.clamp(-1, 1).std() > 0.05  # not a flat image
    assert imageio.tensor_to_image(value).size == (size, size)  # what the CLI saves and the app shows


def app_renderer(model: StyleMapGAN) -> Any:
    """The renderer the app uses by default (``smapgan.app.builder``): FastRenderer in exact mode."""
    from smapgan.fast import FastRenderer

    return FastRenderer(model)


@pytest.mark.parametrize("name", [o.name for o in OPS])
def test_op_runs_on_its_default_example(model: StyleMapGAN, name: str) -> None:
    found = REGISTRY[name]
    results = []
    for ctx in (OpContext(model), OpContext(model, renderer=app_renderer(model))):  # CLI's path, app's path
        result = found.run(ctx, **example_values(found, ctx))
        for output in found.outputs:
            value = result[output.name]
            if isinstance(output, ImageOutput):
                check_image(value, model.config.size)
            elif isinstance(output, FramesOutput):
                assert isinstance(value, list)
                for frame in value:
                    check_image(frame, model.config.size)
            elif isinstance(output, NumbersOutput):
                assert all(math.isfinite(v) for v in value.values())
        results.append(result)
    cli, app = results
    for output in found.outputs:
        if isinstance(output, ImageOutput):
            torch.testing.assert_close(app[output.name], cli[output.name], atol=2e-3, rtol=0)
        elif isinstance(output, FramesOutput):
            assert len(app[output.name]) == len(cli[output.name])


# Each op's identity: settings under which it must give back the plain reconstruction.
def _invariant(found: Any, ctx: OpContext, values: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    model = ctx.model
    name = found.name
    if name == "reconstruct":
        out = found.run(ctx, **values)
        original = values["original"]
        expected = reconstruction(model, original.image)
        mse = float(((expected.clamp(-1, 1) - original.image) ** 2).mean())
        assert out["metrics"]["mse"] == pytest.approx(mse, abs=1e-5)
        return out["reconstruction"], expected
    if name == "lerp":
        out = found.run(ctx, **{**values, "position": 0.0})
        assert torch.allclose(out["animation"][-1], reconstruction(model, values["second"].image), atol=1e-5)
        return out["image"], reconstruction(model, values["first"].image)
    if name == "local_transplant":
        out = found.run(ctx, **{**values, "strength": 0.0, "frames": 0})
        return out["image"], reconstruction(model, values["original"].image)
    if name == "unaligned_transplant":
        out = found.run(ctx, **{**values, "strength": 0.0})
        return out["image"], reconstruction(model, values["original"].image)
    if name == "semantic_edit":
        for direction in model.directions:
            moved = found.run(ctx, **{**values, "direction": direction, "strength": 1.5})["image"]
            assert (moved - reconstruction(model, values["original"].image)).abs().mean() > 1e-3, direction
        out = found.run(ctx, **{**values, "strength": 0.0})
        return out["image"], reconstruction(model, values["original"].image)
    if name == "random":
        out = found.run(ctx, **{**values, "truncation": 0.0, "source": "mapping"})
        with torch.inference_mode():
            expected = model.decode(ctx.mean_stylemap())
        first = found.run(ctx, **values)["image"]
        assert torch.equal(first, found.run(ctx, **values)["image"])  # a seed gives one image
        return out["image"], expected
    if name == "style_mix":
        out = found.run(ctx, **{**values, "style": values["content"]})
        return out["image"], reconstruction(model, values["content"].image)
    pytest.skip(f"no invariant known for op {name!r}")


@pytest.mark.parametrize("name", [o.name for o in OPS])
def test_op_identity_gives_the_reconstruction(model: StyleMapGAN, name: str) -> None:
    found = REGISTRY[name]
    ctx = OpContext(model)
    got, expected = _invariant(found, ctx, example_values(found, ctx))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_local_transplant_example_changes_mostly_the_brushed_region(model: StyleMapGAN) -> None:
    """Inside the brush the edit differs from the original far more than a cell away from the brushed cells.

    Whole stylemap cells are blended and the decoder's convolutions reach about one cell
    further, so "outside" starts one cell beyond the cells the brush touches.
    """
    import torch.nn.functional as F

    found = REGISTRY["local_transplant"]
    ctx = OpContext(model)
    values = example_values(found, ctx)
    edited = found.run(ctx, **values)["image"]
    base = reconstruction(model, values["original"].image)
    mask = values["references"][0].mask
    cell = ctx.size // model.config.latent_spatial_size
    near = F.max_pool2d(F.max_pool2d(mask, cell), 3, 1, 1)
    far = ~F.interpolate(near, scale_factor=cell, mode="nearest").bool().expand_as(edited)
    assert far.any(), "the example's brush covers (nearly) the whole image"
    change = (edited - base).abs()
    assert change[mask.bool().expand_as(edited)].mean() > 3 * change[far].mean()
