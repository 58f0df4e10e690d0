"""The structure search inside one Trainer run: the knob, not the run length, sets the size; budgets are met
without fragments; deciding the structure changes neither the function nor what the optimizer learned."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from transformers import Trainer, TrainingArguments

from slaft import SlaftCallback, SlaftConfig, SlaftTrainer, get_slaft_model
from slaft.training import optimizer_groups

from conftest import TINY_MODELS

SPACE = dict(adapter_width=8, width_block=4, lora_rank=4, rank_block=2)


def toy_dataset(n: int = 96, seed: int = 0) -> Dataset:
    """A learnable toy task: the label is the first token modulo 3."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 120, (n, 8), generator=generator)
    return Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": torch.ones_like(ids).tolist(),
                              "labels": (ids[:, 0] % 3).tolist()})


def arguments(tmp_path, steps: int, lr: float = 1e-2, **extra) -> TrainingArguments:
    settings = dict(output_dir=str(tmp_path), max_steps=steps, per_device_train_batch_size=8, learning_rate=lr,
                    logging_steps=5, save_strategy="no", report_to=[], disable_tqdm=True, use_cpu=True, seed=0)
    return TrainingArguments(**{**settings, **extra})


def train(tmp_path, config: SlaftConfig, steps: int, arch: str = "bert", data: Dataset | None = None,
          num_labels: int = 3):
    model = get_slaft_model(TINY_MODELS[arch](num_labels), config)
    trainer = SlaftTrainer(model=model, args=arguments(tmp_path, steps), train_dataset=data or toy_dataset())
    trainer.train()
    return model, trainer


def test_the_structure_is_decided_inside_the_run_and_trains_on(tmp_path):
    model, trainer = train(tmp_path, SlaftConfig(**SPACE, sparsity_weight=1.0), steps=40)
    assert model.discrete and model.search is None  # decided at search_end = 50%
    kept = model.structure().num_params
    assert 0 < kept < model.candidate.num_params
    logged = [e["slaft/kept_params"] for e in trainer.state.log_history if "slaft/kept_params" in e]
    assert logged[0] == model.candidate.num_params and logged[-1] == kept  # full space first, then the decision


def small_bert():
    """A model with enough units that one unit more or less is a small part of a structure."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(
        vocab_size=120, hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=128,
        num_labels=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))


@pytest.mark.parametrize("allocator", ["importance", "gates"])
def test_size_is_set_by_the_knob_not_by_the_run_length(tmp_path, allocator):
    """The same λ with twice the steps keeps the same size within 20 percent (mean of six seeds: one run's size
    varies with its seed by about a quarter, so a mean of three moves by some 15 percent on its own)."""
    config = SlaftConfig(sparsity_weight=1.0, adapter_width=16, width_block=4, lora_rank=8, rank_block=2,
                         allocator=allocator)
    mean_size = {}
    for steps in (40, 80):
        sizes = []
        for seed in range(6):
            model = get_slaft_model(small_bert(), config)
            args = arguments(tmp_path / f"{steps}-{seed}", steps, lr=3e-3)
            args.seed = seed
            SlaftTrainer(model=model, args=args, train_dataset=toy_dataset(320)).train()
            sizes.append(model.structure().num_params)
        mean_size[steps] = sum(sizes) / len(sizes)
    assert 0 < mean_size[40] < model.candidate.num_params
    assert abs(mean_size[80] - mean_size[40]) <= 0.2 * mean_size[40], mean_size


def test_kept_size_falls_monotonically_as_the_sparsity_weight_rises(tmp_path):
    sizes = [train(tmp_path / str(w), SlaftConfig(**SPACE, sparsity_weight=w), steps=30)[0].structure().num_params
             for w in (0.0, 0.5, 1.0, 2.0, 8.0)]
    assert sizes[0] > sizes[-1] and sizes == sorted(sizes, reverse=True), sizes


@pytest.mark.parametrize("arch,allocator", [("bert", "importance"), ("llama", "importance"), ("bert", "gates")])
@pytest.mark.parametrize("fraction", [0.1, 0.3])
def test_budget_is_filled_to_within_one_unit_without_fragments(tmp_path, arch, allocator, fraction):
    candidate = get_slaft_model(TINY_MODELS[arch](), SlaftConfig(**SPACE)).candidate.num_params
    target = int(fraction * candidate)
    model, _ = train(tmp_path, SlaftConfig(**SPACE, target_params=target, allocator=allocator), steps=30, arch=arch)
    structure = model.structure()
    smallest_unit = min(SPACE["rank_block"] * (m.in_features + m.out_features)
                        for m in model.candidate.modules if m.kind == "lora")
    assert target - smallest_unit < structure.num_params <= target, (structure.num_params, target)
    for module in structure.modules:  # whole blocks only: no rank-1 or width-1 fragments
        assert module.width % (SPACE["rank_block"] if module.kind == "lora" else SPACE["width_block"]) == 0


@pytest.mark.parametrize("allocator", ["importance", "gates"])
def test_budget_lands_within_two_percent_under_when_units_are_small(tmp_path, allocator):
    """With units small against the budget (as LoRA rank blocks are against MiniLM budgets), within 2 percent."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    base = BertForSequenceClassification(BertConfig(vocab_size=120, hidden_size=64, num_hidden_layers=3,
                                                    num_attention_heads=4, intermediate_size=128, num_labels=3))
    config = SlaftConfig(lora_rank=8, rank_block=1, sites=("lora_q", "lora_k", "lora_v", "lora_o", "lora_ffn_in",
                                                           "lora_ffn_out"), allocator=allocator)
    target = int(0.45 * get_slaft_model(base, config).candidate.num_params)
    base = BertForSequenceClassification(base.config)
    model = get_slaft_model(base, SlaftConfig(**{**config.to_dict(), "target_params": target,
                                                 "base_model_name_or_path": None}))
    SlaftTrainer(model=model, args=arguments(tmp_path, 20), train_dataset=toy_dataset()).train()
    assert 0.98 * target <= model.structure().num_params <= target


def test_block_share_spreads_a_small_budget_over_every_block(tmp_path):
    """With block_share 1 each block gets its share of the budget up to less than one unit (2 rank components of a
    LoRA); without it, this run puts four fifths of the budget in block 0."""
    candidate = get_slaft_model(TINY_MODELS["bert"](), SlaftConfig(**SPACE)).candidate
    target = int(0.15 * candidate.num_params)
    model, _ = train(tmp_path, SlaftConfig(**SPACE, target_params=target, block_share=1.0), steps=30)
    structure = model.structure()
    unit = min(SPACE["rank_block"] * (m.in_features + m.out_features) for m in candidate.modules if m.kind == "lora")
    for layer in range(candidate.num_layers):
        spent = sum(m.num_params for m in structure.modules if m.layer == layer)
        assert spent > target / candidate.num_layers - unit, (layer, spent, target)
    assert structure.num_params <= target


def test_deciding_keeps_the_optimizer_state_of_kept_weights(tmp_path):
    model = get_slaft_model(TINY_MODELS["bert"](), SlaftConfig(**SPACE, target_params=1500, total_steps=20))
    optimizer = torch.optim.AdamW([g for g in optimizer_groups(model, 0.0, 0.05)], lr=1e-2)
    data = toy_dataset(8)
    batch = {k: torch.tensor(v) for k, v in data[:8].items()}
    model.train()
    for step in range(12):
        model.search.begin_step(step)
        model(**batch).loss.backward()
        model.search.after_backward()
        optimizer.step()
        optimizer.zero_grad()
    masks = {key: keep[0] for key, keep in model.search.module_masks().items()}
    expected = {}
    for layer, site, module in model.slaft_modules():
        keep = masks[(layer, site)]
        if keep.any():
            param = module.sliced_parameters()[0][0]
            expected[(layer, site)] = optimizer.state[param]["exp_avg_sq"][keep].clone()
    model.discretize(optimizer)
    for layer, site, module in model.slaft_modules():
        param = module.sliced_parameters()[0][0]
        torch.testing.assert_close(optimizer.state[param]["exp_avg_sq"], expected[(layer, site)])
    live = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert live == {id(p) for p in model.parameters() if p.requires_grad}  # removed tensors left the optimizer
    model(**batch).loss.backward()
    optimizer.step()  # and it steps on


def test_decided_lr_scale_raises_the_rate_from_the_decision_on_and_keeps_the_schedule(tmp_path):
    rates = {}
    for scale in (1.0, 3.0):
        model = get_slaft_model(TINY_MODELS["bert"](), SlaftConfig(**SPACE, target_params=1500,
                                                                   decided_lr_scale=scale))
        trainer = SlaftTrainer(model=model, args=arguments(tmp_path / str(scale), 20, logging_steps=1,
                                                           warmup_steps=4), train_dataset=toy_dataset())
        trainer.train()
        rates[scale] = {e["step"]: e["learning_rate"] for e in trainer.state.log_history if "learning_rate" in e}
        decided = model.decided_at_step
    assert decided == 10 and sorted(rates[1.0]) == list(range(1, 21))
    for step, rate in rates[1.0].items():
        factor = 3.0 if step > decided else 1.0  # each entry is the rate the step trained at
        assert rates[3.0][step] == pytest.approx(factor * rate, rel=1e-6), step


def test_stock_trainer_with_the_callback_searches(tmp_path):
    model = get_slaft_model(TINY_MODELS["bert"](), SlaftConfig(**SPACE, target_params=1500))
    Trainer(model=model, args=arguments(tmp_path, 20), train_dataset=toy_dataset(),
            callbacks=[SlaftCallback()]).train()
    assert model.discrete and model.structure().num_params <= 1500


def test_searching_without_the_callback_warns(batch):
    model = get_slaft_model(TINY_MODELS["bert"](), SlaftConfig(**SPACE)).train()
    with pytest.warns(UserWarning, match="SlaftCallback"):
        model(**batch)


def test_parameter_groups_put_structure_logits_at_their_own_rate():
    model = get_slaft_model(TINY_MODELS["llama"](), SlaftConfig(**SPACE, allocator="gates", structure_lr=0.3))
    groups = optimizer_groups(model, weight_decay=0.01, structure_lr=0.3)
    assert len(groups) == 3 and groups[2]["lr"] == 0.3 and groups[2]["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    assert groups[2]["params"] and all(names[id(p)].endswith(("log_alpha", "logits")) for p in groups[2]["params"])
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_regression_head_trains(arch, tmp_path):
    data = toy_dataset(32).map(lambda row: {"labels": float(row["labels"]) / 2})
    model, _ = train(tmp_path, SlaftConfig(**SPACE, target_params=800), steps=6, arch=arch, data=data,
                     num_labels=1)
    assert model.config.problem_type == "regression"
    assert 0 < model.structure().num_params <= 800


def test_budget_as_fraction_of_backbone():
    model = get_slaft_model(TINY_MODELS["bert"](), SlaftConfig(**SPACE, target_params=0.01))
    assert model.target == round(0.01 * model.backbone_params)


def test_asking_for_the_structure_before_training_fixes_nothing(tmp_path):
    model = get_slaft_model(TINY_MODELS["bert"](), SlaftConfig(**SPACE, sparsity_weight=1.0))
    print(model.parameter_summary(), model.structure())  # as the README's quick start does
    assert not model.search.started
    SlaftTrainer(model=model, args=arguments(tmp_path, 30), train_dataset=toy_dataset()).train()
    assert 0 < model.structure().num_params < model.candidate.num_params  # λ still decided the size


def test_gradient_accumulation_gives_the_updates_of_the_whole_batch(tmp_path):
    """Two micro-batches of 8 accumulate to the step one batch of 16 takes (the Trainer must not treat slaft's mean
    loss as a sum over num_items_in_batch)."""
    data = toy_dataset(16)
    config = SlaftConfig(**SPACE, activations=("relu",), target_params=1500)
    states = []
    for per_device, accumulate in ((16, 1), (8, 2)):
        model = get_slaft_model(TINY_MODELS["bert"](), config)
        args = arguments(tmp_path / str(accumulate), 8, per_device_train_batch_size=per_device,
                         gradient_accumulation_steps=accumulate)
        SlaftTrainer(model=model, args=args, train_dataset=data).train()
        states.append({n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad})
    assert states[0].keys() == states[1].keys()
    for name in states[0]:
        torch.testing.assert_close(states[1][name], states[0][name], atol=1e-5, rtol=0)


@pytest.mark.parametrize("grouped", [True, False])
def test_group_by_length_batches_examples_of_similar_length(tmp_path, grouped):
    from slaft.pipeline import TrainJob, training_arguments

    lengths = torch.randint(2, 40, (960,), generator=torch.Generator().manual_seed(0)).tolist()
    data = Dataset.from_dict({"input_ids": [[5] * n for n in lengths], "labels": [0] * len(lengths)})
    job = TrainJob(batch_size=8, group_by_length=grouped, output_dir=str(tmp_path))
    model = get_slaft_model(TINY_MODELS["bert"](), SlaftConfig(**SPACE))
    trainer = SlaftTrainer(model=model, args=training_arguments(job, tmp_path), train_dataset=data)
    order = list(trainer._get_train_sampler())
    assert sorted(order) == list(range(len(lengths)))  # every example once, grouped or not
    spread = [max(lengths[i] for i in batch) - min(lengths[i] for i in batch)
              for batch in (order[k:k + 8] for k in range(0, len(order), 8))]
    # grouped, a batch pads to within a few tokens of its shortest text; shuffled, to tens of tokens
    assert (sum(spread) / len(spread) < 6) == grouped
