"""Op plugins: discovery, the invariants of the built-in ops (Python and `smapgan edit`), directions."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from smapgan import StyleMapGAN
from smapgan.latent import editing
from smapgan.intake import images as imageio
from smapgan.cli import build_parser, main
from smapgan.ops import OpContext, OpError, discover

EXAMPLES = Path(__file__).resolve().parent.parent / "smapgan" / "assets" / "examples"
BUILTIN = ["reconstruct", "lerp", "local_transplant", "unaligned_transplant", "semantic_edit"]

NEW_OP = textwrap.dedent(
    """
    from smapgan.ops import ImageInput, ImageOutput, SliderInput, op

    @op(name="brighten", title="Brighten", description="Add a constant to the reconstruction.",
        inputs=[ImageInput("original"), SliderInput("amount", minimum=-1, maximum=1, default=0.5)],
        outputs=[ImageOutput("image")])
    def brighten(ctx, original, amount):
        encoded = ctx.encode(original)
        return {"image": (ctx.render(encoded, base=encoded) + amount).clamp(-1, 1)}
    """
)
BROKEN_OP = "raise RuntimeError('boom at import')\n"


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small models: one torch thread (see conftest)


@pytest.fixture
def ctx(model) -> OpContext:
    return OpContext(model)


def recon(ctx: OpContext, picture) -> torch.Tensor:
    encoded = ctx.encode(picture)
    return ctx.render(encoded, base=encoded)


def eyes_mask(size: int = 32) -> torch.Tensor:
    return imageio.box_mask((0.1, 0.15, 0.9, 0.55), size)


# ------------------------------------------------------------------------ registry
def test_builtin_ops_are_discovered_in_order(registry):
    assert registry.errors == []
    assert registry.names()[: len(BUILTIN)] == BUILTIN
    for name in BUILTIN:
        assert registry[name].source.startswith("builtin:ops/")


def test_new_op_from_ops_path_is_a_cli_command_and_a_tab(tmp_path, monkeypatch, model):
    (tmp_path / "brighten.py").write_text(NEW_OP)
    (tmp_path / "broken.py").write_text(BROKEN_OP)
    monkeypatch.setenv("SMAPGAN_OPS_PATH", str(tmp_path))
    found = discover()
    assert "brighten" in found and found["brighten"].source.startswith("path:")
    assert [e.plugin for e in found.errors] == [str(tmp_path / "broken.py")]
    assert "boom at import" in found.errors[0].message

    # CLI: a sub-command generated from the spec.
    parser = build_parser()
    args = parser.parse_args(["edit", "brighten", "--original", "a.png", "--set", "amount=0.25", "--out", "o.png"])
    assert args._op.name == "brighten" and args.set == ["amount=0.25"]

    # App: a tab and an API endpoint, and the broken plugin is named on the page.
    from smapgan.app import build_demo

    demo = build_demo(model, registry=found)
    api_names = {fn.api_name for fn in demo.fns.values() if fn.api_name}
    assert {"brighten", *BUILTIN} <= api_names
    import gradio as gr

    tabs = {b.label for b in demo.blocks.values() if isinstance(b, gr.Tab)}
    assert "Brighten" in tabs
    banners = [b.value for b in demo.blocks.values() if isinstance(b, gr.Markdown) and b.elem_id == "plugin-errors"]
    assert banners and "broken.py" in banners[0] and "boom at import" in banners[0]


def test_invalid_specs_are_reported_by_name(tmp_path):
    (tmp_path / "bad_name.py").write_text(
        "from smapgan.ops import ImageOutput, op\n"
        "@op(name='Bad Name', inputs=[], outputs=[ImageOutput('image')])\n"
        "def f(ctx):\n    return {}\n"
    )
    (tmp_path / "bad_args.py").write_text(
        "from smapgan.ops import ImageInput, ImageOutput, op\n"
        "@op(name='bad_args', inputs=[ImageInput('original')], outputs=[ImageOutput('image')])\n"
        "def f(ctx):\n    return {}\n"
    )
    (tmp_path / "dup.py").write_text(NEW_OP.replace('"brighten"', '"reconstruct"'))
    (tmp_path / "nothing.py").write_text("x = 1\n")
    found = discover(paths=[str(tmp_path), str(tmp_path / "missing")])
    by_plugin = {Path(e.plugin).name: e.message for e in found.errors}
    assert "must match" in by_plugin["bad_name.py"]
    assert "does not accept original" in by_plugin["bad_args.py"]
    assert "already provided" in by_plugin["dup.py"]
    assert "defines no op" in by_plugin["nothing.py"]
    assert "does not exist" in by_plugin["missing"]
    assert found["reconstruct"].source.startswith("builtin:")


# ----------------------------------------------------------------------- invariants
def test_reconstruct_reports_mse_and_psnr(registry, ctx):
    original = ctx.picture(EXAMPLES / "heart_eyes.png")
    out = registry["reconstruct"].run(ctx, original=original)
    expected = ((recon(ctx, original).clamp(-1, 1) - original.image) ** 2).mean().item()
    assert torch.equal(out["reconstruction"], recon(ctx, original))
    assert out["metrics"]["mse"] == pytest.approx(expected)
    assert out["metrics"]["psnr_db"] == pytest.approx(10 * math.log10(4 / expected))


def test_lerp_endpoints_and_frames(registry, ctx):
    a, b = ctx.picture(EXAMPLES / "neutral_face.png"), ctx.picture(EXAMPLES / "heart_eyes.png")
    out = registry["lerp"].run(ctx, first=a, second=b, frames=5, position=0.0)
    assert len(out["animation"]) == 5
    assert torch.equal(out["animation"][0], recon(ctx, a)) and torch.equal(out["image"], recon(ctx, a))
    assert torch.equal(out["animation"][-1], recon(ctx, b))
    mid = registry["lerp"].run(ctx, first=a, second=b, frames=2, position=0.5)["image"]
    halfway = editing.lerp(ctx.encode(a).stylemap, ctx.encode(b).stylemap, 0.5)
    expected = ctx.render(ctx.expand(halfway, base=None), base=None)
    assert torch.allclose(mid, expected)


@pytest.mark.parametrize("space", ["w+", "w"])
def test_local_transplant_empty_and_full_masks(registry, ctx, space):
    original = ctx.picture(EXAMPLES / "neutral_face.png")
    empty = ctx.picture(EXAMPLES / "heart_eyes.png", torch.zeros(1, 1, 32, 32))
    full = ctx.picture(EXAMPLES / "heart_eyes.png", torch.ones(1, 1, 32, 32))
    op = registry["local_transplant"]
    # A required mask that selects nothing is refused with what to do (app, API and CLI alike).
    with pytest.raises(OpError, match="brush a region on the reference first"):
        op.run(ctx, original=original, references=[empty], space=space)
    assert torch.equal(op.run(ctx, original=original, references=[full], space=space)["image"], recon(ctx, full))
    zero = op.run(ctx, original=original, references=[full], space=space, strength=0)["image"]
    assert torch.equal(zero, recon(ctx, original))
    # No mask drawn at all counts as empty.
    with pytest.raises(OpError, match="brush a region on the reference first"):
        op.run(ctx, original=original, references=[EXAMPLES / "heart_eyes.png"], space=space)


def test_local_transplant_frames_and_several_references(registry, ctx):
    original = ctx.picture(EXAMPLES / "neutral_face.png")
    eyes = ctx.picture(EXAMPLES / "heart_eyes.png", eyes_mask())
    mouth = ctx.picture(EXAMPLES / "grinning.png", imageio.box_mask((0.2, 0.6, 0.8, 0.95), 32))
    out = registry["local_transplant"].run(ctx, original=original, references=[eyes, mouth], frames=4)
    assert len(out["animation"]) == 4
    assert torch.equal(out["animation"][0], recon(ctx, original))
    assert torch.equal(out["animation"][-1], out["image"])
    expected = editing.blend_pyramid(ctx.pyramid(ctx.encode(original)), ctx.pyramid(ctx.encode(eyes)), eyes.mask)
    expected = editing.blend_pyramid(expected, ctx.pyramid(ctx.encode(mouth)), mouth.mask)
    assert torch.equal(out["image"], ctx.render(expected, base=None))
    with pytest.raises(OpError, match="at most 3"):
        registry["local_transplant"].run(ctx, original=original, references=[eyes] * 4)


@pytest.mark.parametrize("space", ["w+", "w"])
def test_unaligned_zero_offset_equals_local_transplant(registry, ctx, space):
    original = ctx.picture(EXAMPLES / "neutral_face.png")
    reference = ctx.picture(EXAMPLES / "heart_eyes.png", eyes_mask())
    local = registry["local_transplant"].run(ctx, original=original, references=[reference], space=space)["image"]
    op = registry["unaligned_transplant"]
    assert torch.equal(op.run(ctx, original=original, reference=reference, space=space)["image"], local)
    # Clicking the region's own center is a zero offset too.
    centered = op.run(ctx, original=original, reference=reference, placements="0.5,0.35", space=space)["image"]
    assert torch.equal(centered, local)
    # A box selects the same region as the equivalent brushed mask.
    boxed = op.run(
        ctx, original=original, reference=EXAMPLES / "heart_eyes.png", box="0.1,0.15,0.9,0.55", space=space
    )["image"]
    assert torch.equal(boxed, local)


def test_unaligned_moves_whole_cells(registry, ctx):
    original = ctx.picture(EXAMPLES / "neutral_face.png")
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:16, 8:16] = 1  # stylemap cell (1, 1) of a 4x4 grid
    reference = ctx.picture(EXAMPLES / "heart_eyes.png", mask)
    # Center (12, 12) px -> (x=0.625, y=0.375) of 32 px is one cell (8 px) to the right.
    moved = registry["unaligned_transplant"].run(ctx, original=original, reference=reference, placements="0.625,0.375")
    shifted = editing.transplant_pyramid(ctx.pyramid(ctx.encode(original)), ctx.pyramid(ctx.encode(reference)), mask,
                                         (0, 8), 32)
    assert torch.equal(moved["image"], ctx.render(shifted, base=None))
    two = registry["unaligned_transplant"].run(
        ctx, original=original, reference=reference, placements="0.625,0.375; 0.375,0.625"
    )["image"]
    assert not torch.equal(two, moved["image"])
    with pytest.raises(OpError, match="brush a region on the reference first"):
        registry["unaligned_transplant"].run(ctx, original=original, reference=EXAMPLES / "heart_eyes.png")


def test_semantic_edit(registry, ctx, model):
    original = ctx.picture(EXAMPLES / "neutral_face.png")
    op = registry["semantic_edit"]
    assert torch.equal(op.run(ctx, original=original, direction="demo", strength=0)["image"], recon(ctx, original))
    edited = op.run(ctx, original=original, direction="demo", strength=1.5)["image"]
    expected = ctx.render(ctx.expand(ctx.encode(original).stylemap + 1.5 * model.directions["demo"][None], base=None),
                          base=None)
    assert torch.allclose(edited, expected)
    # A mask limits the edit to its stylemap cells.
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., :8, :8] = 1
    local = op.run(ctx, original=ctx.picture(EXAMPLES / "neutral_face.png", mask), direction="demo", strength=1.5)
    stylemap = editing.apply_direction(ctx.encode(original).stylemap, model.directions["demo"], 1.5, mask)
    changed = (stylemap - ctx.encode(original).stylemap).abs().sum(1)[0] > 0
    assert changed.tolist() == [[True] + [False] * 3] + [[False] * 4] * 3
    assert torch.allclose(local["image"], ctx.render(ctx.expand(stylemap, base=None), base=None))
    with pytest.raises(OpError, match="one of demo"):
        op.run(ctx, original=original, direction="missing", strength=1)


def test_random_and_style_mix(registry, ctx):
    a = registry["random"].run(ctx, seed=1, truncation=0.7)["image"]
    assert torch.equal(a, registry["random"].run(ctx, seed=1, truncation=0.7)["image"])
    assert not torch.equal(a, registry["random"].run(ctx, seed=2, truncation=0.7)["image"])
    mean_1 = registry["random"].run(ctx, seed=1, truncation=0.0)["image"]
    assert torch.allclose(mean_1, registry["random"].run(ctx, seed=2, truncation=0.0)["image"], atol=1e-5)
    face = ctx.picture(EXAMPLES / "grinning.png")
    assert torch.equal(registry["style_mix"].run(ctx, content=face, style=face)["image"], recon(ctx, face))


def test_stylemaps_are_encoded_once(registry, model):
    ctx = OpContext(model)
    original = ctx.picture(EXAMPLES / "neutral_face.png")
    reference = ctx.picture(EXAMPLES / "neutral_face.png", eyes_mask(32))  # the same pixels, with a region
    for strength in (0.0, 0.5, 1.0):
        registry["local_transplant"].run(ctx, original=original, references=[reference], strength=strength)
    codes = ctx.renderer.codes.stylemaps
    assert codes.misses == 1 and codes.hits >= 5 and ctx.renderer.pyramids.misses == 1  # encoded, expanded once


def test_bad_values_are_op_errors(registry, ctx):
    with pytest.raises(OpError, match=r"strength must be in \[0, 1\]"):
        registry["local_transplant"].run(ctx, original=EXAMPLES / "grin.png", references=[EXAMPLES / "grin.png"], strength=2)
    with pytest.raises(OpError, match="needs an image"):
        registry["reconstruct"].run(ctx)
    with pytest.raises(OpError, match="no input"):
        registry["reconstruct"].run(ctx, original=EXAMPLES / "grin.png", nope=1)


# ---------------------------------------------------------------------- smapgan edit
def png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_cli_edit_invariants(tiny_model_dir, tmp_path, capsys, registry, model):
    from smapgan.device import renderer_for_device

    ctx = OpContext(model, renderer_for_device(model, "cpu"))  # the CLI's renderer (smapgan.device)
    m = str(tiny_model_dir)
    neutral, hearts = str(EXAMPLES / "neutral_face.png"), str(EXAMPLES / "heart_eyes.png")
    black, white = tmp_path / "black.png", tmp_path / "white.png"
    Image.new("RGB", (64, 64)).save(black)
    Image.new("L", (7, 7), 255).save(white)  # another size: resized to the image
    eyes = tmp_path / "eyes.png"
    Image.fromarray((eyes_mask(64)[0, 0].numpy() * 255).astype(np.uint8)).save(eyes)

    assert main(["edit", "reconstruct", "--model", m, "--original", neutral, "--out", str(tmp_path / "r.png")]) == 0
    assert "psnr_db=" in capsys.readouterr().out
    expected = imageio.tensor_to_image(recon(ctx, ctx.picture(neutral)))
    assert np.array_equal(png(tmp_path / "r.png"), np.asarray(expected))

    args = ["edit", "local_transplant", "--model", m, "--original", neutral, "--reference", hearts]
    capsys.readouterr()
    assert main([*args, "--mask", str(black), "--out", str(tmp_path / "empty.png")]) == 2
    assert main([*args, "--out", str(tmp_path / "empty.png")]) == 2  # no --mask: the same
    # named by its flags: the CLI has no brush (issue 27)
    assert capsys.readouterr().err.count("error: --reference needs a region: give a --mask FILE") == 2
    assert not (tmp_path / "empty.png").exists()
    assert main([*args, "--mask", str(white), "--set", "space=w", "--out", str(tmp_path / "full.png")]) == 0
    # The whole reference: its reconstruction, to the fast renderer's rounding (patched vs full synthesis).
    full = np.asarray(imageio.tensor_to_image(recon(ctx, ctx.picture(hearts)))).astype(int)
    assert np.abs(png(tmp_path / "full.png").astype(int) - full).max() <= 1
    assert main([*args, "--mask", str(eyes), "--set", "frames=3", "--out", str(tmp_path / "lt.png")]) == 0
    assert Image.open(tmp_path / "lt_animation.gif").n_frames == 3

    un = ["edit", "unaligned_transplant", "--model", m, "--original", neutral, "--reference", hearts, "--mask", str(eyes)]
    assert main([*un, "--out", str(tmp_path / "un.png")]) == 0
    assert np.array_equal(png(tmp_path / "un.png"), png(tmp_path / "lt.png"))
    capsys.readouterr()
    assert main([*un[:-2], "--out", str(tmp_path / "none.png")]) == 2  # neither a mask nor a box
    assert "error: --reference needs a region: give a --mask FILE for it" in capsys.readouterr().err

    se = ["edit", "semantic_edit", "--model", m, "--original", neutral, "--set", "direction=demo"]
    assert main([*se, "--set", "strength=0", "--out", str(tmp_path / "se.png")]) == 0
    assert np.array_equal(png(tmp_path / "se.png"), png(tmp_path / "r.png"))

    assert main(["edit", "lerp", "--model", m, "--first", neutral, "--second", hearts, "--out", str(tmp_path / "l.png")]) == 0
    assert Image.open(tmp_path / "l_animation.gif").n_frames == 8
    capsys.readouterr()


def test_cli_edit_errors_are_one_line(tiny_model_dir, tmp_path, capsys):
    m = str(tiny_model_dir)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"definitely not a png")
    cases = [
        (["edit", "reconstruct", "--model", m, "--original", str(bad), "--out", "x.png"], "not an image"),
        (["edit", "semantic_edit", "--model", m, "--original", str(bad), "--set", "strength=99", "--out", "x.png"],
         "strength must be in"),
        (["edit", "lerp", "--model", m, "--first", str(bad), "--second", str(bad), "--set", "speed=1", "--out", "x"],
         "KEY one of"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_ops_lists_inputs(capsys):
    assert main(["ops"]) == 0
    out = capsys.readouterr().out
    for name in BUILTIN:
        assert f"{name}:" in out
    assert "references: 1-3 images + required mask" in out


# ------------------------------------------------------------------------ directions
def test_learn_direction_methods():
    from smapgan.latent.directions import learn_direction

    g = torch.Generator().manual_seed(0)
    axis = torch.zeros(8, 4, 4)
    axis[3, 1, 2] = 1.0
    noise = lambda n: torch.randn(n, 8, 4, 4, generator=g)  # noqa: E731
    pos, neg = noise(40) + 2 * axis, noise(40) - 2 * axis
    for method in ("logistic", "mean"):
        fit = learn_direction(pos, neg, method)
        assert fit.direction.shape == (8, 4, 4)
        assert fit.direction.norm().item() == pytest.approx(4.0, rel=1e-5)  # unit norm per cell: sqrt(16)
        assert fit.accuracy > 0.95
        cosine = (fit.direction.flatten() @ axis.flatten()) / fit.direction.norm()
        assert cosine > 0.6, method
        assert fit.gap > 0


def test_direction_command_saves_with_the_model(tiny_model_dir, tmp_path, capsys):
    pos_dir, neg_dir = tmp_path / "pos", tmp_path / "neg"
    pos_dir.mkdir()
    neg_dir.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        noise = rng.integers(0, 40, (32, 32, 3))
        Image.fromarray((noise + [200, 0, 0]).astype(np.uint8)).save(pos_dir / f"{i}.png")
        Image.fromarray((noise + [0, 0, 200]).astype(np.uint8)).save(neg_dir / f"{i}.png")
    out = tmp_path / "model"
    argv = ["direction", "--positive", str(pos_dir), "--negative", str(neg_dir), "--name", "red",
            "--model", str(tiny_model_dir), "--out", str(out), "--steps", "50"]
    assert main(argv) == 0
    assert "training accuracy" in capsys.readouterr().out
    loaded = StyleMapGAN.from_pretrained(out)
    assert set(loaded.directions) == {"demo", "red"}
    assert loaded.directions["red"].norm().item() == pytest.approx(4.0, rel=1e-4)
    argv[argv.index(str(tiny_model_dir))] = str(out)
    assert main(argv) == 2  # exists already
    assert "--overwrite" in capsys.readouterr().err


def test_wheel_ships_builtin_ops_not_a_top_level_ops(tmp_path):
    """`pip wheel` puts ops/ under smapgan/builtin_ops and never installs a package named `ops`."""
    import shutil
    import subprocess
    import sys
    import zipfile

    root = Path(__file__).resolve().parent.parent
    source = tmp_path / "src"
    shutil.copytree(root, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__", "runs", "data", ".cache"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "whl"), str(source)],
        check=True, capture_output=True,
    )
    names = zipfile.ZipFile(next((tmp_path / "whl").glob("*.whl"))).namelist()
    for name in BUILTIN:
        assert f"smapgan/builtin_ops/{name}.py" in names
    assert not [n for n in names if n.startswith("ops/")]
    assert "smapgan/assets/examples/heart_eyes.png" in names


def test_entry_point_plugins(tmp_path, monkeypatch):
    """Installed packages expose ops through the `smapgan.ops` entry-point group."""
    import importlib.metadata

    package = tmp_path / "ep_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "brighten.py").write_text(NEW_OP)
    monkeypatch.syspath_prepend(str(tmp_path))
    group = "smapgan.ops"
    entries = [
        importlib.metadata.EntryPoint("brighten", "ep_pkg.brighten", group),  # a module holding ops
        importlib.metadata.EntryPoint("brighten_op", "ep_pkg.brighten:brighten", group),  # the Op itself: a dup
        importlib.metadata.EntryPoint("gone", "ep_pkg.not_there", group),
    ]
    real = importlib.metadata.entry_points
    monkeypatch.setattr(
        importlib.metadata, "entry_points", lambda **kw: entries if kw.get("group") == group else real(**kw)
    )
    found = discover(paths=[])
    assert found["brighten"].source == "entry point:brighten = ep_pkg.brighten"
    messages = {e.plugin.split(" = ")[0]: e.message for e in found.errors}
    assert "already provided" in messages["brighten_op"]
    assert "ModuleNotFoundError" in messages["gone"]


def test_op_specs_know_nothing_of_the_app():
    """`smapgan.ops` imports without Gradio, and neither it nor a built-in op imports `smapgan.app`
    (not even for type hints): the app holds the table from input kind to widget."""
    import ast
    import importlib.util
    import subprocess
    import sys

    check = "import sys, smapgan.ops; assert not {'gradio', 'smapgan.app'} & set(sys.modules), 'imported'"
    subprocess.run([sys.executable, "-c", check], check=True)
    root = Path(__file__).resolve().parent.parent
    for path in [*(root / "smapgan" / "ops").glob("*.py"), *(root / "ops").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [importlib.util.resolve_name("." * node.level + (node.module or ""), "smapgan.ops")]
            else:
                names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            assert not [n for n in names if n.split(".")[:2] == ["smapgan", "app"]], f"{path.name} imports {names}"
