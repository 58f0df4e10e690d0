"""Tiny multi-task data and a short training loop shared by the multi-task tests."""

from __future__ import annotations

import torch
from datasets import Dataset

from slaft.multitask import MultiTaskDataset, MultiTaskTrainer, TaskInfo

TASKS = [TaskInfo("pos", 2, ("no", "yes")), TaskInfo("topic", 3), TaskInfo("score", 1)]


def dataset(n: int, num_labels: int, seed: int) -> Dataset:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 120, (n, 8), generator=generator)
    labels = torch.randint(0, num_labels, (n,)).tolist() if num_labels > 1 else torch.rand(n).tolist()
    return Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": [[1] * 8] * n, "labels": labels})


def collate(features: list[dict]) -> dict[str, torch.Tensor]:
    return {key: torch.tensor([f[key] for f in features]) for key in features[0]}


def train(model, datasets, tmp_path, task_ids=None, epochs: int = 3):
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path / "trainer"), per_device_train_batch_size=8,
                             num_train_epochs=epochs, learning_rate=1e-2, logging_steps=4, save_strategy="no",
                             report_to=[], remove_unused_columns=False, disable_tqdm=True, use_cpu=True)
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=MultiTaskDataset(datasets, task_ids),
                               data_collator=collate)
    trainer.train()
    return trainer


def outputs(model, probe) -> dict[str, torch.Tensor]:
    model.eval()
    out = {}
    with torch.no_grad():
        for task in model.tasks:
            model.set_task(task.name)
            out[task.name] = model(**probe).logits
    return out
