"""The structure as data and the site table's cost formula."""

from __future__ import annotations

import pytest

from slaft.sites import SITES, module_cost
from slaft.structure import ModuleSpec, Structure


def test_costs_are_written_once_and_count_what_modules_hold():
    from slaft.modules import BottleneckAdapter, LowRankUpdate

    lora, adapter = LowRankUpdate(10, 6, 4, scaling=1.0), BottleneckAdapter(10, 3, ("relu",))
    assert module_cost("lora", 4, 10, 6) == sum(p.numel() for p in lora.parameters())
    assert module_cost("serial", 3, 10, 10) == sum(p.numel() for p in adapter.parameters())
    assert module_cost("lora", 0, 10, 6) == 0  # no units, no module
    assert ModuleSpec(0, "lora_q", 4, 10, 6).num_params == 4 * 16


def test_table_diff_and_round_trip():
    a = Structure([ModuleSpec(0, "lora_q", 4, 8, 8), ModuleSpec(1, "ffn_adapter", 8, 8, 8, ("gelu",))], True, 2)
    b = Structure([ModuleSpec(0, "lora_q", 2, 8, 8)], True, 2)
    assert Structure.from_dict(a.to_dict()) == a
    assert a.diff(b) == ["layer  0 lora_q           r=4 -> r=2", "layer  1 ffn_adapter      gelu w=8 -> -"]
    table = a.table().splitlines()
    assert table[0].split() == ["layer", SITES["ffn_adapter"].label, SITES["lora_q"].label]
    assert "gelu w=8" in table[2] and "r=4" in table[1]
    assert str(a).startswith("learned structure: 2 modules")


def test_format_1_structures_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="train them again"):
        Structure.from_dict({"format": 1, "modules": [], "discrete": True, "num_layers": 1})


def test_linear_modules_are_the_foldable_ones():
    assert ModuleSpec(0, "lora_v", 2, 8, 8).is_linear
    assert ModuleSpec(0, "attn_adapter", 2, 8, 8, ("identity",)).is_linear
    assert not ModuleSpec(0, "parallel_adapter", 2, 8, 8, ("identity",)).is_linear  # reads another module's input
    assert not ModuleSpec(0, "ffn_adapter", 2, 8, 8, ("relu",)).is_linear
