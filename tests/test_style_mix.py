"""Style mix on the bundled model: each mode keeps the layout its description says.

Pairs with different outlines (a round smiley and an animal head with ears). Layout is
compared on edge maps (the outline and the features' contours), and the head's outline on
silhouettes (the non-white pixels with their holes filled, so a white-faced panda is its head).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import smapgan
from smapgan import StyleMapGAN
from smapgan.ops import OpContext, discover
from smapgan.ops.examples import EXAMPLES_DIR

SMILEYS = ("grinning.png", "slightly_smiling_face.png")
ANIMALS = ("panda_face.png", "cat.png", "bear.png", "dog.png")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small models: one torch thread (see conftest)


@pytest.fixture(scope="module")
def ctx() -> OpContext:
    return OpContext(StyleMapGAN.from_pretrained(smapgan.DEFAULT_MODEL))


def outline(image: torch.Tensor) -> torch.Tensor:
    """Sobel edge magnitude of the grey image, lightly blurred, flattened: where the contours are."""
    grey = image.clamp(-1, 1).mean(1, keepdim=True)
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])[None, None]
    padded = F.pad(grey, (1, 1, 1, 1), mode="replicate")
    edges = (F.conv2d(padded, kx) ** 2 + F.conv2d(padded, kx.transpose(2, 3)) ** 2).sqrt()
    return F.avg_pool2d(edges, 3, 1, 1).flatten()


def silhouette(image: torch.Tensor, threshold: float = 0.25) -> torch.Tensor:
    """The head: every pixel except the near-white background reachable from the border (H,W bool)."""
    white = ((1 - image.clamp(-1, 1)).amax(1)[0] <= threshold).float()[None, None]
    outside = torch.zeros_like(white)
    outside[..., 0, :], outside[..., -1, :], outside[..., :, 0], outside[..., :, -1] = 1, 1, 1, 1
    outside = outside * white
    while True:  # flood the background in from the border, through white pixels only
        grown = F.max_pool2d(outside, 3, 1, 1) * white
        if torch.equal(grown, outside):
            return outside[0, 0] == 0
        outside = grown


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a & b).sum() / (a | b).sum())


def overlap(a: torch.Tensor, b: torch.Tensor) -> float:
    """Correlation of two outlines."""
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / (a.norm() * b.norm()))


@pytest.mark.parametrize("smiley", SMILEYS)
@pytest.mark.parametrize("animal", ANIMALS)
@pytest.mark.parametrize("mix", ["coarse", "fine"])
def test_style_mix_keeps_the_layout_it_says(ctx: OpContext, smiley: str, animal: str, mix: str) -> None:
    op = discover(paths=[])["style_mix"]
    a, b = ctx.picture(EXAMPLES_DIR / smiley), ctx.picture(EXAMPLES_DIR / animal)
    result = outline(op.run(ctx, content=a, style=b, mix=mix)["image"])
    kept, other = (a, b) if mix == "coarse" else (b, a)  # coarse: the first's layout; fine: the second's
    assert overlap(result, outline(kept.image)) > overlap(result, outline(other.image)) + 0.1


def test_coarse_takes_the_second_images_colours(ctx: OpContext) -> None:
    op = discover(paths=[])["style_mix"]
    smiley, bear = ctx.picture(EXAMPLES_DIR / "slightly_smiling_face.png"), ctx.picture(EXAMPLES_DIR / "bear.png")
    centre = (slice(None), slice(None), slice(24, 40), slice(12, 20))  # a cheek: face colour in both images

    def colour(image: torch.Tensor) -> torch.Tensor:
        return image[centre].mean((2, 3))[0]

    mixed = colour(op.run(ctx, content=smiley, style=bear, mix="coarse")["image"])
    assert (mixed - colour(bear.image)).norm() < (mixed - colour(smiley.image)).norm()


EARED = ("cat.png", "dog.png")  # silhouettes far from a round smiley's (IoU 0.75); a panda's and a bear's are not


@pytest.mark.parametrize("smiley", SMILEYS)
@pytest.mark.parametrize("animal", EARED)
@pytest.mark.parametrize("mix", ["coarse", "fine"])
@pytest.mark.parametrize("smiley_first", [True, False])
def test_the_outline_stays_the_round_smileys_as_the_description_says(
    ctx: OpContext, smiley: str, animal: str, mix: str, smiley_first: bool
) -> None:
    """Neither mode carries the head's outline (the op's description says so): the silhouette stays round."""
    op = discover(paths=[])["style_mix"]
    s, a = ctx.picture(EXAMPLES_DIR / smiley), ctx.picture(EXAMPLES_DIR / animal)
    first, second = (s, a) if smiley_first else (a, s)
    result = silhouette(op.run(ctx, content=first, style=second, mix=mix)["image"])
    round_head, ears = silhouette(s.image), silhouette(a.image)
    assert iou(round_head, ears) < 0.8  # the pair's outlines do differ
    assert iou(result, round_head) > iou(result, ears) + 0.1
