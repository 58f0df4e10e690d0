"""Fold linear paths into the base weights.

* a low-rank update on linear W:               W <- W + s·B·A
* a serial identity-activation bottleneck after a linear y = W x + b, i.e. y' = y + M y + c with M = W_up W_down,
  c = W_up b_down + b_up:                       W <- (I + M) W,  b <- (I + M) b + c

What cannot be folded (nonlinear activations, and parallel adapters, whose input no base linear maps straight to
the FFN output) stays as a module, and the report says which.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .architectures import find_layers
from .config import SERIAL_SITES
from .inject import CONTAINER
from .modules import BottleneckAdapter, LowRankUpdate
from .structure import Structure


@dataclass
class MergeReport:
    folded: list[str] = field(default_factory=list)   # "layer.site" keys folded into base weights
    kept: list[str] = field(default_factory=list)     # "layer.site (activation)" left as modules

    def __str__(self) -> str:
        kept = ", ".join(self.kept) if self.kept else "none: the result is a plain transformers model"
        return f"folded into base weights: {len(self.folded)} module(s); kept as modules: {kept}"


def _safe_assign(param: nn.Parameter, value: torch.Tensor, what: str) -> None:
    if not torch.isfinite(value).all():
        raise ValueError(f"Merging {what} produced non-finite weights; the model was left unmerged there.")
    param.data.copy_(value.to(param.dtype))


@torch.no_grad()
def _fold_serial(host: nn.Linear, adapter: BottleneckAdapter, what: str) -> None:
    matrix, shift = adapter.linear_map()
    matrix, shift = matrix.double(), shift.double()
    eye = torch.eye(matrix.shape[0], dtype=torch.float64, device=matrix.device)
    weight = host.weight.double()
    bias = host.bias.double() if host.bias is not None else torch.zeros_like(shift)
    new_weight, new_bias = (eye + matrix) @ weight, (eye + matrix) @ bias + shift
    _safe_assign(host.weight, new_weight, what)
    if host.bias is None:
        host.bias = nn.Parameter(torch.zeros(host.out_features, dtype=host.weight.dtype, device=host.weight.device),
                                 requires_grad=False)
    _safe_assign(host.bias, new_bias, what)


def _complete_bias_groups(model) -> None:
    """Where merging gave one linear of a config-controlled group a bias, give all of them one (zeros) and set the
    config flag, so the merged model reloads as a plain checkpoint (e.g. Llama's attention_bias / mlp_bias)."""
    blocks = find_layers(model.base_model, model.arch)
    for flag, paths in model.arch.bias_groups.items():
        linears = [block.get_submodule(p) for block in blocks for p in paths]
        if not any(lin.bias is not None for lin in linears):
            continue
        for lin in linears:
            if lin.bias is None:
                lin.bias = nn.Parameter(torch.zeros(lin.out_features, dtype=lin.weight.dtype,
                                                    device=lin.weight.device), requires_grad=False)
        setattr(model.base_model.config, flag, True)


@torch.no_grad()
def merge_linear_paths(model) -> MergeReport:
    """Fold what is linear in a discrete SlaftModel into its base weights, in place."""
    report = MergeReport()
    blocks = find_layers(model.base_model, model.arch)
    modules = list(model.slaft_modules())
    # Low-rank updates first: a serial adapter on the same linear sees the updated output.
    for layer, site, module in modules:
        if isinstance(module, LowRankUpdate):
            host = blocks[layer].get_submodule(model.arch.lora_targets[site])
            _safe_assign(host.weight, host.weight + module.delta_weight().to(host.weight.dtype), f"{layer}.{site}")
            del getattr(blocks[layer], CONTAINER)[site]
            report.folded.append(f"{layer}.{site}")
    for layer, site, module in modules:
        if not isinstance(module, BottleneckAdapter):
            continue
        if site in SERIAL_SITES and module.activations == ("identity",):
            path = model.arch.attn_output if site == "attn_adapter" else model.arch.ffn_output
            _fold_serial(blocks[layer].get_submodule(path), module, f"{layer}.{site}")
            del getattr(blocks[layer], CONTAINER)[site]
            report.folded.append(f"{layer}.{site}")
        else:
            report.kept.append(f"{layer}.{site} ({module.chosen_activation()})")
    _complete_bias_groups(model)
    left = {(layer, site) for layer, site, _ in model.slaft_modules()}
    old = model.structure_data
    model.structure_data = Structure([m for m in old.modules if (m.layer, m.site) in left], True, old.num_layers)
    model.merged = True
    return report
