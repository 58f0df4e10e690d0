"""Exports a user can hand to plain transformers: class names in the config, a model card, and a clear word about
what plain transformers cannot load."""

from __future__ import annotations

import json

import pytest
import torch

from slaft import SlaftConfig, get_slaft_model
from slaft.export import export
from slaft.inference import load_directory
from slaft.io import AdapterLoadError

from conftest import tiny_bert
from test_invariants import randomize

LABELS = {0: "negative", 1: "positive"}


def saved_run(tiny_model_dir, tmp_path, sites) -> str:
    base = tiny_bert(num_labels=2)
    base.config.id2label, base.config.label2id = LABELS, {v: k for k, v in LABELS.items()}
    config = SlaftConfig(sites=sites, adapter_width=8, width_block=4, lora_rank=4, rank_block=2,
                         base_model_name_or_path=str(tiny_model_dir))
    model = get_slaft_model(base, config)
    randomize(model, close_one_module=False)
    with torch.no_grad():  # a trained head, so that exports must carry it
        for param in model.base_model.bert.pooler.parameters():
            param.add_(0.5)
        model.base_model.classifier.weight.mul_(3.0)
    model.discretize()
    model.save_pretrained(tmp_path / "adapter", extra={"task": "csv", "scores": {"validation": {"accuracy": 0.75}}})
    return str(tmp_path / "adapter")


def test_a_fully_linear_export_is_plain_transformers_with_class_names(tiny_model_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification

    adapter = saved_run(tiny_model_dir, tmp_path, ("lora_q", "lora_v"))
    model, _, payload = load_directory(adapter)
    assert model.config.id2label == LABELS and payload["id2label"] == {"0": "negative", "1": "positive"}
    ids = torch.tensor([[2, 5, 6, 3]])
    with torch.no_grad():
        expected = model(input_ids=ids).logits
    report = export(adapter, tmp_path / "merged", merge=True)
    assert "kept as modules: none" in report
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged")
    assert plain.config.id2label == LABELS
    with torch.no_grad():
        torch.testing.assert_close(plain(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-4)
    card = (tmp_path / "merged" / "README.md").read_text()
    assert "plain transformers checkpoint" in card and "`negative`, `positive`" in card and "accuracy 0.7500" in card


def test_a_merged_export_that_keeps_modules_says_plain_transformers_loads_the_folded_part_only(tiny_model_dir,
                                                                                               tmp_path):
    adapter = saved_run(tiny_model_dir, tmp_path, ("ffn_adapter", "lora_v"))
    report = export(adapter, tmp_path / "merged", merge=True)
    assert "ffn_adapter" in report and "folded part only" in report
    card = (tmp_path / "merged" / "README.md").read_text()
    assert "the folded part only" in card and "load_directory" in card
    model, _, payload = load_directory(tmp_path / "merged")  # slaft loads all of it
    assert payload["merged"] and [s for _, s, _ in model.slaft_modules()] == ["ffn_adapter"] * 2


def test_a_compact_export_reloads(tiny_model_dir, tmp_path):
    adapter = saved_run(tiny_model_dir, tmp_path, ("ffn_adapter", "lora_q"))
    assert "compact adapter" in export(adapter, tmp_path / "compact")
    meta = json.loads((tmp_path / "compact" / "slaft_config.json").read_text())
    assert meta["phase"] == "discrete" and meta["task"] == "csv"
    assert "Learned structure" in (tmp_path / "compact" / "README.md").read_text()
    export(adapter, tmp_path / "merged", merge=True)
    with pytest.raises(AdapterLoadError, match="already a plain model"):
        export(_plain(tmp_path), tmp_path / "x")


def _plain(tmp_path):
    tiny_bert(num_labels=2).save_pretrained(tmp_path / "plain")
    return tmp_path / "plain"


def test_a_lora_only_structure_exports_to_peft_and_loads_with_equal_outputs(tiny_model_dir, tmp_path):
    from peft import PeftModel

    adapter = saved_run(tiny_model_dir, tmp_path, ("lora_q", "lora_v", "lora_ffn_in"))
    model, _, _ = load_directory(adapter)
    ids = torch.tensor([[2, 5, 6, 7, 3], [2, 8, 9, 3, 0]])
    with torch.no_grad():
        expected = model(input_ids=ids).logits
    assert "peft LoRA adapter" in export(adapter, tmp_path / "peft", format="peft")
    config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and len(set(config["rank_pattern"].values())) >= 1
    loaded = PeftModel.from_pretrained(tiny_bert(num_labels=2), tmp_path / "peft").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-4)


def test_a_structure_with_bottlenecks_cannot_go_to_peft_and_says_which(tiny_model_dir, tmp_path):
    from slaft.peft_export import PeftExportError

    adapter = saved_run(tiny_model_dir, tmp_path, ("ffn_adapter", "lora_v"))
    with pytest.raises(PeftExportError, match="ffn_adapter"):
        export(adapter, tmp_path / "peft", format="peft")
