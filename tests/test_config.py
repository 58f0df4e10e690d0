"""SlaftConfig validation and its JSON round trip."""

import json
import re
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slaft import ConfigError, ConfigWarning, SlaftConfig


def test_round_trip_through_json():
    config = SlaftConfig(sites=("attn_adapter", "lora_q"), target_params=0.01, activations=("identity", "relu"))
    assert SlaftConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert SlaftConfig() == SlaftConfig.from_dict(SlaftConfig().to_dict())


def test_sequences_are_stored_as_tuples():
    config = SlaftConfig(sites=["lora_q", "ffn_adapter"], layers=[0, 1], activations=["relu"], allocator="gates",
                         gate_limits=[-0.2, 1.2])
    assert config.sites == ("lora_q", "ffn_adapter") and config.layers == (0, 1) and config.gate_limits == (-0.2, 1.2)


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


# Fields that cannot act, and settings that contradict each other -----------------------------------------------------
@pytest.mark.parametrize("kwargs", [
    {},
    {"sites": ("ffn_adapter", "lora_q"), "adapter_width": 16, "activations": ("relu", "gelu", "silu"),
     "tau_start": 2.0, "hard_choice": True, "structure_lr": 0.1},
    {"allocator": "gates", "gate_beta": 0.5, "gate_limits": (-0.2, 1.2), "structure_lr": 0.1},
    {"target_params": 1000},
    {"sites": ("lora_k", "lora_v"), "prior_weight": 2.0, "lora_rank": 4},
])
def test_settings_that_all_act_warn_nothing(kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = SlaftConfig(**kwargs)
        SlaftConfig.from_dict(config.to_dict())


@pytest.mark.parametrize("kwargs,fields", [
    ({"adapter_width": 16, "width_block": 4}, "adapter_width, width_block have no effect"),
    ({"activations": ("relu",)}, "activations has no effect: no candidate site is a bottleneck"),
    ({"sites": ("lora_q", "lora_v"), "tau_start": 2.0, "hard_choice": True}, "tau_start, hard_choice"),
    ({"sites": ("ffn_adapter",), "activations": ("gelu",), "tau_end": 0.5}, "tau_end has no effect: with one"),
    ({"sites": ("ffn_adapter", "attn_adapter"), "lora_rank": 4, "split_fused": True},
     "lora_rank, split_fused have no effect: no candidate site is a low-rank update"),
    ({"gate_beta": 0.5}, "gate_beta has no effect: allocator='importance'"),
    ({"gate_limits": (-0.2, 1.2)}, "gate_limits has no effect"),
    ({"structure_lr": 0.1}, "structure_lr has no effect"),
    ({"prior_sites": ("lora_k",)}, "prior_sites has no effect: prior_weight=1"),
    ({"sites": ("lora_k", "lora_o"), "prior_weight": 3.0}, "prior_weight has no effect: none of prior_sites"),
    ({"search_end": 1.0, "decided_lr_scale": 2.0}, "decided_lr_scale has no effect: with search_end=1"),
])
def test_a_field_that_cannot_act_warns_with_a_fix(kwargs, fields):
    with pytest.warns(ConfigWarning, match=re.escape(fields)):
        SlaftConfig(**kwargs)


def test_a_budget_and_a_sparsity_weight_together_are_refused():
    with pytest.raises(ConfigError, match="drop sparsity_weight for budget mode, or target_params for λ mode"):
        SlaftConfig(target_params=50_000, sparsity_weight=2.0)
    # a saved config of slaft <= 0.2 that held both (the weight was ignored) still loads, as a budget
    loaded = SlaftConfig.from_dict({"target_params": 50_000, "sparsity_weight": 2.0})
    assert loaded.target_params == 50_000 and loaded.sparsity_weight == SlaftConfig().sparsity_weight


def test_config_warning_is_exported_and_a_user_warning():
    import slaft

    assert slaft.ConfigWarning is ConfigWarning and issubclass(ConfigWarning, UserWarning)
