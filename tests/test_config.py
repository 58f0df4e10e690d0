"""SlaftConfig validation and its JSON round trip."""

import pytest

from slaft import ConfigError, SlaftConfig


def test_defaults_round_trip(tmp_path):
    config = SlaftConfig(sites=("attn_adapter", "lora_q"), target_params=0.01, activations=("identity", "relu"))
    config.to_json_file(tmp_path / "c.json")
    assert SlaftConfig.from_json_file(tmp_path / "c.json") == config


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"sites": ("atn_adapter",)}, "Did you mean 'attn_adapter'"),
        ({"sites": ()}, "sites is empty"),
        ({"activations": ("swish",)}, "Unknown activation"),
        ({"sparsity_weight": -0.1}, "sparsity_weight must be >= 0"),
        ({"target_params": 0}, "target_params must be > 0"),
        ({"tau_start": 0.0}, "Temperatures must be > 0"),
        ({"tau_end": -1.0}, "Temperatures must be > 0"),
        ({"gate_beta": 0.0}, "gate_beta"),
        ({"gate_init_keep": 1.0}, "gate_init_keep"),
        ({"adapter_width": 0}, "adapter_width must be >= 1"),
        ({"gate_limits": (0.0, 1.1)}, "gate_limits"),
        ({"layers": (-1,)}, "layers"),
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
