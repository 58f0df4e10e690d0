"""Candidate modules: outputs, pruning in place with the optimizer's state, LoRA's scale kept."""

from __future__ import annotations

import torch

from slaft.gates import UnitGate
from slaft.modules import BottleneckAdapter, LowRankUpdate


def trained(module, steps: int = 3):
    """A few Adam steps so weights are non-zero and the optimizer has state."""
    optimizer = torch.optim.Adam(module.parameters(), lr=0.1)
    x = torch.randn(4, 5, module.lora_A.shape[1] if isinstance(module, LowRankUpdate) else module.dim)
    for _ in range(steps):
        module(x).pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    return optimizer, x


def test_low_rank_update_is_scaled_b_a():
    module = LowRankUpdate(6, 4, 4, scaling=2.0)
    torch.nn.init.normal_(module.lora_B)
    x = torch.randn(3, 6)
    torch.testing.assert_close(module(x), 2.0 * x @ module.lora_A.T @ module.lora_B.T)
    torch.testing.assert_close(module.delta_weight(), 2.0 * module.lora_B @ module.lora_A)


def test_the_fused_addition_equals_the_sum_with_gradients_and_keeps_the_hosts_dtype():
    module = LowRankUpdate(6, 4, 4, scaling=2.0, gate=UnitGate(2, 2))
    torch.nn.init.normal_(module.lora_B)
    x, out = torch.randn(2, 3, 6, requires_grad=True), torch.randn(2, 3, 4, requires_grad=True)
    fused = module(x, out)
    grads = torch.autograd.grad(fused.pow(2).sum(), [x, out, module.lora_A, module.lora_B])
    probe = module.gate.take_probe_gradient()
    plain = out + module(x)
    expected = torch.autograd.grad(plain.pow(2).sum(), [x, out, module.lora_A, module.lora_B])
    torch.testing.assert_close(fused, plain)
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(probe, module.gate.take_probe_gradient())  # importances see the same dL/dz
    # A host of another dtype (a half-precision backbone) gets the plain sum, in its own dtype.
    assert module(x, out.detach().bfloat16()).dtype == torch.bfloat16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert module(x, out.detach().bfloat16()).dtype == torch.bfloat16


def test_pruning_keeps_trained_weights_scale_and_optimizer_state():
    module = LowRankUpdate(6, 4, 4, scaling=2.0, gate=UnitGate(2, block=2))
    optimizer, x = trained(module)
    keep = torch.tensor([False, False, True, True])
    module.gate.mask.copy_(torch.tensor([False, True]))
    module.eval()
    with torch.no_grad():
        gated = module(x)
    a, b = module.lora_A.detach().clone(), module.lora_B.detach().clone()
    moment = optimizer.state[module.lora_B]["exp_avg"].clone()
    module.prune_(keep, optimizer)
    assert module.gate is None and module.width == 2 and module.scaling == 2.0
    torch.testing.assert_close(module.lora_A, a[2:])
    torch.testing.assert_close(module.lora_B, b[:, 2:])
    torch.testing.assert_close(optimizer.state[module.lora_B]["exp_avg"], moment[:, 2:])
    with torch.no_grad():
        torch.testing.assert_close(module(x), gated)
    trained(module, steps=1)  # the optimizer steps on with the smaller tensors


def test_bottleneck_prunes_units_and_fixes_its_activation():
    module = BottleneckAdapter(6, 4, ("relu", "gelu"), gate=UnitGate(2, block=2))
    optimizer, x = trained(module)
    with torch.no_grad():
        module.choice.logits.copy_(torch.tensor([0.0, 3.0]))
    module.gate.mask.copy_(torch.tensor([True, False]))
    module.eval()
    with torch.no_grad():
        gated = module(x)
    module.prune_(torch.tensor([True, True, False, False]), optimizer)
    assert module.activations == ("gelu",) and module.choice is None and module.width == 2
    with torch.no_grad():
        torch.testing.assert_close(module(x), gated)
    assert optimizer.state[module.down.bias]["exp_avg"].shape == (2,)


def test_identity_bottleneck_is_a_linear_map():
    module = BottleneckAdapter(5, 3, ("identity",))
    torch.nn.init.normal_(module.up.weight)
    matrix, shift = module.linear_map()
    x = torch.randn(2, 5)
    torch.testing.assert_close(module(x), x @ matrix.T + shift)


def test_every_update_runs_through_its_modules_call_so_parameter_hooks_see_it(batch):
    """ZeRO-3 and similar engines gather a module's parameters in its forward pre-hook: the fused addition must not
    bypass the module's __call__."""
    from conftest import tiny_bert

    from slaft import SlaftConfig, get_slaft_model

    model = get_slaft_model(tiny_bert(), SlaftConfig(sites=["lora_q", "lora_ffn_in"]))
    calls = []
    for module in model.modules():
        if isinstance(module, LowRankUpdate):
            module.register_forward_pre_hook(lambda m, args: calls.append(m))
    model.eval()
    model(**batch)
    assert len(calls) == sum(isinstance(m, LowRankUpdate) for m in model.modules()) > 0
