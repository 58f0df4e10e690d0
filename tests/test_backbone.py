"""Memory options: gradient checkpointing reaches the adapters (transformers' reentrant default would silently train
nothing inside the checkpointed blocks), and a bfloat16 backbone trains float32 adapters."""

from __future__ import annotations

import pytest
import torch

from slaft import SlaftConfig, get_slaft_model

from conftest import tiny_bert, tiny_llama

CONFIG = dict(lora_rank=4, rank_block=2, adapter_width=8, width_block=4)


def gradients(model_fn, batch, *, checkpointing=None, dtype=torch.float32):
    model = get_slaft_model(model_fn().to(dtype), SlaftConfig(**CONFIG))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name or "up" in name:
                param.normal_(0, 0.1)  # adapters that have moved from their zero start
    if checkpointing is not None:
        model.gradient_checkpointing_enable(checkpointing or None)
    model.train()
    loss = model(**batch, labels=torch.tensor([0, 1, 2, 0])).loss
    loss.backward()
    return model, {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("model_fn", [tiny_bert, tiny_llama])
@pytest.mark.parametrize("kwargs", [{}, {"use_reentrant": True}, {"use_reentrant": False}])
def test_gradient_checkpointing_gives_the_adapters_the_same_gradients(model_fn, kwargs, batch):
    _, plain = gradients(model_fn, batch)
    _, checkpointed = gradients(model_fn, batch, checkpointing=kwargs)
    assert set(checkpointed) == set(plain) and any("slaft_modules" in n for n in plain)
    for name, grad in plain.items():
        assert torch.allclose(checkpointed[name], grad, atol=1e-6), name


def test_a_bfloat16_backbone_trains_float32_adapters(batch):
    model, grads = gradients(tiny_llama, batch, dtype=torch.bfloat16)
    adapters = {n: p for n, p in model.named_parameters() if "slaft_modules" in n}
    assert adapters and all(p.dtype == torch.float32 for p in adapters.values())
    assert all(torch.isfinite(grads[n]).all() for n in adapters if n in grads)
    assert any(grads[n].abs().sum() > 0 for n in adapters if n in grads)
    assert model.base_model.model.layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16
