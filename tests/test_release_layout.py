"""State-dict names and shapes equal the release's, so release weights load strictly."""

from __future__ import annotations

import pytest
import torch

from smapgan import StyleMapGAN, StyleMapGANConfig

from .official import official_dir

LAYOUTS = {
    "keys-256-8x8.tsv": StyleMapGANConfig(size=256, latent_spatial_size=8, latent_channel_size=64),
    "keys-1024-16x16-small.tsv": StyleMapGANConfig(
        size=1024, latent_spatial_size=16, latent_channel_size=64, small_generator=True
    ),
}


def read_keys(path) -> dict[str, dict[str, tuple[int, ...]]]:
    keys: dict[str, dict[str, tuple[int, ...]]] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        part, name, shape = line.split("\t")
        keys.setdefault(part, {})[name] = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
    return keys


@pytest.mark.parametrize("tsv", sorted(LAYOUTS))
def test_state_dict_matches_release_layout(tsv):
    expected = read_keys(official_dir() / tsv)
    with torch.device("meta"):  # no memory for 100M+ parameters
        model = StyleMapGAN(LAYOUTS[tsv])
    ours = {"g_ema": model.generator, "e_ema": model.encoder, "discriminator": model.discriminator}
    assert set(expected) == set(ours)
    for part, module in ours.items():
        got = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        assert got == expected[part], f"{part}: keys or shapes differ"
