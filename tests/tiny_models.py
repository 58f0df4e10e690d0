"""Tiny random models of many architectures, built offline from their configs (no downloads, no weights).

``tiny_config(model_type)`` passes one small size under every name the transformers configs use for it (hidden size,
layers, heads, feed-forward width, experts), so any type ``AutoConfig.for_model`` knows comes out a few thousand
parameters wide; ``tiny_model(model_type, head)`` builds it as a sequence classifier or a causal LM.
"""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

VOCAB = 128
SIZES = dict(
    vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    intermediate_size=64, head_dim=8, max_position_embeddings=128, pad_token_id=0, bos_token_id=1, eos_token_id=2,
    # encoder-decoders (T5, BART) and GPT-2-style names
    d_model=32, d_ff=64, d_kv=8, num_layers=2, num_decoder_layers=2, num_heads=4, encoder_layers=2, decoder_layers=2,
    encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,
    n_embd=32, n_layer=2, n_head=4, n_inner=64, n_positions=128,
    # mixtures of experts
    num_experts=4, num_local_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
    shared_expert_intermediate_size=32,
    # no dropout, so a training-mode forward is deterministic
    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, dropout=0.0, attention_dropout=0.0,
    resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, hidden_dropout=0.0, dropout_rate=0.0,
    use_cache=False, decoder_start_token_id=0, rotary_dim=4,
    # state-space layers of hybrids (Falcon-H1, Jamba, Bamba)
    mamba_d_ssm=32, mamba_n_heads=4, mamba_d_head=8, mamba_d_state=8, mamba_chunk_size=16,
)


def tiny_config(model_type: str, num_labels: int = 3):
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    if model_type not in CONFIG_MAPPING_NAMES:
        import pytest
        import transformers

        pytest.skip(f"transformers {transformers.__version__} has no model type {model_type!r}")
    sizes = dict(SIZES)
    while True:
        try:
            config = AutoConfig.for_model(model_type, **sizes)
            break
        except AttributeError as err:  # a size a config derives (Falcon's head_dim) cannot be set
            name = next((key for key in sizes if f"'{key}'" in str(err)), None)
            if name is None:
                raise
            sizes.pop(name)
    config.num_labels = num_labels
    return config


def tiny_model(model_type: str, head: str = "seq-cls", num_labels: int = 3) -> torch.nn.Module:
    """A tiny random ``model_type`` model: ``head`` "seq-cls" (sequence classification) or "causal-lm"."""
    torch.manual_seed(0)
    config = tiny_config(model_type, num_labels)
    auto = AutoModelForSequenceClassification if head == "seq-cls" else AutoModelForCausalLM
    return auto.from_config(config).eval()
