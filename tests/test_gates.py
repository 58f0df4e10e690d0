"""Unit gates (binary values, probe gradients, hard-concrete), the Gumbel choice, and the schedules."""

from __future__ import annotations

import math

import pytest
import torch

from slaft.gates import (
    GumbelChoice,
    UnitGate,
    annealed_temperature,
    hard_concrete_keep_probability,
    hard_concrete_sample,
    pruned_fraction,
)


@pytest.mark.parametrize("log_alpha", [-2.0, 0.0, 1.5])
def test_expected_l0_matches_monte_carlo(log_alpha):
    torch.manual_seed(0)
    samples = hard_concrete_sample(torch.full((200_000,), log_alpha), 2 / 3, (-0.1, 1.1))
    closed = float(hard_concrete_keep_probability(torch.tensor(log_alpha), 2 / 3, (-0.1, 1.1)))
    assert float((samples > 0).float().mean()) == pytest.approx(closed, abs=0.01)


def test_gate_values_are_exactly_zero_or_one_per_unit_and_expand_by_block():
    gate = UnitGate(3, block=2).train()
    gate.mask.copy_(torch.tensor([True, False, True]))
    h = torch.randn(4, 5, 6)
    value = gate(h)
    assert torch.equal(value, torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 1.0]))


def test_probe_gradient_is_dl_dz_for_open_and_shut_units():
    gate = UnitGate(2, block=1).train()
    gate.mask.copy_(torch.tensor([True, False]))
    h = torch.tensor([[[2.0, 3.0]]], requires_grad=True)  # (batch 1, tokens 1, units 2)
    loss = (h * gate(h)).sum() * 5.0  # dL/dz_u = 5 h_u, whether the unit is open or shut
    loss.backward()
    assert torch.allclose(gate.take_probe_gradient(), torch.tensor([10.0, 15.0]))
    assert gate.take_probe_gradient() is None  # taken once, then reset


def test_hard_concrete_gate_is_binary_forward_with_gradient_to_log_alpha():
    torch.manual_seed(0)
    gate = UnitGate(64, block=1, hard_concrete=True).train()
    gate.sampling = True
    h = torch.ones(1, 64)
    value = gate(h)
    assert set(value.unique().tolist()) <= {0.0, 1.0}
    value.sum().backward()
    assert gate.log_alpha.grad is not None and gate.log_alpha.grad.abs().sum() > 0


def test_eval_uses_the_mask_and_no_probe():
    gate = UnitGate(2, block=1, hard_concrete=True).eval()
    gate.mask.copy_(torch.tensor([False, True]))
    with torch.no_grad():
        assert torch.equal(gate(torch.ones(3, 2)), torch.tensor([0.0, 1.0]))
    assert gate.probe is None


def test_gumbel_choice_train_soft_eval_onehot():
    choice = GumbelChoice(3)
    with torch.no_grad():
        choice.logits.copy_(torch.tensor([0.0, 2.0, 0.0]))
    choice.train()
    weights = choice()
    assert weights.sum().item() == pytest.approx(1.0) and (weights > 0).all()
    choice.eval()
    assert torch.equal(choice(), torch.tensor([0.0, 1.0, 0.0])) and choice.choice() == 1


def test_temperature_schedule_exponential_and_clamped():
    assert annealed_temperature(0, 100, 1.0, 0.1) == pytest.approx(1.0)
    assert annealed_temperature(50, 100, 1.0, 0.1) == pytest.approx(math.sqrt(0.1))
    assert annealed_temperature(500, 100, 1.0, 0.1) == pytest.approx(0.1)


def test_pruning_schedule_is_cubic_between_start_and_end():
    assert pruned_fraction(10, 20, 60) == 0.0 and pruned_fraction(60, 20, 60) == 1.0
    assert pruned_fraction(40, 20, 60) == pytest.approx(1 - 0.5**3)
    values = [pruned_fraction(t, 20, 60) for t in range(0, 80)]
    assert values == sorted(values)
