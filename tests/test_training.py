"""Training through the Hugging Face Trainer: groups, schedules, penalty, budget."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from transformers import Trainer, TrainingArguments

from slaft import SlaftConfig, get_slaft_model
from slaft.training import SlaftTrainer, optimizer_groups

from conftest import TINY_MODELS


def toy_dataset(n: int = 64, seed: int = 0) -> Dataset:
    """A learnable toy task: the label is the first token modulo 3."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 120, (n, 8), generator=generator)
    return Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": torch.ones_like(ids).tolist(),
                              "labels": (ids[:, 0] % 3).tolist()})


def args(tmp_path, steps: int, lr: float = 1e-2) -> TrainingArguments:
    return TrainingArguments(output_dir=str(tmp_path), max_steps=steps, per_device_train_batch_size=8,
                             learning_rate=lr, logging_steps=5, save_strategy="no", report_to=[],
                             disable_tqdm=True, use_cpu=True, seed=0)


def test_penalty_is_added_to_loss_and_grows_with_lambda(batch):
    labels = torch.tensor([0, 1, 2, 0])
    losses = []
    for weight in (0.0, 1e3):
        model = get_slaft_model(TINY_MODELS["bert"](), SlaftConfig(sparsity_weight=weight, search_steps=10,
                                                                   penalty_warmup_ratio=0.0, adapter_dropout=0.0))
        model.train()
        torch.manual_seed(0)
        losses.append(float(model(**batch, labels=labels).loss.detach()))
        expected = float(model.last_stats["expected_params"])
    assert losses[1] - losses[0] == pytest.approx(1e3 * expected / 1e6, rel=1e-3)


def test_parameter_groups_put_structure_at_its_own_rate():
    model = get_slaft_model(TINY_MODELS["llama"](), SlaftConfig(structure_lr=0.3))
    groups = optimizer_groups(model, weight_decay=0.01, structure_lr=0.3)
    structure = [g for g in groups if g.get("lr") == 0.3]
    assert len(structure) == 1 and structure[0]["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(names[id(p)].endswith(("log_alpha", "logits")) for p in structure[0]["params"])
    counted = sum(len(g["params"]) for g in groups)
    assert counted == sum(1 for p in model.parameters() if p.requires_grad)


def test_slaft_trainer_prunes_and_anneals(tmp_path):
    model = get_slaft_model(TINY_MODELS["bert"](), SlaftConfig(adapter_width=8, lora_rank=4, sparsity_weight=2e4,
                                                               structure_lr=0.2))
    before = float(model.expected_params().detach())
    trainer = SlaftTrainer(model=model, args=args(tmp_path, 40), train_dataset=toy_dataset())
    trainer.train()
    assert model.total_steps == 40 and model.schedule_step == 39
    assert model.temperature() < 0.15
    assert float(model.expected_params().detach()) < 0.5 * before
    assert model.structure().num_params < model.candidate.num_params
    logged = [entry for entry in trainer.state.log_history if "slaft/expected_params" in entry]
    assert logged and logged[-1]["slaft/expected_params"] < before


def test_stock_trainer_advances_schedule_without_help(tmp_path):
    model = get_slaft_model(TINY_MODELS["bert"](), SlaftConfig(search_steps=10))
    Trainer(model=model, args=args(tmp_path, 6), train_dataset=toy_dataset()).train()
    assert model.schedule_step == 6  # forward passes counted the steps
    assert model.temperature() < 1.0


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_budget_mode_lands_within_five_percent(arch, tmp_path):
    candidate = get_slaft_model(TINY_MODELS[arch](), SlaftConfig(adapter_width=8, lora_rank=4)).candidate.num_params
    target = int(0.3 * candidate)
    model = get_slaft_model(TINY_MODELS[arch](), SlaftConfig(adapter_width=8, lora_rank=4, target_params=target,
                                                             structure_lr=0.2, penalty_warmup_ratio=0.3))
    trainer = SlaftTrainer(model=model, args=args(tmp_path, 60), train_dataset=toy_dataset(128))
    trainer.train()
    assert abs(float(model.expected_params().detach()) - target) / target < 0.25  # the Lagrangian pulled E[params] near T
    structure = model.discretize()
    assert abs(structure.num_params - target) / target <= 0.05, (structure.num_params, target)


def test_budget_is_filled_even_when_the_search_closed_every_gate():
    """A short or signal-poor search can shut every gate (seen on CoLA); a budget still means that many params."""
    base = TINY_MODELS["bert"]()
    model = get_slaft_model(base, SlaftConfig(adapter_width=8, lora_rank=4, target_params=2000))
    batch = {"input_ids": torch.randint(0, 100, (2, 6)), "attention_mask": torch.ones(2, 6, dtype=torch.long)}
    with torch.no_grad():
        for i, (_, _, module) in enumerate(model.slaft_modules()):
            module.module_gate.log_alpha.fill_(-8.0 - i)  # every gate shut, some more firmly than others
            module.unit_gate.log_alpha.copy_(-torch.arange(module.units, dtype=torch.float))
    model.eval()
    gated = model(**batch).logits
    structure = model.discretize()
    assert 0.95 * 2000 <= structure.num_params <= 2000
    assert {m.layer for m in structure.modules} == {0}  # the least firmly shut modules (layer 0) come first
    torch.testing.assert_close(model(**batch).logits, gated)  # units taken back start at zero: same function


def test_budget_as_fraction_of_backbone():
    model = get_slaft_model(TINY_MODELS["bert"](), SlaftConfig(target_params=0.01))
    assert model.target == round(0.01 * model.backbone_params)


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_regression_head_trains(arch, tmp_path):
    data = toy_dataset(32).map(lambda row: {"labels": float(row["labels"]) / 2})
    model = get_slaft_model(TINY_MODELS[arch](num_labels=1), SlaftConfig(adapter_width=4, lora_rank=2))
    trainer = SlaftTrainer(model=model, args=args(tmp_path, 4), train_dataset=data)
    trainer.train()
    assert model.config.problem_type == "regression"
    assert model.structure().num_params > 0
