"""The multi-task trainer: length grouping per task, gradient checkpointing, per-task evaluation, idle units held."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_bert
from multitask.toy import TASKS, collate, dataset, train
from slaft import SlaftConfig
from slaft.multitask import MultiTaskConfig, MultiTaskDataset, MultiTaskSlaftModel, MultiTaskTrainer

pytestmark = pytest.mark.filterwarnings("ignore")


def test_the_trainer_groups_each_task_by_length_when_asked(tmp_path):
    from slaft.compat import training_arguments
    from slaft.multitask.data import TaskBatchSampler

    model = MultiTaskSlaftModel(tiny_bert(2), SlaftConfig(target_params=2000), TASKS[:2])
    args = training_arguments(str(tmp_path), per_device_train_batch_size=8, group_by_length=True,
                              report_to=[], remove_unused_columns=False, use_cpu=True)
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=MultiTaskDataset([dataset(32, 2, 0),
                               dataset(16, 3, 1)]), data_collator=collate, task_passes=[1, 2])
    loader = trainer.get_train_dataloader()
    sampler = next(s for s in (getattr(loader, "batch_sampler", None), getattr(loader, "base_dataloader", None))
                   if isinstance(s, TaskBatchSampler))
    assert sampler.lengths == [[8] * 32, [8] * 16] and sampler.passes == [1.0, 2.0] and len(loader) == 4 + 2 * 2



def test_gradient_checkpointing_still_trains_the_pool():
    model = MultiTaskSlaftModel(tiny_bert(2), SlaftConfig(), TASKS)
    model.gradient_checkpointing_enable()
    model.train()
    ids = torch.randint(5, 120, (4, 8), generator=torch.Generator().manual_seed(0))
    model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.tensor([0, 1, 2, 0]),
          task=torch.ones(4, dtype=torch.long)).loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if "slaft_modules" in n and "lora_B" in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


def test_per_task_evaluation_during_training_logs_each_tasks_metrics(tmp_path):
    from transformers import TrainingArguments

    from slaft.data import GLUE_TASKS, compute_metrics

    model = MultiTaskSlaftModel(tiny_bert(2), SlaftConfig(target_params=2000), TASKS[:2])
    train_sets = [dataset(32, 2, 0), dataset(32, 3, 1)]
    eval_sets = {"pos": dataset(16, 2, 3), "topic": dataset(16, 3, 4)}
    spec = GLUE_TASKS["sst2"]
    metrics = {name: (lambda p: compute_metrics(spec, p.predictions, p.label_ids)) for name in eval_sets}
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, num_train_epochs=2,
                             eval_strategy="epoch", save_strategy="no", report_to=[], remove_unused_columns=False,
                             disable_tqdm=True, use_cpu=True, learning_rate=1e-2)
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=MultiTaskDataset(train_sets),
                               eval_dataset=eval_sets, data_collator=collate, task_metrics=metrics)
    trainer.train()
    logged = {key for entry in trainer.state.log_history for key in entry}
    assert {"eval_pos_accuracy", "eval_topic_accuracy", "eval_pos_loss", "eval_topic_loss"} <= logged


def test_idle_entries_keep_their_values_and_adam_state_through_a_step():
    from slaft.training import IdleEntries

    def two_steps(hold: bool):
        param = torch.nn.Parameter(torch.ones(4))
        optimizer = torch.optim.AdamW([param], lr=0.1, weight_decay=0.0)
        param.grad = torch.tensor([1.0, 1.0, -1.0, 2.0])
        optimizer.step()
        before = param.detach().clone(), {k: v.clone() for k, v in optimizer.state[param].items()}
        param.grad = torch.tensor([0.5, 0.0, 0.2, 0.0])  # entries 1 and 3: another task's units
        idle = IdleEntries([param], optimizer) if hold else None
        optimizer.step()
        if idle is not None:
            idle.restore(optimizer)
        return before, param.detach(), optimizer.state[param]

    (values, state), after, new_state = two_steps(hold=True)
    assert torch.equal(after[[1, 3]], values[[1, 3]]) and not torch.equal(after[[0, 2]], values[[0, 2]])
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(new_state[key][[1, 3]], state[key][[1, 3]])
    (values, _), after, _ = two_steps(hold=False)
    assert not torch.equal(after[[1, 3]], values[[1, 3]])  # without it Adam's momentum moves them anyway


def test_the_trainer_holds_idle_units_when_asked(tmp_path, monkeypatch):
    from slaft import training

    held = []
    restore = training.IdleEntries.restore
    monkeypatch.setattr(training.IdleEntries, "restore",
                        lambda self, optimizer: (held.append(len(self.saved)), restore(self, optimizer)))
    config = MultiTaskConfig(pool_share=1.0, private_sites=["lora_q", "lora_v"], hold_idle_units=True)
    model = MultiTaskSlaftModel(tiny_bert(2), SlaftConfig(sites=["lora_q", "lora_v"], target_params=1000), TASKS,
                                config)
    train(model, [dataset(32, 2, 0), dataset(32, 3, 1), dataset(32, 1, 2)], tmp_path, epochs=2)
    assert held and max(held) > 0  # the steps after pruning began held the other tasks' units
    assert MultiTaskConfig.from_dict(config.to_dict()).hold_idle_units  # saved with the model's config
