"""Multi-task training on the Hugging Face ``Trainer``: batches hold one task, evaluation scores each task.

The search is driven by ``SlaftCallback``, as for one task. ``MultiTaskTrainer`` adds what is the task axis's own:
it trains on a ``TaskBatchSampler`` through the public ``get_train_dataloader``, and evaluates a dict of tasks with
each task's structure, head and metrics.
"""

from __future__ import annotations

from torch.utils.data import DataLoader

from ..compat import groups_by_length
from ..training import SlaftTrainer, unwrap
from .data import TaskBatchSampler
from .model import MultiTaskSlaftModel


def unwrap_multitask(model) -> MultiTaskSlaftModel | None:
    return unwrap(model, MultiTaskSlaftModel)


def example_lengths(dataset, length_column: str) -> list[int]:
    """Each example's length: the dataset's length column where it has one (as the stock Trainer reads it), else the
    length of its input ids."""
    if length_column in dataset.column_names:
        return [int(length) for length in dataset[length_column]]
    return [len(ids) for ids in dataset["input_ids"]]


class MultiTaskTrainer(SlaftTrainer):
    """A ``SlaftTrainer`` for a ``MultiTaskSlaftModel``: one-task batches drawn by ``sampling`` (slaft's parameter
    groups and checkpoints of the multi-task directory come from ``SlaftTrainer``).

    Per-task evaluation during training: pass ``eval_dataset`` as a dict {task: tokenized split} and
    ``task_metrics`` as {task: compute_metrics function}; each evaluation then scores every task with its own head
    and structure and logs ``eval_<task>_<metric>``.
    """

    def __init__(self, *args, sampling: str = "proportional", temperature: float = 2.0,
                 task_metrics: dict | None = None, task_passes: list[float] | None = None, **kwargs):
        self.sampling, self.temperature, self.task_metrics = sampling, temperature, dict(task_metrics or {})
        self.task_passes = task_passes
        super().__init__(*args, **kwargs)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        """The Trainer evaluates a dict of eval datasets one name at a time: a task's name selects its structure,
        head and metrics first."""
        mt = self.slaft_model()
        if isinstance(eval_dataset, str) and mt is not None and eval_dataset in [t.name for t in mt.tasks]:
            mt.set_task(eval_dataset)
            self.compute_metrics = self.task_metrics.get(eval_dataset)
        return super().evaluate(eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)

    def slaft_model(self):
        return unwrap_multitask(self.model)

    def get_train_dataloader(self) -> DataLoader:
        """One-task batches (``TaskBatchSampler``); with ``group_by_length``, each task's batches hold examples of
        similar lengths, as the stock Trainer's length grouping gives a single task."""
        dataset = self.train_dataset
        group = self.args.gradient_accumulation_steps * max(1, self.args.world_size)
        lengths = [example_lengths(d, self.args.length_column_name) for d in dataset.datasets] \
            if groups_by_length(self.args) else None
        sampler = TaskBatchSampler([len(d) for d in dataset.datasets], self.args.per_device_train_batch_size,
                                   sampling=self.sampling, temperature=self.temperature, group=group,
                                   seed=self.args.seed, passes=self.task_passes, lengths=lengths)
        loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=self.data_collator,
                            num_workers=self.args.dataloader_num_workers, pin_memory=self.args.dataloader_pin_memory)
        return self.accelerator.prepare(loader)
