"""The GAN losses of the recipe (docs/release_facts.md §Training), as pure functions of logits and images.

Logits are cast to float32 first so that the losses stay exact under bfloat16 autocast.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import autograd


def d_logistic(real_pred: torch.Tensor, fake_pred: torch.Tensor) -> torch.Tensor:
    """Discriminator logistic loss: ``softplus(-D(x)) + softplus(D(G(z)))``, batch means."""
    return F.softplus(-real_pred.float()).mean() + F.softplus(fake_pred.float()).mean()


def d_fake(fake_pred: torch.Tensor) -> torch.Tensor:
    """``softplus(D(y))``: push D down on a fake (the in-domain term uses it on G(E(x)))."""
    return F.softplus(fake_pred.float()).mean()


def g_nonsaturating(fake_pred: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss ``softplus(-D(G(z)))``; also the in-domain E/G term."""
    return F.softplus(-fake_pred.float()).mean()


def r1_penalty(real_pred: torch.Tensor, real_img: torch.Tensor) -> torch.Tensor:
    """R1: the squared norm of dD(x)/dx per sample, averaged (``real_img`` must require grad).

    The graph is kept (``create_graph``) so the penalty can be back-propagated into D.
    """
    (grad,) = autograd.grad(outputs=real_pred.float().sum(), inputs=real_img, create_graph=True)
    return grad.float().pow(2).flatten(1).sum(1).mean()


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every element, in float32."""
    return F.mse_loss(x.float(), y.float())
