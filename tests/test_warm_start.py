"""Warm start from a peft LoRA adapter: before training, slaft computes what the peft model computes, whatever the
adapter's rank and alpha; adapters that cannot fit are clear errors."""

from __future__ import annotations

import pytest
import torch

from slaft import SlaftConfig, get_slaft_model
from slaft.warm_start import WarmStartError, init_from_peft

from conftest import tiny_bert

peft = pytest.importorskip("peft", reason="peft is a test dependency")


def peft_adapter(tmp_path, **lora):
    from peft import LoraConfig, TaskType, get_peft_model

    model = get_peft_model(tiny_bert(), LoraConfig(task_type=TaskType.SEQ_CLS, target_modules=["query", "value"],
                                                   **lora))
    torch.manual_seed(3)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name or "classifier" in name:
                param.normal_(0, 0.5)  # a trained-looking adapter and head
    model.save_pretrained(tmp_path / "peft")
    return model.eval(), tmp_path / "peft"


@pytest.mark.parametrize("lora", [dict(r=4, lora_alpha=8), dict(r=2, lora_alpha=16, use_rslora=True),
                                  dict(r=4, lora_alpha=8, alpha_pattern={"value": 2})])
def test_a_warm_started_model_computes_what_the_peft_model_computes(tmp_path, batch, lora):
    reference, directory = peft_adapter(tmp_path, **lora)
    model = get_slaft_model(tiny_bert(), SlaftConfig(lora_rank=8))
    before = model.eval()(**batch).logits
    report = init_from_peft(model, directory)
    assert "4 LoRA module(s) and 2 head tensor(s)" in report
    after = model(**batch).logits
    expected = reference(**batch).logits
    assert torch.allclose(after, expected, atol=1e-5) and not torch.allclose(before, expected, atol=1e-3)


def test_adapters_that_do_not_fit_are_clear_errors(tmp_path):
    _, directory = peft_adapter(tmp_path, r=8, lora_alpha=8)
    with pytest.raises(WarmStartError, match="--lora-rank 8"):
        init_from_peft(get_slaft_model(tiny_bert(), SlaftConfig(lora_rank=4, rank_block=2)), directory)
    with pytest.raises(WarmStartError, match="not in this slaft candidate space"):
        init_from_peft(get_slaft_model(tiny_bert(), SlaftConfig(sites=["lora_k"])), directory)
    with pytest.raises(WarmStartError, match="adapter_config.json"):
        init_from_peft(get_slaft_model(tiny_bert(), SlaftConfig()), tmp_path)


def test_without_peft_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    import sys

    _, directory = peft_adapter(tmp_path, r=2, lora_alpha=4)
    monkeypatch.setitem(sys.modules, "peft", None)  # import peft now raises ImportError
    with pytest.raises(WarmStartError, match="pip install"):
        init_from_peft(get_slaft_model(tiny_bert(), SlaftConfig(lora_rank=4)), directory)
