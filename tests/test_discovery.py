"""Finding a model's sites from the model itself: blocks, linears, roles; peft's vocabulary for the candidate space;
clear errors where blocks cannot be found; and `slaft train --model DIR` on local models of several types."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from slaft import ConfigError, DiscoveryError, SlaftConfig, get_slaft_model
from slaft import discovery as roles
from slaft.discovery import classify, find_blocks

from conftest import run_cli
from tiny_models import tiny_model


def role_map(model_type: str, head: str = "seq-cls") -> dict[str, str]:
    blocks = find_blocks(tiny_model(model_type, head))
    return {linear.path: linear.role for linear in blocks[-1].linears}


@pytest.mark.parametrize("model_type,expected", [
    ("bert", {"attention.self.query": "q", "attention.self.key": "k", "attention.self.value": "v",
              "attention.output.dense": "o", "intermediate.dense": "ffn_in", "output.dense": "ffn_out"}),
    ("gpt2", {"attn.c_attn": "qkv", "attn.c_proj": "o", "mlp.c_fc": "ffn_in", "mlp.c_proj": "ffn_out"}),
    ("phi3", {"self_attn.qkv_proj": "qkv", "self_attn.o_proj": "o", "mlp.gate_up_proj": "ffn_gate_up",
              "mlp.down_proj": "ffn_out"}),
    ("modernbert", {"attn.Wqkv": "qkv", "attn.Wo": "o", "mlp.Wi": "ffn_gate_up", "mlp.Wo": "ffn_out"}),
    ("gpt_neox", {"attention.query_key_value": "qkv", "attention.dense": "o", "mlp.dense_h_to_4h": "ffn_in",
                  "mlp.dense_4h_to_h": "ffn_out"}),
    ("opt", {"self_attn.q_proj": "q", "self_attn.out_proj": "o", "fc1": "ffn_in", "fc2": "ffn_out"}),
    ("distilbert", {"attention.q_lin": "q", "attention.out_lin": "o", "ffn.lin1": "ffn_in", "ffn.lin2": "ffn_out"}),
])
def test_roles_come_from_names_and_shapes(model_type, expected):
    found = role_map(model_type)
    assert {path: found[path] for path in expected} == expected


def test_encoder_decoders_number_both_stacks_and_find_cross_attention():
    model = tiny_model("t5")
    blocks = find_blocks(model)
    assert [b.stack for b in blocks] == ["transformer.encoder.block"] * 2 + ["transformer.decoder.block"] * 2
    decoder = {linear.path: linear.role for linear in blocks[-1].linears}
    assert decoder["layer.1.EncDecAttention.q"] == "cross_q" and decoder["layer.0.SelfAttention.q"] == "q"
    assert decoder["layer.2.DenseReluDense.wi"] == "ffn_in" and decoder["layer.2.DenseReluDense.wo"] == "ffn_out"
    slaft = get_slaft_model(model, SlaftConfig(lora_rank=4))
    assert "lora_cross_q" in slaft.candidate.sites() and slaft.candidate.num_layers == 4


def test_routers_are_not_candidates_and_unknown_linears_are_by_path():
    assert classify("mlp.gate", 32, 4, hidden=32, num_experts=4) == roles.ROUTER
    assert classify("block_sparse_moe.experts.0.w1", 32, 64, hidden=32) == roles.EXPERT
    assert classify("mixer.in_proj", 32, 128, hidden=32) == roles.OTHER
    slaft = get_slaft_model(tiny_model("jamba"), SlaftConfig(lora_rank=4))
    assert "lora:mamba.in_proj" in slaft.candidate.sites()  # a Mamba layer's linears, under their own paths


def test_conv1d_hosts_merge_exactly():
    model = get_slaft_model(tiny_model("gpt2"), SlaftConfig(lora_rank=4, total_steps=10))
    with torch.no_grad():
        for _, _, module in model.slaft_modules():
            module.lora_B.normal_()
    ids = torch.randint(3, 100, (2, 6))
    model.eval()
    before = model(input_ids=ids).logits
    model.merge()
    assert torch.allclose(model(input_ids=ids).logits, before, atol=1e-4)


def test_target_and_exclude_modules_follow_peft():
    base = tiny_model("llama")
    names = get_slaft_model(base, SlaftConfig(target_modules=["q_proj", "v_proj"])).candidate.sites()
    assert names == ["lora_q", "lora_v"]
    regex = get_slaft_model(tiny_model("llama"), SlaftConfig(target_modules=r".*\.layers\.1\..*_proj"))
    assert {m.layer for m in regex.candidate.modules} == {1}
    excluded = get_slaft_model(tiny_model("llama"), SlaftConfig(target_modules="all-linear",
                                                                exclude_modules=["down_proj", "gate_proj"]))
    assert "lora_ffn_out" not in excluded.candidate.sites() and "lora_q" in excluded.candidate.sites()
    with pytest.raises(ConfigError, match="empty"):
        get_slaft_model(tiny_model("llama"), SlaftConfig(target_modules=["no_such_linear"]))


def test_bottlenecks_need_an_attention_output_and_a_feed_forward_output():
    ok = get_slaft_model(tiny_model("gpt2"), SlaftConfig(sites=["attn_adapter", "ffn_adapter", "parallel_adapter"],
                                                         adapter_width=8, width_block=4))
    assert ok.candidate.sites() == ["attn_adapter", "ffn_adapter", "parallel_adapter"]
    with pytest.raises(ConfigError, match="exist in no block"):  # Mamba layers have neither
        get_slaft_model(tiny_model("jamba"), SlaftConfig(sites=["attn_adapter"], adapter_width=8, width_block=4))


def test_block_lists_name_the_blocks_and_a_wrong_path_is_named():
    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            self.first = nn.ModuleList([nn.Sequential(nn.Linear(8, 8)) for _ in range(2)])
            self.second = nn.ModuleList([nn.Sequential(nn.Linear(8, 8)) for _ in range(3)])

    assert [b.stack for b in find_blocks(Stack())] == ["first"] * 2 + ["second"] * 3
    assert [b.stack for b in find_blocks(Stack(), ("second",))] == ["second"] * 3
    with pytest.raises(DiscoveryError, match="'thrid'"):
        find_blocks(Stack(), ("thrid",))


@pytest.mark.parametrize("settings", [{"lora_rank": 4}, {"lora_rank": 4, "base_model_name_or_path": "tiny"},
                                      {"sites": ("ffn_adapter", "lora_q"), "adapter_width": 16}])
def test_the_callers_config_is_left_as_it_was(settings):
    """get_slaft_model works on a copy: what it fills in (the base model's name), what the search reads, and any
    later change to the model's config never reach the caller's object."""
    config = SlaftConfig(**settings)
    before = config.to_dict()
    model = get_slaft_model(tiny_model("bert"), config)
    assert config.to_dict() == before and model.slaft_config is not config
    assert model.slaft_config.base_model_name_or_path is not None
    model.slaft_config.lora_rank = 2
    assert config.lora_rank == 4 if "lora_rank" in settings else config.lora_rank == 8
    structure = model.discretize()
    get_slaft_model(tiny_model("bert"), config, structure)
    assert config.to_dict() == before


WORDS = ["good", "bad", "fine", "poor", "movie", "book", "very", "not"]


def saved_model_with_tokenizer(root, model_type: str):
    """A tiny ``model_type`` classifier and a word-level tokenizer saved like a hub checkpoint."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(["<pad>", "<s>", "</s>", "<unk>", *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(root)
    tiny_model(model_type, num_labels=2).save_pretrained(root)


@pytest.mark.parametrize("model_type", ["gpt2", "qwen3", "deberta-v2"])
def test_slaft_train_on_a_local_directory(tmp_path, model_type):
    saved_model_with_tokenizer(tmp_path / "model", model_type)
    rows = ["text,label"] + [f"{WORDS[i % 2]} {WORDS[4 + i % 2]} {WORDS[6]},{i % 2}" for i in range(24)]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    code, message = run_cli(tmp_path, "train", "--model", str(tmp_path / "model"), "--task", "csv", "--train-file",
                            str(tmp_path / "train.csv"), "--epochs", "1", "--batch-size", "8", "--max-length", "16",
                            "--lora-rank", "2", "--output-dir", str(tmp_path / "run"))
    assert code == 0, message
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["params"]["kept"] > 0
    structure = json.loads((tmp_path / "run" / "structure.json").read_text())
    assert all(module["host"] for module in structure["modules"])  # the model's own names for the hosts
