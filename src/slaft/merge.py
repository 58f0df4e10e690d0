"""Folding linear paths into base weights: functions of a host linear and a module, nothing else.

* a low-rank update on linear W:               W <- W + s·B·A
* a serial identity-activation bottleneck after a linear y = W x + b, i.e. y' = y + M y + c with M = W_up W_down,
  c = W_up b_down + b_up:                       W <- (I + M) W,  b <- (I + M) b + c

Each fold is computed in float64, checked to be finite, and only then written (peft's ``safe_merge``).
``SlaftModel.merge`` decides what to fold and keeps its own records.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .modules import BottleneckAdapter, LowRankUpdate


@dataclass
class MergeReport:
    folded: list[str] = field(default_factory=list)   # "layer.site" keys folded into base weights
    kept: list[str] = field(default_factory=list)     # "layer.site (activation)" left as modules

    def __str__(self) -> str:
        kept = ", ".join(self.kept) if self.kept else "none: the result is a plain transformers model"
        return f"folded into base weights: {len(self.folded)} module(s); kept as modules: {kept}"


def _assign(param: nn.Parameter, value: torch.Tensor, what: str) -> None:
    if not torch.isfinite(value).all():
        raise ValueError(f"Merging {what} produced non-finite weights; the model was left unmerged there.")
    param.data.copy_(value.to(param.dtype))


def zero_bias(linear: nn.Linear) -> None:
    """Give a bias-free linear a zero bias (frozen), so a fold can write one."""
    if linear.bias is None:
        linear.bias = nn.Parameter(torch.zeros(linear.out_features, dtype=linear.weight.dtype,
                                               device=linear.weight.device), requires_grad=False)


@torch.no_grad()
def fold_low_rank(host: nn.Linear, module: LowRankUpdate, what: str) -> None:
    _assign(host.weight, host.weight.double() + module.delta_weight().double(), what)


@torch.no_grad()
def fold_serial(host: nn.Linear, adapter: BottleneckAdapter, what: str) -> None:
    matrix, shift = (t.double() for t in adapter.linear_map())
    eye = torch.eye(matrix.shape[0], dtype=torch.float64, device=matrix.device)
    weight = host.weight.double()
    bias = host.bias.double() if host.bias is not None else torch.zeros_like(shift)
    new_weight, new_bias = (eye + matrix) @ weight, (eye + matrix) @ bias + shift
    _assign(host.weight, new_weight, what)
    zero_bias(host)
    _assign(host.bias, new_bias, what)
