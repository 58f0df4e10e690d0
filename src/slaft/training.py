"""Training on the Hugging Face ``Trainer``: one run searches the structure, decides it, and trains what is left.

``SlaftCallback`` drives the search from the Trainer's documented callback events: at each step's beginning it sets
masks, gate shifts and temperatures; before each optimizer step it folds the gates' gradients into the units'
importances (averaged over ranks under DDP); at the step that ends the search it decides the structure, passing the
Trainer's optimizer so the kept weights keep their optimizer state (nothing restarts). Under DDP the wrapper holds
the parameters, so the decision freezes the masks instead and the modules are cut down when training ends; every
rank decides the same (a test trains on two processes and compares them with one). It also stops a run whose
trained tensors turn NaN/inf before they can be checkpointed, and puts the model's ``training_log()`` (the
structure's size; with several tasks each task's loss and the pool's size) into the logs. One callback serves a
``SlaftModel`` and a ``MultiTaskSlaftModel`` alike: both carry the one search (``model.search``). The stock
``Trainer`` with ``callbacks=[SlaftCallback()]`` trains either; mixed precision, gradient accumulation and
DDP/FSDP/DeepSpeed launches come from transformers and accelerate unchanged.

``SlaftTrainer`` adds what the stock one cannot know: a learning rate of its own for gate and activation logits
(``SlaftConfig.structure_lr``), no weight decay on them, and checkpoints that hold the adapter directory only.
"""

from __future__ import annotations

import math
import os
import warnings

import torch
from transformers import Trainer, TrainerCallback

from .backbone import FrozenBackbone
from .model import NonFiniteError


def unwrap(model, kind: type = FrozenBackbone):
    """The ``kind`` model (any slaft model by default) inside DDP/FSDP/DeepSpeed/``torch.compile`` wrappers, or
    None: accelerate's ``extract_model_from_parallel`` takes the wrappers off (again, for a compiled model inside
    a parallel one)."""
    from accelerate.utils import extract_model_from_parallel

    for _ in range(4):
        if model is None or isinstance(model, kind):
            return model
        inner = extract_model_from_parallel(model, keep_torch_compile=False)
        if inner is model:
            return None
        model = inner
    return None


def check_finite(model: FrozenBackbone, step: int, output_dir: str) -> None:
    for name, param in model.named_parameters():
        if param.requires_grad and not torch.isfinite(param).all():
            raise NonFiniteError(
                f"{name} became non-finite (NaN/inf) by step {step}: a NaN/inf loss or gradient. The last good "
                f"checkpoint is kept in {output_dir}; lower the learning rate (or --structure-lr), check the labels, "
                "and resume."
            )


def scale_learning_rate(optimizer, lr_scheduler, scale: float) -> None:
    """Multiply every parameter group's rate by ``scale`` from now on: the group's current rate and the base rate the
    scheduler multiplies by its schedule, so warm-up and decay go on unchanged (``SlaftConfig.decided_lr_scale``).
    A resumed run restores both from its checkpoint."""
    if scale == 1.0 or optimizer is None:
        return
    for group in optimizer.param_groups:
        group["lr"] *= scale
        if "initial_lr" in group:
            group["initial_lr"] *= scale
    lr_scheduler = getattr(lr_scheduler, "scheduler", lr_scheduler)  # inside accelerate's AcceleratedScheduler
    base_lrs = getattr(lr_scheduler, "base_lrs", None)
    if base_lrs is None:
        warnings.warn(f"slaft: decided_lr_scale={scale:g} but the learning-rate scheduler "
                      f"({type(lr_scheduler).__name__}) keeps no base rates to scale, so its next step may undo the "
                      "change; use a transformers or torch scheduler, or decided_lr_scale=1.", stacklevel=2)
        return
    lr_scheduler.base_lrs = [lr * scale for lr in base_lrs]
    if hasattr(lr_scheduler, "_last_lr"):  # what get_last_lr() reports, and the Trainer logs, for the coming step
        lr_scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


class IdleEntries:
    """The entries of some parameters whose gradient is exactly zero, with their values and their optimizer state
    (every state tensor of the parameter's shape: Adam's moments), taken before an optimizer step and put back after
    it, so the step leaves them as they were (``MultiTaskConfig.hold_idle_units``)."""

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


class SlaftCallback(TrainerCallback):
    """Drives a slaft model's structure search from the Trainer's step counter (see the module docstring)."""

    def __init__(self) -> None:
        self.idle: IdleEntries | None = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        slaft = unwrap(model)
        if slaft is not None and slaft.search is not None and slaft.slaft_config.total_steps is None:
            slaft.search.total_steps = state.max_steps

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        slaft = unwrap(model)
        if slaft is not None and slaft.search is not None:
            slaft.search.begin_step(state.global_step)

    def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
        slaft = unwrap(model)
        if slaft is None:
            return
        if slaft.search is not None:
            slaft.search.after_backward()
        if slaft.hold_idle_units and optimizer is not None:
            self.idle = IdleEntries([p for p in slaft.parameters() if p.requires_grad], optimizer)

    def on_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        if self.idle is not None and optimizer is not None:
            self.idle.restore(optimizer)
        self.idle = None

    def on_step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        slaft = unwrap(model)
        if slaft is None:
            return
        if slaft.search is not None and slaft.search.should_decide(state.global_step):
            if args.world_size > 1:  # DDP holds the parameters: decide now, cut the modules down after training
                slaft.search.freeze()
            else:
                slaft.discretize(optimizer)
            slaft.decided_at_step = state.global_step
            scale_learning_rate(optimizer, kwargs.get("lr_scheduler"), slaft.slaft_config.decided_lr_scale)
        if control.should_save or control.should_log:  # the Trainer saves after this event: check first
            check_finite(slaft, state.global_step, args.output_dir)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        slaft = unwrap(model)
        if slaft is None:
            return
        check_finite(slaft, state.global_step, args.output_dir)
        if slaft.search is not None and slaft.search.frozen:
            slaft.discretize()

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        slaft = unwrap(model)
        if slaft is None or logs is None:
            return
        if "loss" in logs and not math.isfinite(logs["loss"]):
            raise NonFiniteError(f"The training loss is {logs['loss']} at step {state.global_step}: the model or the "
                                 "data produced NaN/inf. Lower the learning rate, check the labels, and resume.")
        stats = slaft.training_log()
        logs.update(stats)
        if state.log_history:  # the Trainer recorded its entry before calling us
            state.log_history[-1].update(stats)


def optimizer_groups(model: FrozenBackbone, weight_decay: float, structure_lr: float) -> list[dict]:
    """Three groups, always in this order (a resumed run's optimizer state must line up with them, so an empty
    group is kept): decayed weights, undecayed weights (biases, norms), structure logits at their own rate."""
    weights = model.weight_parameters()
    return [
        {"params": [p for p in weights if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in weights if p.ndim < 2], "weight_decay": 0.0},
        {"params": [p for p in model.structure_parameters() if p.requires_grad], "weight_decay": 0.0,
         "lr": structure_lr},
    ]


class SlaftTrainer(Trainer):
    """A ``transformers.Trainer`` that knows slaft's parameter groups, its search callback and its checkpoints."""

    def __init__(self, *args, **kwargs):
        callbacks = list(kwargs.pop("callbacks", None) or [])
        if not any(isinstance(c, SlaftCallback) for c in callbacks):
            callbacks.append(SlaftCallback())
        super().__init__(*args, callbacks=callbacks, **kwargs)

    def slaft_model(self):
        """The slaft model this Trainer trains (inside any wrapper), or None."""
        return unwrap(self.model)

    def create_optimizer(self):
        slaft = self.slaft_model()
        if self.optimizer is None and slaft is not None:
            groups = optimizer_groups(slaft, self.args.weight_decay, slaft.slaft_config.structure_lr)
            optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, slaft)
            self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return super().create_optimizer()

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        """Checkpoints and final saves hold the adapter directory (slaft tensors and head), not the backbone."""
        slaft = self.slaft_model()
        if slaft is None or self.is_deepspeed_enabled or self.is_fsdp_enabled:
            return super().save_model(output_dir, _internal_call)
        output_dir = output_dir or self.args.output_dir
        if self.args.should_save:
            os.makedirs(output_dir, exist_ok=True)
            slaft.save_pretrained(output_dir)
            torch.save(self.args, os.path.join(output_dir, "training_args.bin"))

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        """Resume from a slaft checkpoint. transformers has no public hook for loading a checkpoint that holds only
        part of a non-``PreTrainedModel`` model, so this one private method is overridden; the model must already
        have the checkpoint's structure (``slaft.pipeline.model_for_checkpoint`` builds it)."""
        slaft = self.slaft_model() if model is None else unwrap(model)
        if slaft is None:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        slaft.load_adapter_weights(resume_from_checkpoint)
