"""Structure gates and their schedules.

* ``UnitGate``: keep/drop gates for the units of one module (blocks of LoRA rank components or of bottleneck hidden
  units). Its value in the forward pass is always exactly 0 or 1 per unit, so a pruned model computes what the gated
  one did. Gradients reach it two ways:

  - a *probe*: the value carries ``probe - probe.detach()``, so ``probe.grad`` is dL/dz for every unit, open or
    shut. Its square, smoothed over steps by the search (``search.py``), is the unit's Fisher importance: the loss
    a unit's removal costs is about ½·E[(dL/dz)²] (Theis et al. 2018, "Faster gaze prediction with dense networks
    and Fisher pruning"). The probe is a plain tensor, not a parameter: no optimizer, gradient clipping or DDP bucket
    ever sees it.
  - *hard-concrete logits* (allocator "gates"): the L0 gates of the method as published ("Structure-Learnable
    Adapter Fine-Tuning for Parameter-Efficient Large Language Models", arXiv 2509.03057), a core part of slaft, not
    an add-on. z ~ HardConcrete(log α + shift) (Louizos, Welling & Kingma 2018), with u ~ U(0, 1),

        s = sigmoid((log u - log(1 - u) + log α) / β),   z = min(1, max(0, s (ζ - γ) + γ)),

    P(z != 0) = sigmoid(log α - β log(-γ / ζ)) in closed form (the expected L0). The forward pass uses the hard value
    1[z > ½] and the gradient of z (straight-through), so training never scales a module's output by a random factor.

* ``GumbelChoice``: a one-of-k choice relaxed with Gumbel-softmax (Jang, Gu & Poole 2017); arg-max at evaluation.
* Schedules are pure functions of the step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_EPS = 1e-6


def hard_concrete_sample(log_alpha: torch.Tensor, beta: float, limits: tuple[float, float]) -> torch.Tensor:
    """A hard-concrete sample z in [0, 1] per gate (Louizos et al. 2018): the stretched, clipped binary concrete of
    the method's L0 gates, temperature ``beta``, stretch interval ``limits`` = (γ, ζ)."""
    gamma, zeta = limits
    u = torch.rand_like(log_alpha).clamp(_EPS, 1 - _EPS)
    s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + log_alpha) / beta)
    return (s * (zeta - gamma) + gamma).clamp(0.0, 1.0)


def hard_concrete_keep_probability(log_alpha: torch.Tensor, beta: float, limits: tuple[float, float]) -> torch.Tensor:
    """P(z != 0) of each hard-concrete gate in closed form: its expected-L0 contribution, the quantity the method's
    L0 gates are budgeted by (``allocation.solve_shift``)."""
    gamma, zeta = limits
    return torch.sigmoid(log_alpha - beta * math.log(-gamma / zeta))


class _RoundStraightThrough(torch.autograd.Function):
    """Forward: 1[z > 1/2], exactly 0 or 1. Backward: the gradient passes to z unchanged."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:
        return (z > 0.5).to(z.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


class UnitGate(nn.Module):
    """Gates for ``num_units`` units of ``block`` components each: always the importance probe, and with
    ``hard_concrete`` the method's hard-concrete L0 gates (allocator "gates"); see the module docstring."""

    def __init__(self, num_units: int, block: int, *, hard_concrete: bool = False, beta: float = 2 / 3,
                 limits: tuple[float, float] = (-0.1, 1.1)) -> None:
        super().__init__()
        self.block, self.beta, self.limits = int(block), float(beta), (float(limits[0]), float(limits[1]))
        self.probe: torch.Tensor | None = None  # created on the forward pass's device; holds dL/dz in .grad
        self.log_alpha = nn.Parameter(torch.zeros(num_units)) if hard_concrete else None
        self.register_buffer("mask", torch.ones(num_units, dtype=torch.bool))      # the decision as it stands
        self.register_buffer("shift", torch.zeros(num_units))                      # budget shift of log α
        self.sampling = False  # hard-concrete samples in training: set by the search while it prunes

    @property
    def num_units(self) -> int:
        return self.mask.numel()

    def keep_probability(self) -> torch.Tensor:
        """P(keep) per unit: the hard-concrete closed form, or the mask itself without logits."""
        if self.log_alpha is None:
            return self.mask.float()
        return hard_concrete_keep_probability(self.log_alpha + self.shift, self.beta, self.limits)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Gate values for hidden activations ``h`` (..., num_units * block): exactly 0 or 1 per unit, carrying
        the probe while gradients are on."""
        value = self.mask.float()
        if self.training and self.sampling and self.log_alpha is not None:
            z = hard_concrete_sample(self.log_alpha.float() + self.shift, self.beta, self.limits)
            value = _RoundStraightThrough.apply(z)
        if torch.is_grad_enabled():  # the probe stays float32 under mixed precision: importances are sums of squares
            if self.probe is None or self.probe.device != h.device:
                self.probe = torch.ones(self.num_units, device=h.device, requires_grad=True)
            value = value + (self.probe - self.probe.detach())
        return value.repeat_interleave(self.block).to(h.dtype)

    @torch.no_grad()
    def take_probe_gradient(self) -> torch.Tensor | None:
        """dL/dz of the backward passes since the last call (summed over accumulated micro-batches), then reset."""
        if self.probe is None or self.probe.grad is None:
            return None
        grad = self.probe.grad.detach().float().clone()
        self.probe.grad = None
        return grad

    def extra_repr(self) -> str:
        kind = "hard-concrete" if self.log_alpha is not None else "importance"
        return f"units={self.num_units}, block={self.block}, {kind}"


class GumbelChoice(nn.Module):
    """A learned choice among ``num_choices`` paths (Jang et al. 2017). ``tau`` is set by the search schedule."""

    def __init__(self, num_choices: int, *, hard: bool = False) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(num_choices))
        self.hard = hard
        self.tau = 1.0
        self.frozen = False  # the arg-max path in training too (a decided structure that keeps its modules)

    def choice(self) -> int:
        """The index of the chosen path (the arg-max of the logits)."""
        return int(torch.argmax(self.logits).item())

    def forward(self) -> torch.Tensor:  # (num_choices,) weights that sum to 1
        if self.training and not self.frozen:
            return F.gumbel_softmax(self.logits, tau=self.tau, hard=self.hard)
        return F.one_hot(torch.argmax(self.logits), self.logits.numel()).to(self.logits.dtype)

    def extra_repr(self) -> str:
        return f"num_choices={self.logits.numel()}, hard={self.hard}"


# Schedules: pure functions of the optimizer step --------------------------------------------------------------------
def annealed_temperature(step: int, total_steps: int, start: float, end: float) -> float:
    """Exponential annealing tau(t) = start * (end / start) ** (t / T), held at ``end`` after T."""
    progress = min(max(step / max(total_steps, 1), 0.0), 1.0)
    return start * (end / start) ** progress


def pruned_fraction(step: int, start_step: int, end_step: int) -> float:
    """How far the kept size has moved from the whole candidate space to its final size: 0 before ``start_step``,
    1 from ``end_step`` on, cubic in between (AdaLoRA's budget schedule: fast pruning first, gentle at the end)."""
    if step <= start_step:
        return 0.0
    if step >= end_step:
        return 1.0
    progress = (step - start_step) / (end_step - start_step)
    return 1.0 - (1.0 - progress) ** 3
