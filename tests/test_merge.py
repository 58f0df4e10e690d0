"""Folding a module into its host linear gives the same outputs, in float64, and refuses non-finite results."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slaft.merge import fold_low_rank, fold_serial
from slaft.modules import BottleneckAdapter, LowRankUpdate


def test_folding_a_low_rank_update():
    host, module = nn.Linear(6, 4), LowRankUpdate(6, 4, 2, scaling=2.0)
    torch.nn.init.normal_(module.lora_B)
    x = torch.randn(3, 6)
    expected = host(x) + module(x)
    fold_low_rank(host, module, "0.lora_q")
    torch.testing.assert_close(host(x), expected)


@pytest.mark.parametrize("bias", [True, False])
def test_folding_a_serial_identity_adapter(bias):
    host, adapter = nn.Linear(5, 5, bias=bias), BottleneckAdapter(5, 2, ("identity",))
    torch.nn.init.normal_(adapter.up.weight)
    torch.nn.init.normal_(adapter.up.bias)
    x = torch.randn(3, 5)
    y = host(x)
    expected = y + adapter(y)
    fold_serial(host, adapter, "0.attn_adapter")
    torch.testing.assert_close(host(x), expected)


def test_a_non_finite_fold_leaves_the_host_unchanged():
    host, module = nn.Linear(3, 3), LowRankUpdate(3, 3, 1, scaling=1.0)
    with torch.no_grad():
        module.lora_B.fill_(float("inf"))
    before = host.weight.detach().clone()
    with pytest.raises(ValueError, match="non-finite"):
        fold_low_rank(host, module, "0.lora_v")
    assert torch.equal(host.weight, before)
