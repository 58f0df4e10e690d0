"""Budget allocation as pure functions: no model needed."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from slaft.allocation import Units, budget_at_weight, select, sharing_matrix, solve_shift
from slaft.gates import hard_concrete_keep_probability


def units(costs: list[float], modules: list[int] | None = None, fixed: list[float] | None = None) -> Units:
    modules = modules if modules is not None else list(range(len(costs)))
    fixed = fixed if fixed is not None else [0.0] * (max(modules) + 1)
    return Units(torch.tensor(modules), torch.tensor(costs, dtype=torch.float), torch.tensor(fixed))


def select_within_budget(scores, table, budget, preferred=None, block_share=0.0):
    """One task's selection: ``select`` with a single row."""
    return select(scores[None], table, [budget], preferred=None if preferred is None else preferred[None],
                  block_share=block_share)[0]


def test_kept_params_counts_a_module_fixed_cost_once():
    table = units([10, 10, 5], modules=[0, 0, 1], fixed=[3, 4])
    assert table.kept_params(torch.tensor([True, True, False])) == 23
    assert table.kept_params(torch.tensor([False, False, True])) == 9
    assert table.total == 32


def test_selection_takes_best_scores_and_skips_what_does_not_fit():
    table = units([10, 30, 10, 10])
    keep = select_within_budget(torch.tensor([4.0, 3.0, 2.0, 1.0]), table, budget=25)
    assert keep.tolist() == [True, False, True, False]  # 30 did not fit; the next 10 filled in behind it


def test_selection_prefers_units_kept_so_far_then_fills():
    table = units([10, 10, 10, 10])
    keep = select_within_budget(torch.tensor([4.0, 3.0, 2.0, 1.0]), table, budget=30,
                                preferred=torch.tensor([False, True, False, True]))
    assert keep.tolist() == [True, True, False, True]


@settings(max_examples=60, deadline=None)
@given(costs=st.lists(st.integers(1, 50), min_size=1, max_size=30), budget=st.integers(0, 600),
       seed=st.integers(0, 10_000))
def test_selection_fills_the_budget_to_within_one_unit(costs, budget, seed):
    table = units([float(c) for c in costs])
    scores = torch.rand(len(costs), generator=torch.Generator().manual_seed(seed))
    keep = select_within_budget(scores, table, budget)
    kept = table.kept_params(keep)
    assert kept <= budget
    left_out = [c for c, k in zip(costs, keep.tolist()) if not k]
    assert not left_out or budget - kept < min(left_out)  # nothing left out would still have fitted


def layered(costs: list[float], layers: list[int]) -> Units:
    return Units(torch.arange(len(costs)), torch.tensor(costs, dtype=torch.float), torch.zeros(len(costs)),
                 layer=torch.tensor(layers))


def test_block_share_gives_every_block_its_floor_before_units_compete():
    table = layered([10] * 6, layers=[0, 0, 1, 1, 2, 2])
    scores = torch.tensor([9.0, 8.0, 7.0, 6.0, 2.0, 1.0])  # block 2's units rank last across the model
    assert select_within_budget(scores, table, budget=30).tolist() == [True, True, True, False, False, False]
    spread = select_within_budget(scores, table, budget=30, block_share=1.0)
    assert spread.tolist() == [True, False, True, False, True, False]  # each block's best unit
    half = select_within_budget(scores, table, budget=60, block_share=0.5)  # a floor of 10 each, then the best
    assert half.tolist() == [True] * 6


@settings(max_examples=60, deadline=None)
@given(costs=st.lists(st.integers(1, 50), min_size=2, max_size=30), budget=st.integers(0, 600),
       share=st.floats(0.0, 1.0), seed=st.integers(0, 10_000))
def test_block_share_still_fills_the_budget_and_each_block_its_floor(costs, budget, share, seed):
    layers = [i % 3 for i in range(len(costs))]
    table = layered([float(c) for c in costs], layers)
    scores = torch.rand(len(costs), generator=torch.Generator().manual_seed(seed))
    keep = select_within_budget(scores, table, budget, block_share=share)
    kept = table.kept_params(keep)
    assert kept <= budget
    left_out = [c for c, k in zip(costs, keep.tolist()) if not k]
    assert not left_out or budget - kept < min(left_out)
    floor = share * budget / len(set(layers))
    for block in set(layers):
        spent = sum(c for c, k, b in zip(costs, keep.tolist(), layers) if k and b == block)
        unkept = [c for c, k, b in zip(costs, keep.tolist(), layers) if not k and b == block]
        assert not unkept or spent > floor - min(unkept) - 1e-6  # the floor is filled up to less than one unit


def test_budget_at_weight_falls_monotonically_and_zero_keeps_everything():
    table = units([5, 5, 10, 20, 20])
    importance = torch.tensor([9.0, 1.0, 4.0, 2.0, 30.0])
    sizes = [budget_at_weight(importance, table, w) for w in (0.0, 0.5, 1.0, 2.0, 4.0, 100.0)]
    assert sizes[0] == table.total
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] == 0


def test_budget_at_weight_ignores_the_scale_of_importances():
    table = units([5, 5, 10, 20])
    importance = torch.tensor([9.0, 1.0, 5.0, 2.0])
    assert budget_at_weight(importance, table, 1.0) == budget_at_weight(1e-6 * importance, table, 1.0)


@pytest.mark.parametrize("target", [5.0, 40.0, 95.0])
def test_solved_shift_puts_the_expected_size_on_target(target):
    table = units([4, 4, 8, 8, 16, 16, 32, 32], modules=[0, 0, 1, 1, 2, 2, 3, 3], fixed=[1, 2, 3, 4])
    log_alpha = torch.linspace(-2, 3, 8)
    shift = solve_shift(log_alpha, table, target, 2 / 3, (-0.1, 1.1))
    keep = hard_concrete_keep_probability(log_alpha + shift, 2 / 3, (-0.1, 1.1))
    none = torch.ones(4)
    for unit, module in enumerate(table.module.tolist()):
        none[module] *= 1 - keep[unit]
    expected = float((table.cost * keep).sum() + (table.fixed * (1 - none)).sum())
    assert expected == pytest.approx(target, rel=1e-3)
    assert torch.all(shift[table.cost == 32] <= shift[table.cost == 4])  # expensive units pay more per unit


@settings(max_examples=60, deadline=None)
@given(costs=st.lists(st.integers(1, 50), min_size=2, max_size=30), budget=st.integers(0, 600),
       share=st.floats(0.0, 1.0), seed=st.integers(0, 10_000))
def test_one_task_with_its_budget_as_the_pool_selects_what_it_selects_alone(costs, budget, share, seed):
    """The pool limit binds exactly as the task's own when one task has a pool of its budget (the single-task case
    of the search)."""
    table = layered([float(c) for c in costs], [i % 3 for i in range(len(costs))])
    scores = torch.rand(1, len(costs), generator=torch.Generator().manual_seed(seed))
    alone = select(scores, table, [budget], block_share=share)
    assert torch.equal(alone, select(scores, table, [budget], budget, block_share=share))


# With a task axis: one budget per task and one for the pool ------------------------------------------------------
def paired_units(n: int = 12) -> Units:
    return Units(torch.arange(n) // 2, torch.full((n,), 10.0), torch.zeros(n // 2))


def test_every_task_and_the_pool_stay_within_their_budgets_and_a_shared_unit_counts_once():
    table = paired_units()
    scores = torch.rand(3, 12, generator=torch.Generator().manual_seed(0))
    masks = select(scores, table, [60, 60, 60], 90)
    for mask in masks:
        assert table.kept_params(mask) <= 60
    assert table.kept_params(masks.any(0)) <= 90 < sum(table.kept_params(m) for m in masks)
    assert sharing_matrix(masks, table)[0, 0] == table.kept_params(masks[0])


def test_a_smaller_pool_makes_tasks_share_more():
    table = paired_units()
    scores = torch.rand(3, 12, generator=torch.Generator().manual_seed(1))
    loose, tight = select(scores, table, [60] * 3, 120), select(scores, table, [60] * 3, 60)
    off_diagonal = ~torch.eye(3, dtype=torch.bool)
    assert sharing_matrix(tight, table)[off_diagonal].sum() > sharing_matrix(loose, table)[off_diagonal].sum()


def test_tasks_that_rank_alike_share_their_units():
    table = paired_units()
    same = torch.linspace(1, 0, 12).repeat(2, 1)
    masks = select(same, table, [40, 40], 40)
    assert torch.equal(masks[0], masks[1]) and table.kept_params(masks[0]) == 40


def test_an_exclusive_unit_serves_one_task_at_most():
    table = paired_units()
    same = torch.linspace(1, 0, 12).repeat(2, 1)
    exclusive = torch.zeros(12, dtype=torch.bool)
    exclusive[:4] = True
    masks = select(same, table, [60, 60], 80, exclusive=exclusive)
    assert not (masks[0] & masks[1])[:4].any() and (masks[0] | masks[1])[:4].all()
    assert (masks[0] & masks[1])[4:].any()  # the other units are still shared
