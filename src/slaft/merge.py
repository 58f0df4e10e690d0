"""Folding linear paths into base weights: functions of a host linear and a module, nothing else.

* a low-rank update on linear W:               W <- W + s·B·A
* a serial identity-activation bottleneck after a linear y = W x + b, i.e. y' = y + M y + c with M = W_up W_down,
  c = W_up b_down + b_up:                       W <- (I + M) W,  b <- (I + M) b + c

W is (out, in) as ``nn.Linear`` keeps it; transformers' ``Conv1D`` keeps its transpose, and is written back so.

``unfold_low_rank`` and ``unfold_serial`` undo a fold (``SlaftModel.unmerge``): W <- W - s·B·A, and
W <- (I + M)^-1 W, b <- (I + M)^-1 (b - c), equal to the weights before the fold within float tolerance.

Each fold is computed in float64, checked to be finite, and only then written (peft's ``safe_merge``).
``SlaftModel.merge`` decides what to fold and keeps its own records.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from . import discovery as roles
from .discovery import Block
from .modules import BottleneckAdapter, LowRankUpdate

# Config flags that give a group of a block's linears a bias (Llama's attention_bias and mlp_bias): where a fold
# gives one linear of such a group a bias, every linear of it gets one and the flag is set, so the merged model
# reloads as a plain checkpoint. A bias-free host outside such a group keeps its serial adapter as a module.
BIAS_FLAGS = {
    "attention_bias": (roles.Q, roles.K, roles.V, roles.QKV, roles.O),
    "mlp_bias": (roles.FFN_GATE, roles.FFN_IN, roles.FFN_GATE_UP, roles.FFN_OUT),
}


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


def _transposed(host: nn.Module) -> bool:
    return not isinstance(host, nn.Linear)  # Conv1D


def weight_out_in(host: nn.Module) -> torch.Tensor:
    """The host's weight as (out, in), in float64."""
    weight = host.weight.double()
    return weight.t() if _transposed(host) else weight


def _assign_weight(host: nn.Module, value: torch.Tensor, what: str) -> None:
    _assign(host.weight, value.t() if _transposed(host) else value, what)


def zero_bias(linear: nn.Module) -> None:
    """Give a bias-free linear a zero bias (frozen), so a fold can write one."""
    if linear.bias is None:
        out_features = weight_out_in(linear).shape[0]
        linear.bias = nn.Parameter(torch.zeros(out_features, dtype=linear.weight.dtype, device=linear.weight.device),
                                   requires_grad=False)


def reloadable_bias(model: nn.Module, blocks: list[Block], layer: int, path: str) -> bool:
    """Whether the linear at ``path`` of block ``layer`` can take a bias that a plain checkpoint of ``model`` keeps:
    it has one, or a config flag gives its group one (then every linear of the group gets a zero bias now and the
    flag is set)."""
    host = model.get_submodule(f"{blocks[layer].path}.{path}")
    if host.bias is not None:
        return True
    role = next((linear.role for linear in blocks[layer].linears if linear.path == path), None)
    config = getattr(model, "config", None)
    for flag, group in BIAS_FLAGS.items():
        if role in group and getattr(config, flag, None) is False:
            for block in blocks:
                for linear in block.linears:
                    if linear.role in group:
                        zero_bias(model.get_submodule(f"{block.path}.{linear.path}"))
            setattr(config, flag, True)
            return True
    return False


@torch.no_grad()
def fold_low_rank(host: nn.Module, module: LowRankUpdate, what: str, rows: tuple[int, int] | None = None) -> None:
    """W <- W + s·B·A; for a part of a fused projection, on its ``rows`` of W only."""
    weight = weight_out_in(host)
    first, end = rows or (0, weight.shape[0])
    weight[first:end] += module.delta_weight().double()
    _assign_weight(host, weight, what)


@torch.no_grad()
def fold_serial(host: nn.Module, adapter: BottleneckAdapter, what: str) -> None:
    matrix, shift = (t.double() for t in adapter.linear_map())
    eye = torch.eye(matrix.shape[0], dtype=torch.float64, device=matrix.device)
    bias = host.bias.double() if host.bias is not None else torch.zeros_like(shift)
    new_weight, new_bias = (eye + matrix) @ weight_out_in(host), (eye + matrix) @ bias + shift
    _assign_weight(host, new_weight, what)
    zero_bias(host)
    _assign(host.bias, new_bias, what)


@torch.no_grad()
def unfold_low_rank(host: nn.Module, module: LowRankUpdate, what: str, rows: tuple[int, int] | None = None) -> None:
    """Undo ``fold_low_rank``: W <- W - s·B·A (on ``rows`` of W for a part of a fused projection)."""
    weight = weight_out_in(host)
    first, end = rows or (0, weight.shape[0])
    weight[first:end] -= module.delta_weight().double()
    _assign_weight(host, weight, what)


@torch.no_grad()
def unfold_serial(host: nn.Module, adapter: BottleneckAdapter, what: str) -> None:
    """Undo ``fold_serial``: solve (I + M) W = W' and (I + M) b = b' - c for the host's weight and bias."""
    matrix, shift = (t.double() for t in adapter.linear_map())
    eye = torch.eye(matrix.shape[0], dtype=torch.float64, device=matrix.device)
    weight = torch.linalg.solve(eye + matrix, weight_out_in(host))
    bias = torch.linalg.solve(eye + matrix, host.bias.double() - shift)
    _assign_weight(host, weight, what)
    _assign(host.bias, bias, what)
