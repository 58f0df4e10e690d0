"""Candidate modules: a bottleneck adapter with a learned activation path, and a low-rank update.

Each module computes a *delta* that a hook adds to the host's output. With ``gated=True`` it carries its structure:
one hard-concrete gate for the whole module, one per hidden unit (bottleneck) or rank component (low-rank), and a
Gumbel-softmax choice of activation (bottleneck with several activations). ``shrink()`` turns a gated module into
its discrete, physically smaller counterpart that computes the same output as the gated module at evaluation.
Leaf modules take explicit arguments; they never see a config.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .gates import GumbelChoice, HardConcreteGate

ACTIVATION_FUNCTIONS = {
    "identity": lambda x: x,
    "relu": F.relu,
    "gelu": F.gelu,
    "silu": F.silu,
    "tanh": torch.tanh,
}


class _Gated(nn.Module):
    """Shared gate bookkeeping: a module gate and a per-unit gate, both optional."""

    module_gate: HardConcreteGate | None
    unit_gate: HardConcreteGate | None

    def _build_gates(self, units: int, gated: bool, gate_kwargs: dict | None) -> None:
        kwargs = gate_kwargs or {}
        self.module_gate = HardConcreteGate(1, **kwargs) if gated else None
        self.unit_gate = HardConcreteGate(units, **kwargs) if gated else None

    @property
    def gated(self) -> bool:
        return self.module_gate is not None

    def unit_and_fixed_cost(self) -> tuple[int, int]:
        raise NotImplementedError

    def num_params(self) -> int:
        """Parameters this module adds now (gates not counted: they are gone after discretizing)."""
        unit_cost, fixed = self.unit_and_fixed_cost()
        return self.units * unit_cost + fixed

    def expected_params(self) -> torch.Tensor:
        """E[kept parameters] = P(module) * (fixed + sum_i P(unit_i) * unit_cost)."""
        unit_cost, fixed = self.unit_and_fixed_cost()
        if not self.gated:
            return torch.tensor(float(self.num_params()))
        units = self.unit_gate.prob_nonzero().sum() * unit_cost
        return self.module_gate.prob_nonzero()[0] * (units + fixed)

    def decided_units(self) -> torch.Tensor:
        """Boolean mask of units that survive discretization (all False if the module gate is shut)."""
        if not self.gated:
            return torch.ones(self.units, dtype=torch.bool)
        if self.module_gate.deterministic()[0] <= 0:
            return torch.zeros(self.units, dtype=torch.bool)
        return self.unit_gate.deterministic() > 0

    def _gate_units(self, h: torch.Tensor) -> torch.Tensor:  # (..., units)
        return h * self.unit_gate().to(h.dtype) if self.gated else h

    def _gate_module(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.module_gate().to(y.dtype) if self.gated else y

    def _gate_values(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Deterministic (module, units) gate values folded into the weights when shrinking."""
        return self.module_gate.deterministic()[0], self.unit_gate.deterministic()


class BottleneckAdapter(_Gated):
    """delta(x) = z_m * (W_up (f(W_down x + b_down) * z_u) + b_up), f a Gumbel-softmax mixture of activations.

    The unit gates act after the activation, so they fold exactly into the columns of W_up for every f.
    W_up starts at zero, so the model starts as the pretrained one (Houlsby et al. 2019).
    """

    def __init__(
        self,
        dim: int,
        width: int,
        activations: tuple[str, ...],
        *,
        gated: bool = True,
        dropout: float = 0.0,
        hard_choice: bool = False,
        gate_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        self.dim, self.units, self.activations = dim, width, tuple(activations)
        self.down = nn.Linear(dim, width)
        self.up = nn.Linear(width, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.dropout = nn.Dropout(dropout)
        self.choice = GumbelChoice(len(self.activations), hard=hard_choice) if len(self.activations) > 1 else None
        self._build_gates(width, gated, gate_kwargs)

    def unit_and_fixed_cost(self) -> tuple[int, int]:
        return 2 * self.dim + 1, self.dim  # a row of W_down, its bias, a column of W_up; fixed: b_up

    def chosen_activation(self) -> str:
        return self.activations[self.choice.choice()] if self.choice is not None else self.activations[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., dim) -> (..., dim)
        h = self.down(self.dropout(x))  # (..., width)
        if self.choice is None or not self.training:  # evaluation: the arg-max path alone
            a = ACTIVATION_FUNCTIONS[self.chosen_activation()](h)
        else:
            weights = self.choice().to(h.dtype)  # (num_activations,)
            a = sum(w * ACTIVATION_FUNCTIONS[name](h) for w, name in zip(weights, self.activations))
        return self._gate_module(self.up(self._gate_units(a)))

    @torch.no_grad()
    def shrink(self, keep: torch.Tensor | None = None) -> "BottleneckAdapter | None":
        """The discrete module: surviving units only, the chosen activation, gate values folded into W_up."""
        keep = self.decided_units() if keep is None else keep
        if not self.gated:
            return self
        if not bool(keep.any()):
            return None
        z_module, z_units = self._gate_values()
        out = BottleneckAdapter(self.dim, int(keep.sum()), (self.chosen_activation(),), gated=False,
                                dropout=self.dropout.p)
        out.to(device=self.down.weight.device, dtype=self.down.weight.dtype)
        out.down.weight.copy_(self.down.weight[keep])
        out.down.bias.copy_(self.down.bias[keep])
        out.up.weight.copy_(self.up.weight[:, keep] * z_units[keep] * z_module)
        out.up.bias.copy_(self.up.bias * z_module)
        return out

    def linear_map(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(M, c) with delta(x) = M x + c, defined only for a discrete identity-path module."""
        if self.gated or self.activations != ("identity",):
            raise ValueError("only a discretized identity-activation bottleneck is a linear map")
        matrix = self.up.weight @ self.down.weight  # (dim, dim)
        return matrix, self.up.weight @ self.down.bias + self.up.bias


class LowRankUpdate(_Gated):
    """delta(x) = z_m * scaling * B diag(z_u) A x: a LoRA update (Hu et al. 2021) with gated rank components."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int,
        *,
        scaling: float = 1.0,
        gated: bool = True,
        dropout: float = 0.0,
        gate_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features, self.units, self.scaling = in_features, out_features, rank, scaling
        self.lora_A = nn.Parameter(torch.empty(rank, in_features))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout)
        self._build_gates(rank, gated, gate_kwargs)

    def unit_and_fixed_cost(self) -> tuple[int, int]:
        return self.in_features + self.out_features, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., in) -> (..., out)
        h = self._gate_units(F.linear(self.dropout(x), self.lora_A))  # (..., rank)
        return self._gate_module(F.linear(h, self.lora_B) * self.scaling)

    @torch.no_grad()
    def shrink(self, keep: torch.Tensor | None = None) -> "LowRankUpdate | None":
        """The discrete update: surviving rank components, scaling and gate values folded into B."""
        keep = self.decided_units() if keep is None else keep
        if not self.gated:
            return self
        if not bool(keep.any()):
            return None
        z_module, z_units = self._gate_values()
        out = LowRankUpdate(self.in_features, self.out_features, int(keep.sum()), scaling=1.0, gated=False,
                            dropout=self.dropout.p)
        out.to(device=self.lora_A.device, dtype=self.lora_A.dtype)
        out.lora_A.copy_(self.lora_A[keep])
        out.lora_B.copy_(self.lora_B[:, keep] * z_units[keep] * z_module * self.scaling)
        return out

    def delta_weight(self) -> torch.Tensor:
        """scaling * B A, shape (out, in): what merging adds to the host weight (discrete modules only)."""
        if self.gated:
            raise ValueError("discretize before merging: a gated low-rank update has no fixed weight")
        return (self.lora_B @ self.lora_A) * self.scaling
