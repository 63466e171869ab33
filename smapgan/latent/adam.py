"""Adam on a few tensors, computed as ``torch.optim.Adam`` computes it with its defaults.

Why not ``torch.optim.Adam``: constructing any ``torch.optim`` optimizer imports ``torch._dynamo``
(and with it sympy and torch.distributed) the first time in a process, about 1 s of CPU time that
a one-shot refinement (``smapgan edit --refine-steps N``) paid on every call and that the
refinement itself never uses. The update below is torch's single-tensor Adam without weight decay,
amsgrad or maximize, operation for operation, so that refined codes do not change.
"""

from __future__ import annotations

from typing import Sequence

import torch


class Adam:
    """Adam (Kingma & Ba) on leaf tensors that autograd fills with ``.grad``; ``zero_grad`` and ``step``
    as on a torch optimizer. A tensor without a gradient at a step is left as it is."""

    def __init__(
        self, params: Sequence[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ) -> None:
        if lr < 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        self.params = list(params)
        self.lr, (self.beta1, self.beta2), self.eps = lr, betas, eps
        self.steps = [0 for _ in self.params]  # per tensor, as torch counts them: updates it has had
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]

    def zero_grad(self) -> None:
        """Drop the gradients (``set_to_none``): the next backward pass writes fresh ones."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One update of every tensor that has a gradient."""
        for i, (p, exp_avg, exp_avg_sq) in enumerate(zip(self.params, self.exp_avg, self.exp_avg_sq)):
            if p.grad is None:
                continue
            self.steps[i] += 1
            step = float(self.steps[i])  # torch keeps the step count as a float tensor
            step_size = self.lr / (1 - self.beta1**step)
            bias_correction2_sqrt = (1 - self.beta2**step) ** 0.5
            grad = p.grad
            exp_avg.lerp_(grad, 1 - self.beta1)
            exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
            p.addcdiv_(exp_avg, denom, value=-step_size)
