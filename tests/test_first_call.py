"""Every op that renders, first call and next call, through the fast renderer: the reference's result.

The fast renderer makes maps lazily (only where a call needs them), keeps what
it made for the next call, and (in the app) completes them while idle; none of
that may change a result. Each op runs twice on a fresh renderer (the first call
of a new pair, then a next call with other settings) and every output image and
frame is compared with the same op on the reference renderer (plain
``model.synthesize`` of the same edit): within 1e-4 in exact mode, at 40 dB PSNR
or more in fast mode (bf16 forced, whatever this CPU would choose).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from smapgan import StyleMapGAN
from smapgan.fast import FastRenderer
from smapgan.fast.precision import Precision
from smapgan.ops import OpContext
from smapgan.render import ReferenceRenderer
from tests.models import psnr

EXAMPLES = Path(__file__).resolve().parent.parent / "smapgan" / "assets" / "examples"
ATOL = 1e-4
PSNR_MIN = 40.0


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small models: one torch thread (see conftest)


@pytest.fixture(scope="module")
def model(tiny_model_dir) -> StyleMapGAN:
    model = StyleMapGAN.from_pretrained(tiny_model_dir)
    with torch.no_grad():  # off the initialisation, so that every layer matters
        g = torch.Generator().manual_seed(0)
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.2)
    return model


def box(y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    m = torch.zeros(1, 1, 32, 32)
    m[..., y0:y1, x0:x1] = 1
    return m


A, B = EXAMPLES / "neutral_face.png", EXAMPLES / "heart_eyes.png"
# op -> (first call's inputs, next call's inputs); ("pic", path, mask) is a picture with an optional mask
CALLS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "reconstruct": ({"original": ("pic", A, None)}, {"original": ("pic", B, None)}),
    "lerp": ({"first": ("pic", A, None), "second": ("pic", B, None), "frames": 3, "position": 0.3},
             {"first": ("pic", A, None), "second": ("pic", B, None), "frames": 3, "position": 0.75}),
    "local_transplant": (
        {"original": ("pic", A, None), "references": [("pic", B, box(4, 16, 4, 28))], "space": "w+", "frames": 0},
        {"original": ("pic", A, None), "references": [("pic", B, box(12, 28, 0, 16))], "space": "w+", "frames": 3},
    ),
    "local_transplant/w": (
        {"original": ("pic", A, None), "references": [("pic", B, box(4, 16, 4, 28))], "space": "w", "frames": 0},
        {"original": ("pic", A, None), "references": [("pic", B, box(12, 28, 0, 16))], "space": "w", "frames": 2,
         "feather": 2},
    ),
    "unaligned_transplant": (
        {"original": ("pic", A, None), "reference": ("pic", B, box(8, 16, 8, 16)), "placements": "0.6,0.4"},
        {"original": ("pic", A, None), "reference": ("pic", B, box(8, 16, 8, 16)), "placements": "0.3,0.7"},
    ),
    "semantic_edit": ({"original": ("pic", A, None), "direction": "demo", "strength": 1.5},
                      {"original": ("pic", A, box(0, 16, 0, 16)), "direction": "demo", "strength": -1.0}),
    "style_mix": ({"content": ("pic", A, None), "style": ("pic", B, None), "mix": "coarse"},
                  {"content": ("pic", A, None), "style": ("pic", B, None), "mix": "fine"}),
    "random": ({"seed": 1, "truncation": 0.7}, {"seed": 2, "truncation": 0.5}),
}


def resolve(ctx: OpContext, value: Any) -> Any:
    if isinstance(value, tuple) and value and value[0] == "pic":
        return ctx.picture(value[1], value[2])
    if isinstance(value, list):
        return [resolve(ctx, v) for v in value]
    return value


def images_of(result: dict[str, Any]) -> list[torch.Tensor]:
    out = []
    for value in result.values():
        if isinstance(value, torch.Tensor):
            out.append(value)
        elif isinstance(value, list):
            out += [v for v in value if isinstance(v, torch.Tensor)]
    return out


@pytest.mark.parametrize("renderer_kind", ["exact", "exact-idle-fill", "fast"])
@pytest.mark.parametrize("case", list(CALLS))
@torch.no_grad()
def test_first_and_next_call_equal_the_reference(model, registry, case, renderer_kind):
    op = registry[case.split("/")[0]]
    fast = FastRenderer(model, fill_when_idle=renderer_kind.endswith("idle-fill"),
                        fast_precision=Precision(torch.bfloat16, torch.bfloat16))
    ours = OpContext(model, fast.with_mode("fast" if renderer_kind == "fast" else "exact"))
    reference = OpContext(model, ReferenceRenderer(model))
    for call in CALLS[case]:
        got = images_of(op.run(ours, **{k: resolve(ours, v) for k, v in call.items()}))
        want = images_of(op.run(reference, **{k: resolve(reference, v) for k, v in call.items()}))
        assert len(got) == len(want) and got
        for g, w in zip(got, want):
            if renderer_kind == "fast":  # (the fast mode's codes come from a bf16 encoder too)
                assert psnr(g, w) >= PSNR_MIN
            else:
                assert float((g - w).abs().max()) < ATOL
        fast.wait_idle(timeout=60)  # a person looks at the result before the next call
