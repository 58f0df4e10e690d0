"""What differs between the transformers versions slaft supports (4.57 and 5.x), in one place."""

from __future__ import annotations

import inspect

from transformers import TrainingArguments

_TRAINING_ARGUMENTS = set(inspect.signature(TrainingArguments.__init__).parameters)


def training_arguments(output_dir, *, warmup_ratio: float = 0.0, group_by_length: bool = False,
                       **kwargs) -> TrainingArguments:
    """``TrainingArguments`` under either version's names. A warm-up as a fraction of the steps is ``warmup_ratio``
    in 4.x and a ``warmup_steps`` below 1 in 5.x; length-grouped batches are ``group_by_length`` in 4.x and
    ``train_sampling_strategy="group_by_length"`` in 5.x."""
    if "warmup_ratio" in _TRAINING_ARGUMENTS:
        kwargs["warmup_ratio"] = warmup_ratio
    elif warmup_ratio:
        kwargs["warmup_steps"] = float(warmup_ratio)
    if "group_by_length" in _TRAINING_ARGUMENTS:
        kwargs["group_by_length"] = group_by_length
    elif group_by_length:
        kwargs["train_sampling_strategy"] = "group_by_length"
    return TrainingArguments(output_dir, **kwargs)


def groups_by_length(args: TrainingArguments) -> bool:
    """Whether ``args`` ask for length-grouped training batches (either version's spelling)."""
    return bool(getattr(args, "group_by_length", False)) or \
        getattr(args, "train_sampling_strategy", None) == "group_by_length"
