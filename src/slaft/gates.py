"""Differentiable structure gates and their schedules.

* ``HardConcreteGate``: keep/drop gates with an exact zero, from Louizos, Welling & Kingma (2018),
  "Learning Sparse Neural Networks through L0 Regularization". With u ~ U(0, 1),

      s = sigmoid((log u - log(1 - u) + log_alpha) / beta)
      z = min(1, max(0, s * (zeta - gamma) + gamma))

  the probability of a non-zero gate is closed-form, P(z != 0) = sigmoid(log_alpha - beta * log(-gamma / zeta)),
  and at evaluation the gate is deterministic: z = min(1, max(0, sigmoid(log_alpha) * (zeta - gamma) + gamma)).
* ``GumbelChoice``: a one-of-k choice relaxed with Gumbel-softmax (Jang, Gu & Poole 2017), with an optional
  straight-through hard sample; at evaluation it is the arg-max, one-hot.
* Schedules are pure functions of the step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_EPS = 1e-6


class HardConcreteGate(nn.Module):
    """``size`` independent hard-concrete gates (Louizos et al. 2018)."""

    def __init__(
        self, size: int, *, init_keep: float = 0.9, beta: float = 2 / 3, limits: tuple[float, float] = (-0.1, 1.1)
    ) -> None:
        super().__init__()
        self.beta = float(beta)
        self.gamma, self.zeta = float(limits[0]), float(limits[1])
        init = math.log(init_keep) - math.log1p(-init_keep)
        self.log_alpha = nn.Parameter(torch.full((size,), init))

    def prob_nonzero(self) -> torch.Tensor:
        """Closed-form P(z != 0) per gate: the expected L0 contribution."""
        return torch.sigmoid(self.log_alpha - self.beta * math.log(-self.gamma / self.zeta))

    def deterministic(self) -> torch.Tensor:
        """The evaluation-time gate value, in [0, 1], exactly 0 for a closed gate."""
        return (torch.sigmoid(self.log_alpha) * (self.zeta - self.gamma) + self.gamma).clamp(0.0, 1.0)

    def sample(self) -> torch.Tensor:
        u = torch.rand_like(self.log_alpha).clamp(_EPS, 1 - _EPS)
        s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + self.log_alpha) / self.beta)
        return (s * (self.zeta - self.gamma) + self.gamma).clamp(0.0, 1.0)

    def forward(self) -> torch.Tensor:  # (size,)
        return self.sample() if self.training else self.deterministic()

    def close(self, mask: torch.Tensor) -> None:
        """Force the gates where ``mask`` is True shut for good (used when projecting onto a budget)."""
        with torch.no_grad():
            self.log_alpha.masked_fill_(mask.to(self.log_alpha.device), -1e4)

    def extra_repr(self) -> str:
        return f"size={self.log_alpha.numel()}, beta={self.beta:.3g}, limits=({self.gamma}, {self.zeta})"


class GumbelChoice(nn.Module):
    """A learned choice among ``num_choices`` paths (Jang et al. 2017). ``tau`` is set by the schedule."""

    def __init__(self, num_choices: int, *, hard: bool = False) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(num_choices))
        self.hard = hard
        self.tau = 1.0

    def probs(self) -> torch.Tensor:
        return torch.softmax(self.logits, dim=-1)

    def choice(self) -> int:
        return int(torch.argmax(self.logits).item())

    def forward(self) -> torch.Tensor:  # (num_choices,) weights that sum to 1
        if self.training:
            return F.gumbel_softmax(self.logits, tau=self.tau, hard=self.hard)
        return F.one_hot(torch.argmax(self.logits), self.logits.numel()).to(self.logits.dtype)

    def extra_repr(self) -> str:
        return f"num_choices={self.logits.numel()}, hard={self.hard}"


STRUCTURE_MODULE_TYPES = (HardConcreteGate, GumbelChoice)


# Schedules: pure functions of the optimizer step --------------------------------------------------------------------
def annealed_temperature(step: int, total_steps: int, start: float, end: float) -> float:
    """Exponential annealing tau(t) = start * (end / start) ** (t / T), held at ``end`` after T."""
    progress = min(max(step / max(total_steps, 1), 0.0), 1.0)
    return start * (end / start) ** progress


def warmup_ramp(step: int, total_steps: int, warmup_ratio: float) -> float:
    """0 -> 1 linearly over the first ``warmup_ratio`` of the steps: how much of the sparsity term is on."""
    warmup = warmup_ratio * total_steps
    if warmup <= 0:
        return 1.0
    return min(max(step / warmup, 0.0), 1.0)
