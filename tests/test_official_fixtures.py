"""Every recorded output of the official code, reproduced through convert + from_pretrained."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from smapgan import StyleMapGAN
from smapgan.latent import editing
from smapgan.cli import main as cli_main

from .official import fixture_names, official_dir


def assert_close(name: str, ours: torch.Tensor, ref: torch.Tensor) -> None:
    assert ours.shape == ref.shape, f"{name}: shape {tuple(ours.shape)} != {tuple(ref.shape)}"
    tol = 1e-4 * max(1.0, ref.abs().max().item())
    err = (ours - ref).abs().max().item()
    assert err <= tol, f"{name}: max abs error {err:.3g} > {tol:.3g}"


@pytest.fixture(scope="module", params=fixture_names())
def converted(request, tmp_path_factory):
    name = request.param
    out = tmp_path_factory.mktemp(name)
    assert cli_main(["convert", str(official_dir() / f"{name}.pt"), str(out)]) == 0
    model = StyleMapGAN.from_pretrained(out)
    outputs = load_file(official_dir() / f"{name}.outputs.safetensors")
    with safe_open(official_dir() / f"{name}.outputs.safetensors", "pt") as f:
        config = json.loads(f.metadata()["config"])
    return name, model, outputs, config


def test_config_round_trip(converted):
    _, model, _, config = converted
    for key, value in model.config.to_dict().items():
        if key in config:
            assert config[key] == value, key


@torch.no_grad()
def test_encoder(converted):
    _, model, o, _ = converted
    assert_close("stylemap", model.encode(o["images"]), o["stylemap"])


@torch.no_grad()
def test_reconstruction(converted):
    _, model, o, _ = converted
    assert_close("reconstruction", model.decode(o["stylemap"]), o["reconstruction"])


@torch.no_grad()
def test_generation_and_truncation(converted):
    _, model, o, _ = converted
    assert_close("generated_stylemap", model.map(o["z"]), o["generated_stylemap"])
    assert_close("generated", model.generate(o["z"]), o["generated"])
    truncated = model.generate(o["z"], truncation=0.7, mean_stylemap=o["mean_stylemap"])
    assert_close("truncated_0_7", truncated, o["truncated_0_7"])


@torch.no_grad()
def test_blends(converted):
    _, model, o, _ = converted
    reference = o["reference_stylemap"]
    # The release takes the reference where its mask is > -1; ours where the mask is 1.
    mask_w = (o["mask_w"] > -1).float()
    mixed = model.decode(editing.blend_stylemap(o["stylemap"], reference, mask_w, pooling="max"))
    assert_close("mixed_w", mixed, o["mixed_w"])
    mask_wp = (o["mask_w_plus"] > -1).float().unsqueeze(1)
    pyramid = editing.blend_pyramid(model.expand(o["stylemap"]), model.expand(reference), mask_wp, pooling="max")
    assert_close("mixed_w_plus", model.synthesize(pyramid), o["mixed_w_plus"])


@torch.no_grad()
def test_discriminator(converted):
    _, model, o, _ = converted
    assert model.discriminator is not None
    assert_close("discriminator_logits", model.discriminator(o["images"]), o["discriminator_logits"])
