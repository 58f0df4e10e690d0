"""Budget allocation as pure functions of unit statistics: no model, no state, testable on plain tensors.

The candidate space is flattened into units (blocks of LoRA rank components or bottleneck hidden units). Unit u
belongs to module ``module[u]`` and costs ``cost[u]`` parameters; a module costs ``fixed[m]`` more as soon as one of
its units is kept (a bottleneck's output bias). Statistics carry a task axis: one row per task of a shared pool, a
single row for one task.
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


def select(scores: torch.Tensor, units: Units, budgets: list[float], pool_budget: float | None = None,
           preferred: torch.Tensor | None = None, exclusive: torch.Tensor | None = None,
           block_share: float = 0.0) -> torch.Tensor:
    """(T, U) bool masks: the units each of T tasks keeps (one task is the single-task case, T = 1).

    Pairs (task, unit) are taken in order of decreasing ``scores`` (T, U), the ``preferred`` pairs (those kept so far)
    first, while they fit two budgets at once: the task's own structure (its units and their modules' fixed costs)
    stays within ``budgets[t]``, and the pool (the union of every task's units: what is stored) within
    ``pool_budget`` (default: no pool limit). A unit another task already keeps costs the pool nothing, so sharing
    is rewarded. A pair that does not fit is skipped, so smaller units after it can still fill the rest: each
    budget is filled up to less than one unit. An ``exclusive`` (U,) unit serves one task at most. With
    ``block_share`` > 0 each task first keeps its own best units of every block up to ``block_share * budget /
    blocks`` (a floor that spreads a small budget over the depth), then every pair competes for the rest."""
    scores = scores.detach().cpu()
    num_tasks, num_units = scores.shape
    cost, module, fixed = units.cost.cpu().tolist(), units.module.cpu().tolist(), units.fixed.cpu().tolist()
    order = torch.argsort(scores.flatten(), descending=True, stable=True).tolist()
    if preferred is not None:
        first = preferred.cpu().flatten().tolist()
        order = [i for i in order if first[i]] + [i for i in order if not first[i]]
    keep = [[False] * num_units for _ in range(num_tasks)]
    task_used = [[False] * len(fixed) for _ in range(num_tasks)]
    task_total = [0.0] * num_tasks
    in_pool, pool_used = [False] * num_units, [False] * len(fixed)
    pool = {"total": 0.0, "limit": float("inf") if pool_budget is None else pool_budget}
    private = exclusive.cpu().tolist() if exclusive is not None else [False] * num_units

    def take(t: int, u: int, spent: float, limit: float) -> float:
        """Keep unit u for task t if it fits ``limit`` (the task's spending ``spent`` so far) and the pool; returns
        what it cost the task (0: not kept)."""
        if keep[t][u] or (private[u] and in_pool[u]):
            return 0.0
        m = module[u]
        task_price = cost[u] + (0.0 if task_used[t][m] else fixed[m])
        pool_price = 0.0 if in_pool[u] else cost[u] + (0.0 if pool_used[m] else fixed[m])
        if spent + task_price > limit or pool["total"] + pool_price > pool["limit"]:
            return 0.0
        keep[t][u], task_used[t][m] = True, True
        task_total[t] += task_price
        if not in_pool[u]:
            in_pool[u], pool_used[m] = True, True
            pool["total"] += pool_price
        return task_price

    if block_share > 0 and units.layer is not None:
        layer = units.layer.cpu().tolist()
        blocks = sorted(set(layer))
        for t in range(num_tasks):
            floor = block_share * budgets[t] / len(blocks)
            for block in blocks:
                spent = 0.0
                for index in order:
                    task, u = divmod(index, num_units)
                    if task == t and layer[u] == block:
                        spent += take(t, u, spent, floor)
    for index in order:
        t, u = divmod(index, num_units)
        take(t, u, task_total[t], budgets[t])
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


def task_scores(importance: torch.Tensor, units: Units, scope: str = "global") -> torch.Tensor:
    """(T, U) ranking scores of T tasks' (T, U) importances. With several tasks each row is taken over its own
    average (1 = as useful as the task's average unit), so tasks with larger losses do not dominate the pool; one
    row needs no normalisation (the order within a row does not change)."""
    rows = [ranking_scores(row, units, scope) for row in importance]
    if len(rows) > 1:
        for i, score in enumerate(rows):
            average = float((score * units.cost).sum() / units.cost.sum())
            rows[i] = score / average if average > 0 else score
    return torch.stack(rows)


def sharing_matrix(masks: torch.Tensor, units: Units) -> torch.Tensor:
    """(T, T) parameters kept by both tasks i and j of (T, U) masks (the diagonal: each task's own structure)."""
    return torch.stack([torch.tensor([float(units.kept_params(a & b)) for b in masks]) for a in masks])


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
