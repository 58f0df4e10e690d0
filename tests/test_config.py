"""SlaftConfig validation and its JSON round trip."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slaft import ConfigError, SlaftConfig


def test_round_trip_through_json():
    config = SlaftConfig(sites=("attn_adapter", "lora_q"), target_params=0.01, activations=("identity", "relu"))
    assert SlaftConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert SlaftConfig() == SlaftConfig.from_dict(SlaftConfig().to_dict())


def test_sequences_are_stored_as_tuples():
    config = SlaftConfig(sites=["lora_q"], layers=[0, 1], activations=["relu"], gate_limits=[-0.2, 1.2])
    assert config.sites == ("lora_q",) and config.layers == (0, 1) and config.gate_limits == (-0.2, 1.2)


def test_configs_of_slaft_0_1_load_without_their_retired_fields():
    config = SlaftConfig.from_dict({"gate_init_keep": 0.9, "penalty_warmup_ratio": 0.1, "search_steps": None,
                                    "lora_rank": 4, "rank_block": 2})
    assert config.lora_rank == 4


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"sites": ("atn_adapter",)}, "Did you mean 'attn_adapter'"),
        ({"sites": ()}, "sites is empty"),
        ({"activations": ("swish",)}, "Unknown activation"),
        ({"sparsity_weight": -0.1}, "sparsity_weight must be >= 0"),
        ({"target_params": 0}, "target_params must be > 0"),
        ({"tau_start": 0.0}, "tau_start must be in"),
        ({"tau_end": -1.0}, "tau_end must be in"),
        ({"gate_beta": 0.0}, "gate_beta"),
        ({"gate_beta": 1e9}, "gate_beta must be in"),
        ({"adapter_width": 0}, "adapter_width must be >= 1"),
        ({"lora_rank": 6, "rank_block": 4}, "multiple of rank_block"),
        ({"adapter_width": 10, "width_block": 4}, "multiple of width_block"),
        ({"gate_limits": (0.0, 1.1)}, "gate_limits"),
        ({"gate_limits": (-0.1,)}, "gate_limits"),
        ({"layers": (-1,)}, "layers"),
        ({"allocator": "gate"}, "Did you mean 'gates'"),
        ({"search_start": 0.6, "search_end": 0.5}, "search_start < search_end"),
        ({"search_end": 1.5}, "search_end <= 1"),
        ({"importance_beta": 1.0}, "importance_beta"),
        ({"dropout": 1.0}, "dropout"),
        ({"lora_alpha": 0}, "lora_alpha"),
        ({"structure_lr": 0}, "structure_lr"),
        ({"total_steps": 0}, "total_steps"),
        ({"sparsity_weight": float("nan")}, "sparsity_weight"),
    ],
)
def test_bad_values_fail_at_construction(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        SlaftConfig(**kwargs)


def test_unknown_field_in_json_is_named():
    with pytest.raises(ConfigError, match="sparsity_wieght"):
        SlaftConfig.from_dict({"sparsity_wieght": 1.0})


def test_budget_larger_than_candidate_space_is_refused():
    with pytest.raises(ConfigError, match="candidate space holds only"):
        SlaftConfig(target_params=10_000).resolve_target(backbone_params=1_000_000, candidate_params=5_000)
    assert SlaftConfig(target_params=0.5).resolve_target(1000, 5000) == 500


finite = st.floats(allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=60, deadline=None)
@given(weight=finite, tau_start=finite, tau_end=finite, target=st.one_of(st.none(), finite),
       width=st.integers(-3, 200),
       sites=st.lists(st.sampled_from(["attn_adapter", "lora_q", "lora_x", ""]), max_size=3))
def test_config_either_valid_and_round_trips_or_config_error(weight, tau_start, tau_end, target, width, sites):
    try:
        config = SlaftConfig(sparsity_weight=weight, tau_start=tau_start, tau_end=tau_end, target_params=target,
                             adapter_width=width, sites=tuple(sites))
    except ConfigError as err:
        assert str(err)
        return
    assert SlaftConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_list_entries_split_on_spaces_and_commas_at_the_first_equals_sign():
    from slaft.config import list_entries

    assert list_entries(["cola=2, SST-2 = 0.5", "kind=data/a=b.csv", ",", "stsb"]) == [
        ("cola", "=", "2"), ("SST-2", "=", "0.5"), ("kind", "=", "data/a=b.csv"), ("stsb", "", "")]
    assert list_entries(None) == []
