"""Hard-concrete and Gumbel-softmax gates, and the schedules."""

import math

import pytest
import torch

from slaft.gates import GumbelChoice, HardConcreteGate, annealed_temperature, warmup_ramp


@pytest.mark.parametrize("log_alpha", [-3.0, -0.5, 0.0, 1.0, 3.0])
def test_expected_l0_matches_monte_carlo(log_alpha):
    torch.manual_seed(0)
    gate = HardConcreteGate(4).train()
    gate.log_alpha.data.fill_(log_alpha)
    samples = torch.stack([gate() for _ in range(20000)])  # (20000, 4)
    empirical = (samples > 0).float().mean()
    closed_form = gate.prob_nonzero().mean().detach()
    assert abs(float(empirical) - float(closed_form)) < 0.01


def test_samples_hit_exact_zero_and_one():
    torch.manual_seed(0)
    gate = HardConcreteGate(10000).train()
    gate.log_alpha.data.zero_()
    z = gate()
    assert (z == 0).any() and (z == 1).any() and ((z >= 0) & (z <= 1)).all()


def test_deterministic_in_eval_and_formula():
    gate = HardConcreteGate(3, beta=2 / 3, limits=(-0.1, 1.1)).eval()
    gate.log_alpha.data = torch.tensor([-5.0, 0.0, 5.0])
    first, second = gate(), gate()
    assert torch.equal(first, second)
    expected = torch.clamp(torch.sigmoid(gate.log_alpha) * 1.2 - 0.1, 0, 1)
    torch.testing.assert_close(first, expected)
    assert first[0] == 0 and first[2] == 1


def test_gradient_flows_to_log_alpha():
    gate = HardConcreteGate(5).train()
    (gate() * torch.arange(5.0)).sum().backward()
    assert gate.log_alpha.grad is not None and gate.log_alpha.grad.abs().sum() > 0
    gate.log_alpha.grad = None
    gate.prob_nonzero().sum().backward()
    assert (gate.log_alpha.grad > 0).all()


def test_init_keep_sets_open_probability():
    gate = HardConcreteGate(2, init_keep=0.9)
    assert torch.sigmoid(gate.log_alpha).allclose(torch.tensor(0.9))


def test_gumbel_choice_train_soft_eval_onehot():
    torch.manual_seed(0)
    choice = GumbelChoice(4)
    choice.logits.data = torch.tensor([0.0, 2.0, 0.5, -1.0])
    choice.train()
    weights = choice()
    assert torch.isclose(weights.sum(), torch.tensor(1.0)) and (weights > 0).all()
    choice.eval()
    assert torch.equal(choice(), torch.tensor([0.0, 1.0, 0.0, 0.0]))
    assert choice.choice() == 1


def test_gumbel_hard_straight_through_is_onehot_with_gradient():
    torch.manual_seed(0)
    choice = GumbelChoice(3, hard=True).train()
    weights = choice()
    assert sorted(weights.tolist()) == [0.0, 0.0, 1.0]
    (weights * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert choice.logits.grad is not None and choice.logits.grad.abs().sum() > 0


def test_gumbel_sample_frequencies_follow_softmax():
    torch.manual_seed(0)
    choice = GumbelChoice(3, hard=True).train()
    choice.logits.data = torch.tensor([0.0, 1.0, 2.0])
    counts = torch.stack([choice() for _ in range(20000)]).mean(0)
    torch.testing.assert_close(counts, torch.softmax(choice.logits.data, 0), atol=0.015, rtol=0)


def test_temperature_schedule_exponential_and_clamped():
    assert annealed_temperature(0, 100, 1.0, 0.1) == pytest.approx(1.0)
    assert annealed_temperature(50, 100, 1.0, 0.1) == pytest.approx(math.sqrt(0.1))
    assert annealed_temperature(100, 100, 1.0, 0.1) == pytest.approx(0.1)
    assert annealed_temperature(500, 100, 1.0, 0.1) == pytest.approx(0.1)
    values = [annealed_temperature(t, 100, 2.0, 0.2) for t in range(101)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_warmup_ramp():
    assert warmup_ramp(0, 100, 0.1) == 0.0
    assert warmup_ramp(5, 100, 0.1) == pytest.approx(0.5)
    assert warmup_ramp(10, 100, 0.1) == 1.0
    assert warmup_ramp(0, 100, 0.0) == 1.0
