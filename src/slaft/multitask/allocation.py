"""Sharing-aware budget allocation over a pool of units shared by several tasks: pure functions, no model.

Each task ranks the pool's units by its own importance per parameter, normalised by the task's average so that tasks
with larger losses do not dominate. Two budgets hold at once:

* each task's own structure (the units it uses, with their modules' fixed costs) stays within the task's budget,
  the size a single-task run would get;
* the pool (the union of every task's units: what is stored) stays within the pool budget. A unit that another task
  already keeps costs the pool nothing, so a unit useful to several tasks is counted once and sharing is rewarded.

Pairs (task, unit) are taken greedily in order of decreasing score, the pairs kept so far first (as the single-task
allocator does), skipping a pair that would break either budget. An ``exclusive`` unit (of a task-private site)
serves at most one task: the first task to take it keeps it for itself.
"""

from __future__ import annotations

import torch

from ..allocation import Units, ranking_scores


def task_scores(importance: torch.Tensor, units: Units, scope: str = "global") -> torch.Tensor:
    """(T, U) scores: each task's ranking scores over its own average, so 1 means "as useful as the average unit"."""
    rows = []
    for row in importance:
        score = ranking_scores(row, units, scope)
        average = float((score * units.cost).sum() / units.cost.sum())
        rows.append(score / average if average > 0 else score)
    return torch.stack(rows)


def select_shared(scores: torch.Tensor, units: Units, task_budgets: list[float], pool_budget: float,
                  preferred: torch.Tensor | None = None, exclusive: torch.Tensor | None = None) -> torch.Tensor:
    """(T, U) bool masks: the units each task keeps, within every task budget and the pool budget (see the module
    docstring). ``preferred`` (T, U) marks the pairs kept so far; ``exclusive`` (U,) the units one task at most
    may keep."""
    num_tasks, num_units = scores.shape
    cost, module, fixed = units.cost.tolist(), units.module.tolist(), units.fixed.tolist()
    flat = scores.detach().cpu().flatten()
    order = torch.argsort(flat, descending=True, stable=True).tolist()
    if preferred is not None:
        first = preferred.cpu().flatten().tolist()
        order = [i for i in order if first[i]] + [i for i in order if not first[i]]
    keep = [[False] * num_units for _ in range(num_tasks)]
    task_used = [[False] * len(fixed) for _ in range(num_tasks)]
    task_total = [0.0] * num_tasks
    in_pool, pool_used, pool_total = [False] * num_units, [False] * len(fixed), 0.0
    private = exclusive.tolist() if exclusive is not None else [False] * num_units
    for index in order:
        t, u = divmod(index, num_units)
        if private[u] and in_pool[u]:
            continue  # another task keeps this task-private unit
        m = module[u]
        task_price = cost[u] + (0.0 if task_used[t][m] else fixed[m])
        pool_price = 0.0 if in_pool[u] else cost[u] + (0.0 if pool_used[m] else fixed[m])
        if task_total[t] + task_price <= task_budgets[t] and pool_total + pool_price <= pool_budget:
            keep[t][u], task_used[t][m] = True, True
            task_total[t] += task_price
            if not in_pool[u]:
                in_pool[u], pool_used[m] = True, True
                pool_total += pool_price
    return torch.tensor(keep, dtype=torch.bool)


def sharing_matrix(masks: torch.Tensor, units: Units) -> torch.Tensor:
    """(T, T) parameters kept by both tasks i and j (the diagonal: each task's own structure)."""
    rows = []
    for a in masks:
        rows.append(torch.tensor([float(units.kept_params(a & b)) for b in masks]))
    return torch.stack(rows)
