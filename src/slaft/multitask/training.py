"""Multi-task training on the Hugging Face ``Trainer``: a callback drives the shared search, batches hold one task.

``MultiTaskCallback`` does for a ``MultiTaskSlaftModel`` what ``SlaftCallback`` does for one task (schedule, gate
gradients before the optimizer step, the decision with the optimizer's state kept, DDP-safe freezing) and adds each
task's mean training loss since the last log (``loss_<task>``) and the pool's size to the logs. ``MultiTaskTrainer``
trains on a ``TaskBatchSampler`` through the public ``get_train_dataloader``.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from transformers import TrainerCallback

from ..compat import groups_by_length
from ..training import SlaftTrainer, check_finite, scale_learning_rate, unwrap
from .data import TaskBatchSampler
from .model import MultiTaskSlaftModel


def unwrap_multitask(model) -> MultiTaskSlaftModel | None:
    return unwrap(model, MultiTaskSlaftModel)


class IdleEntries:
    """The entries of some parameters whose gradient is exactly zero, with their values and their optimizer state
    (every state tensor of the parameter's shape: Adam's moments), taken before an optimizer step and put back after
    it, so the step leaves them as they were."""

    def __init__(self, params, optimizer) -> None:
        self.saved = []
        for param in params:
            if param.grad is None:  # an optimizer skips these anyway
                continue
            idle = param.grad == 0
            if not bool(idle.any()):
                continue
            state = optimizer.state.get(param, {})
            moments = {key: value[idle].clone() for key, value in state.items()
                       if torch.is_tensor(value) and value.shape == param.shape}
            self.saved.append((param, idle, param.detach()[idle].clone(), moments))

    @torch.no_grad()
    def restore(self, optimizer) -> None:
        for param, idle, values, moments in self.saved:
            param[idle] = values
            state = optimizer.state.get(param, {})
            for key, value in moments.items():  # (before the first step there is no state: Adam's fresh moments
                state[key][idle] = value         # are zero where the gradient is)


class MultiTaskCallback(TrainerCallback):
    def __init__(self) -> None:
        self.idle: IdleEntries | None = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        mt = unwrap_multitask(model)
        if mt is not None and mt.total_steps is None:
            mt.total_steps = state.max_steps

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        mt = unwrap_multitask(model)
        if mt is not None:
            mt.begin_step(state.global_step)

    def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
        mt = unwrap_multitask(model)
        if mt is not None:
            mt.after_backward()
            if mt.multitask.hold_idle_units and optimizer is not None:
                self.idle = IdleEntries([p for p in mt.parameters() if p.requires_grad], optimizer)

    def on_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        if self.idle is not None and optimizer is not None:
            self.idle.restore(optimizer)
        self.idle = None

    def on_step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        mt = unwrap_multitask(model)
        if mt is None:
            return
        if mt.should_decide(state.global_step):
            if args.world_size > 1:
                mt.freeze()
            else:
                mt.discretize(optimizer)
            mt.decided_at_step = state.global_step
            scale_learning_rate(optimizer, kwargs.get("lr_scheduler"), mt.slaft_config.decided_lr_scale)
        if control.should_save or control.should_log:
            check_finite(mt, state.global_step, args.output_dir)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        mt = unwrap_multitask(model)
        if mt is not None and mt.frozen:
            mt.discretize()

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        mt = unwrap_multitask(model)
        if mt is None or logs is None:
            return
        stats = {f"loss_{task.name}": round(float(mt.loss_sums[i] / mt.loss_counts[i]), 4)
                 for i, task in enumerate(mt.tasks) if mt.loss_counts[i] > 0}
        mt.loss_sums.zero_()
        mt.loss_counts.zero_()
        stats["slaft/pool_params"] = float(mt.pool_params())
        logs.update(stats)
        if state.log_history:
            state.log_history[-1].update(stats)


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
        callbacks = list(kwargs.pop("callbacks", None) or [])
        if not any(isinstance(c, MultiTaskCallback) for c in callbacks):
            callbacks.append(MultiTaskCallback())
        self.sampling, self.temperature, self.task_metrics = sampling, temperature, dict(task_metrics or {})
        self.task_passes = task_passes
        super().__init__(*args, callbacks=callbacks, **kwargs)

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
