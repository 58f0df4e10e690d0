"""Budget allocation as pure functions of unit statistics: no model, no state, testable on plain tensors.

The candidate space is flattened into units (blocks of LoRA rank components or bottleneck hidden units). Unit u
belongs to module ``module[u]`` and costs ``cost[u]`` parameters; a module costs ``fixed[m]`` more as soon as one of
its units is kept (a bottleneck's output bias).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .gates import hard_concrete_keep_probability


@dataclass(frozen=True)
class Units:
    module: torch.Tensor   # (U,) long: the module each unit belongs to
    cost: torch.Tensor     # (U,) float: parameters per unit
    fixed: torch.Tensor    # (M,) float: parameters a module adds once any of its units is kept
    layer: torch.Tensor | None = None  # (U,) long: the block each unit sits in
    prior: torch.Tensor | None = None  # (U,) float: how much evidence a unit starts with (1 = none)

    def kept_params(self, mask: torch.Tensor) -> int:
        """Parameters of the structure that keeps the units in ``mask``."""
        used = torch.zeros_like(self.fixed, dtype=torch.bool).index_fill(0, self.module[mask], True)
        return int(round(float(self.cost[mask].sum() + self.fixed[used].sum())))

    @property
    def total(self) -> int:
        return self.kept_params(torch.ones_like(self.cost, dtype=torch.bool))


def select_within_budget(scores: torch.Tensor, units: Units, budget: float,
                         preferred: torch.Tensor | None = None, block_share: float = 0.0) -> torch.Tensor:
    """Keep units in order of decreasing score while they fit the budget; a unit that does not fit is skipped, so
    smaller ones after it can still fill the rest. ``preferred`` units (those kept so far) are taken first, then the
    others fill what is left, so the result fills the budget up to less than one unit. With ``block_share`` > 0
    each block first keeps its own best units up to ``block_share * budget / blocks`` (a floor that spreads a small
    budget over the depth), then every unit competes for the rest. Returns a bool mask."""
    scores, cost, module = scores.detach().cpu(), units.cost.cpu().tolist(), units.module.cpu().tolist()
    fixed = units.fixed.cpu().tolist()
    keep = [False] * len(cost)
    used = [False] * len(fixed)
    order = torch.argsort(scores, descending=True, stable=True).tolist()
    if preferred is not None:
        first = preferred.cpu().tolist()
        order = [u for u in order if first[u]] + [u for u in order if not first[u]]

    def fill(candidates: list[int], limit: float, spent: float) -> float:
        for u in candidates:
            m = module[u]
            price = cost[u] + (0.0 if used[m] else fixed[m])
            if not keep[u] and spent + price <= limit:
                keep[u], used[m] = True, True
                spent += price
        return spent

    total = 0.0
    if block_share > 0 and units.layer is not None:
        layer = units.layer.cpu().tolist()
        blocks = sorted(set(layer))
        floor = block_share * budget / len(blocks)
        for block in blocks:
            total += fill([u for u in order if layer[u] == block], floor, 0.0)
    fill(order, budget, total)
    return torch.tensor(keep, dtype=torch.bool)


def importance_density(importance: torch.Tensor, units: Units, scope: str = "global") -> torch.Tensor:
    """Importance per parameter: the score units are kept by. With ``scope="layer"`` each unit's density is taken
    relative to its block's (its block's importance over its block's cost), so units compete within their block
    first: the gradient signal that grows toward the output no longer hands every unit to the top blocks."""
    importance = importance.detach().cpu().float()
    density = importance / units.cost.cpu()
    if scope == "layer" and units.layer is not None:
        layer = units.layer.cpu()
        blocks = int(layer.max()) + 1
        block_importance = torch.zeros(blocks).index_add_(0, layer, importance)
        block_cost = torch.zeros(blocks).index_add_(0, layer, units.cost.cpu().float())
        density = density / (block_importance / block_cost).clamp_min(1e-30)[layer]
    return density


def ranking_scores(importance: torch.Tensor, units: Units, scope: str = "global") -> torch.Tensor:
    """What units are kept in order of: importance per parameter (``importance_density``) times the unit's prior,
    so a unit of the baseline structure is displaced only by one with ``prior`` times its evidence."""
    density = importance_density(importance, units, scope)
    return density * units.prior.cpu() if units.prior is not None else density


def budget_at_weight(importance: torch.Tensor, units: Units, weight: float, scope: str = "global") -> int:
    """λ mode: the size of the structure that keeps every unit whose importance per parameter is at least ``weight``
    times the average (total importance over total cost, of the candidate space or, with ``scope="layer"``, of the
    unit's block). 0 keeps everything; the rule depends on ratios of importances only, so on neither the loss scale
    nor the batch size."""
    density = importance_density(importance, units, scope)
    average = 1.0 if scope == "layer" else float(importance.sum()) / float(units.cost.sum())
    if weight <= 0 or float(importance.sum()) <= 0:
        return units.total
    return units.kept_params(density >= weight * average)


def solve_shift(log_alpha: torch.Tensor, units: Units, target: float, beta: float,
                limits: tuple[float, float], iterations: int = 50) -> torch.Tensor:
    """Per-unit shift b·cost_u/mean(cost) of the gate logits such that the expected size of the structure,
    sum_u cost_u P(keep_u) + sum_m fixed_m P(module m kept), equals ``target`` (S3Delta's shifted sigmoid, with
    CoFi's price per parameter: an expensive unit needs a larger logit to stay). Bisection on the scalar b."""
    log_alpha = log_alpha.detach()
    relative = (units.cost / units.cost.mean()).to(log_alpha)
    module = units.module.to(log_alpha.device)
    fixed = units.fixed.to(log_alpha)
    cost = units.cost.to(log_alpha)

    def expected(b: float) -> float:
        keep = hard_concrete_keep_probability(log_alpha + b * relative, beta, limits)
        log_none = torch.zeros_like(fixed).index_add_(0, module, torch.log1p(-keep.clamp(max=1 - 1e-7)))
        none_kept = torch.exp(log_none)  # P(no unit of the module is kept)
        return float((cost * keep).sum() + (fixed * (1 - none_kept)).sum())

    low, high = -60.0, 60.0
    for _ in range(iterations):
        middle = (low + high) / 2
        if expected(middle) > target:
            high = middle
        else:
            low = middle
    return low * relative
