"""Candidate modules: a low-rank update and a bottleneck adapter with a learned activation path.

Each module computes a *delta* that a hook adds to its host's output (``inject.py``). While the structure is being
searched, a module carries a ``UnitGate`` over its units (blocks of rank components or hidden units) and, for a
bottleneck with several activations, a ``GumbelChoice``. ``prune_(keep, ...)`` removes the shut units in place —
the kept ones keep their trained values, and the optimizer's state for them is kept too — and drops the gate.
Leaf modules take explicit arguments; they never see a config.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .gates import GumbelChoice, UnitGate

ACTIVATION_FUNCTIONS = {
    "identity": lambda x: x,
    "relu": F.relu,
    "gelu": F.gelu,
    "silu": F.silu,
    "tanh": torch.tanh,
}


def slice_parameter_(param: nn.Parameter, dim: int, index: torch.Tensor, optimizer=None) -> None:
    """Keep ``index`` along ``dim`` of ``param`` in place, and the same slice of its optimizer state (Adam's moments),
    so what the optimizer learned about the kept entries carries over."""
    old_shape = param.shape
    index = index.to(param.device)
    param.data = param.data.index_select(dim, index)
    param.grad = None
    state = optimizer.state.get(param) if optimizer is not None else None
    for key, value in (state or {}).items():
        if torch.is_tensor(value) and value.shape == old_shape:
            state[key] = value.index_select(dim, index.to(value.device))


class GatedModule(nn.Module):
    """What both module kinds share: an optional unit gate, and in-place pruning."""

    gate: UnitGate | None

    def sliced_parameters(self) -> list[tuple[nn.Parameter, int]]:
        """(parameter, dimension) pairs indexed by rank component / hidden unit."""
        raise NotImplementedError

    @property
    def width(self) -> int:
        param, dim = self.sliced_parameters()[0]
        return param.shape[dim]

    def _gated(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:  # (..., width)
        """h with the gate applied, and (gated modules) 1 if any unit is open else 0, as a tensor."""
        if self.gate is None:
            return h, None
        value = self.gate(h)
        return h * value, value.detach().amax()

    @torch.no_grad()
    def prune_(self, keep: torch.Tensor, optimizer=None) -> None:
        """Keep the components in the bool mask ``keep`` (one entry per component, not per unit); drop the gate."""
        index = torch.nonzero(keep.cpu(), as_tuple=False).flatten()
        for param, dim in self.sliced_parameters():
            slice_parameter_(param, dim, index, optimizer)
        self.gate = None


class LowRankUpdate(GatedModule):
    """delta(x) = scaling · B diag(z) A x: a LoRA update (Hu et al. 2021), z the unit gates while searching.

    ``scaling`` is alpha / r of the candidate rank and never changes, so pruning keeps LoRA's parametrization and
    a kept component trains as fast as in peft's LoRA at the same learning rate. B starts at zero.
    """

    def __init__(self, in_features: int, out_features: int, rank: int, *, scaling: float, dropout: float = 0.0,
                 gate: UnitGate | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features, self.scaling = in_features, out_features, float(scaling)
        self.lora_A = nn.Parameter(torch.empty(rank, in_features))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout)
        self.gate = gate

    def sliced_parameters(self) -> list[tuple[nn.Parameter, int]]:
        return [(self.lora_A, 0), (self.lora_B, 1)]

    def forward(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:  # (..., in) -> (..., out)
        """delta(x); or, given the host's output ``out``, out + delta(x) with the product by B fused into the addition
        (one GEMM, no out-wide temporary and no out-wide add: on a CPU that is most of what an update on a wide host
        costs). It stays the module's forward, so hooks that fetch or shard parameters (ZeRO-3) see the call. Where
        ``out`` has another dtype than the weights, or autocast is on, it is the plain sum."""
        h, _ = self._gated(F.linear(self.dropout(x), self.lora_A))  # (..., rank)
        h = h * self.scaling  # scaled at rank width, not at the host's width
        if out is None:
            return F.linear(h, self.lora_B)
        if out.dtype != self.lora_B.dtype or torch.is_autocast_enabled(out.device.type):
            return out + F.linear(h, self.lora_B).to(out.dtype)
        flat = torch.addmm(out.reshape(-1, out.shape[-1]), h.reshape(-1, h.shape[-1]), self.lora_B.t())
        return flat.view(out.shape)

    def delta_weight(self) -> torch.Tensor:
        """scaling · B A, shape (out, in): what merging adds to the host weight."""
        return (self.lora_B @ self.lora_A) * self.scaling


class BottleneckAdapter(GatedModule):
    """delta(x) = W_up (f(W_down x + b_down) ⊙ z) + b_up, f a Gumbel-softmax mixture of activations while searching.

    The unit gates act after the activation, so a shut unit is exactly a removed column of W_up for every f; with
    every unit shut, b_up is off too, as it is once the module is removed. W_up starts at zero, so the model starts
    as the pretrained one (Houlsby et al. 2019).
    """

    def __init__(self, dim: int, width: int, activations: tuple[str, ...], *, dropout: float = 0.0,
                 hard_choice: bool = False, gate: UnitGate | None = None) -> None:
        super().__init__()
        self.dim, self.activations = dim, tuple(activations)
        self.down = nn.Linear(dim, width)
        self.up = nn.Linear(width, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.dropout = nn.Dropout(dropout)
        self.choice = GumbelChoice(len(self.activations), hard=hard_choice) if len(self.activations) > 1 else None
        self.gate = gate

    def sliced_parameters(self) -> list[tuple[nn.Parameter, int]]:
        return [(self.down.weight, 0), (self.down.bias, 0), (self.up.weight, 1)]

    def chosen_activation(self) -> str:
        return self.activations[self.choice.choice()] if self.choice is not None else self.activations[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., dim) -> (..., dim)
        h = self.down(self.dropout(x))  # (..., width)
        if self.choice is None or not self.training:  # evaluation: the arg-max path alone
            a = ACTIVATION_FUNCTIONS[self.chosen_activation()](h)
        else:
            weights = self.choice().to(h.dtype)  # (num_activations,)
            a = sum(w * ACTIVATION_FUNCTIONS[name](h) for w, name in zip(weights, self.activations))
        a, any_open = self._gated(a)
        bias = self.up.bias if any_open is None else self.up.bias * any_open
        return F.linear(a, self.up.weight, bias)

    @torch.no_grad()
    def prune_(self, keep: torch.Tensor, optimizer=None) -> None:
        """Prune units, and fix the activation to the chosen one."""
        super().prune_(keep, optimizer)
        self.activations, self.choice = (self.chosen_activation(),), None

    def linear_map(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(M, c) with delta(x) = M x + c; defined only for a decided identity-activation module."""
        if self.activations != ("identity",) or self.gate is not None:
            raise ValueError("only a decided identity-activation bottleneck is a linear map")
        matrix = self.up.weight @ self.down.weight  # (dim, dim)
        return matrix, self.up.weight @ self.down.bias + self.up.bias
