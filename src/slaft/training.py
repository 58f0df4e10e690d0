"""Training on the Hugging Face ``Trainer``.

The sparsity term already sits in ``outputs.loss`` (see ``SlaftModel.forward``), so the stock ``Trainer`` works, and
mixed precision, gradient accumulation, checkpoints and DDP/FSDP/DeepSpeed launches come from transformers and
accelerate unchanged. ``SlaftTrainer`` adds what the stock one cannot know:

* two parameter groups: adapter weights and the head at ``learning_rate`` with weight decay, structure parameters
  (gate log-alphas, choice logits, Lagrange multipliers) at ``SlaftConfig.structure_lr`` without weight decay;
* ``SlaftCallback``: the exact optimizer step and schedule length for the temperature and penalty schedules, and
  the expected size, temperature and penalty in the logs;
* checkpoints that hold only the adapter directory, not the frozen backbone.
"""

from __future__ import annotations

import os

import torch
from transformers import Trainer, TrainerCallback

from .io import load_adapter_weights
from .model import NonFiniteError, SlaftModel


def unwrap(model) -> SlaftModel | None:
    """The SlaftModel inside DDP/FSDP/DeepSpeed/compile wrappers, or None."""
    seen = 0
    while not isinstance(model, SlaftModel) and seen < 8:
        model = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if model is None:
            return None
        seen += 1
    return model if isinstance(model, SlaftModel) else None


class SlaftCallback(TrainerCallback):
    """Drives slaft's schedules from the Trainer's step counter and logs the structure's state."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        slaft = unwrap(model)
        if slaft is not None:
            slaft.set_schedule(state.global_step, state.max_steps)

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        slaft = unwrap(model)
        if slaft is not None:
            slaft.set_schedule(state.global_step, state.max_steps)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        """Stop on a non-finite trained tensor before the Trainer can checkpoint it: the last good one survives."""
        slaft = unwrap(model)
        if slaft is None:
            return
        for name, param in slaft.named_parameters():
            if param.requires_grad and not torch.isfinite(param).all():
                raise NonFiniteError(
                    f"{name} became non-finite (NaN/inf) at step {state.global_step}. The last good checkpoint is "
                    f"kept in {args.output_dir}; lower the learning rate (or --structure-lr for gates) and resume."
                )

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        slaft = unwrap(model)
        if slaft is not None and logs is not None and slaft.last_stats and not slaft.discrete:
            stats = {f"slaft/{k}": round(v, 6) for k, v in slaft.last_stats.items()}
            logs.update(stats)
            if state.log_history:  # the Trainer recorded its entry before calling us
                state.log_history[-1].update(stats)


def optimizer_groups(model: SlaftModel, weight_decay: float, structure_lr: float) -> list[dict]:
    structure = [p for p in model.structure_parameters() if p.requires_grad]
    weights = [p for p in model.weight_parameters() if p.requires_grad]
    decay = [p for p in weights if p.ndim >= 2]
    no_decay = [p for p in weights if p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
        {"params": structure, "weight_decay": 0.0, "lr": structure_lr},
    ]
    return [g for g in groups if g["params"]]


class SlaftTrainer(Trainer):
    """A ``transformers.Trainer`` that knows slaft's parameter groups and schedules."""

    def __init__(self, *args, **kwargs):
        callbacks = list(kwargs.pop("callbacks", None) or [])
        if not any(isinstance(c, SlaftCallback) for c in callbacks):
            callbacks.append(SlaftCallback())
        super().__init__(*args, callbacks=callbacks, **kwargs)

    def create_optimizer(self):
        slaft = unwrap(self.model)
        if self.optimizer is None and slaft is not None:
            groups = optimizer_groups(slaft, self.args.weight_decay, slaft.slaft_config.structure_lr)
            optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, slaft)
            self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return super().create_optimizer()

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        """The usual schedule for weights; structure parameters keep a constant rate after warm-up, so gates can
        still move (and close) late in the search instead of freezing as the weights' rate decays to zero."""
        scheduler = super().create_scheduler(num_training_steps, optimizer)
        slaft = unwrap(self.model)
        lambdas = getattr(scheduler, "lr_lambdas", None)
        if slaft is None or lambdas is None:
            return scheduler
        structure = {id(p) for p in slaft.structure_parameters()}
        warmup = max(self.args.get_warmup_steps(num_training_steps), 1)
        for index, group in enumerate(scheduler.optimizer.param_groups):
            if group["params"] and all(id(p) in structure for p in group["params"]):
                lambdas[index] = lambda step, warmup=warmup: min(1.0, (step + 1) / warmup)
        return scheduler

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        """Resume: a slaft checkpoint holds the adapter directory, not full model weights."""
        slaft = unwrap(model or self.model)
        if slaft is None:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        load_adapter_weights(slaft, resume_from_checkpoint)

    def _save(self, output_dir: str | None = None, state_dict=None):
        slaft = unwrap(self.model)
        if slaft is None:
            return super()._save(output_dir, state_dict)
        output_dir = output_dir or self.args.output_dir
        os.makedirs(output_dir, exist_ok=True)
        slaft.save_pretrained(output_dir)
        torch.save(self.args, os.path.join(output_dir, "training_args.bin"))
