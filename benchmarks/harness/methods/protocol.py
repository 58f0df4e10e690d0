"""What every benchmarked method provides, so the harness treats slaft and its peers exactly alike.

A method builds a trainable model from a fresh task model, trains it through a Trainer the harness hands it (same
epochs, sequence length, batch size and schedule for everyone), and exports it the way its own library ships it.
The export is where stored parameters, file size and inference latency are measured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from torch import nn
from transformers import Trainer, TrainerCallback

# The task head every method trains: the classifier, and BERT's pooler in front of it (RoBERTa's classifier already
# holds its dense layer). The MiniLM checkpoint is a sentence-embedding model whose pooler passes almost nothing on
# (its outputs barely vary across inputs), so a frozen pooler starves every method that cannot train it.
HEAD_MODULES = ("classifier", "pooler")


class TrainerFactory(Protocol):
    def __call__(self, model: nn.Module, epochs: float, lr: float, *, trainer_cls: type[Trainer] = Trainer,
                 callbacks: list[TrainerCallback] | None = None, phase: str = "train") -> Trainer: ...


@dataclass
class RunContext:
    """Facts about one run that a method may need while building or training."""

    model_id: str
    num_labels: int
    epochs: float
    lr: float
    seed: int
    steps_per_epoch: int
    make_trainer: TrainerFactory
    num_layers: int
    hidden_size: int
    slaft_settings: dict = field(default_factory=dict)  # the suite's SlaftConfig changes (robustness sweeps)
    intermediate_size: int | None = None  # the feed-forward width (BERT: 4 × hidden)
    value_size: int | None = None  # the value projection's output width (grouped-query decoders: below hidden)
    objective: str = "classification"  # or "causal-lm": the model answers with the class name (slaft.causal_lm)
    model_type: str = "bert"  # the transformers model type, for each library's own default target modules

    @property
    def total_steps(self) -> int:
        """Optimizer steps of the whole run, computed as the Trainer computes max_steps."""
        import math

        return max(1, math.ceil(self.epochs * self.steps_per_epoch))

    @property
    def lora_qv_params(self) -> int:
        """Parameters of LoRA r=8 on query and value: the reference size the slaft budget runs aim at."""
        return self.num_layers * 8 * (2 * self.hidden_size + self.hidden_size + (self.value_size or self.hidden_size))

    @property
    def lora_all_params(self) -> int:
        """Parameters of LoRA r=8 on every linear of a block (q, k, v, o and the feed-forward's two): peft-lora-all's
        size."""
        ffn = self.intermediate_size or 4 * self.hidden_size
        return self.num_layers * 8 * (4 * 2 * self.hidden_size + 2 * (self.hidden_size + ffn))


@dataclass
class Export:
    """The exported artefact: files on disk (counted) and the model that serves requests (timed)."""

    directory: Path
    inference_model: nn.Module
    merged: bool                      # True when the adapter was folded into the base weights for inference
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Method:
    """A benchmarked method. Subclasses override build/export, and train where one Trainer run is not enough."""

    name: str
    label: str                        # display name in tables and plots
    library: str                      # the distribution whose version is recorded ("peft", "adapters", ...)
    family: str                       # learning-rate grid family (see suites.py)
    description: str = ""

    def build(self, model: nn.Module, ctx: RunContext) -> nn.Module:
        raise NotImplementedError

    def callbacks(self, model: nn.Module, ctx: RunContext) -> list[TrainerCallback]:
        return []

    def train(self, model: nn.Module, ctx: RunContext) -> Trainer:
        """One Trainer run over all epochs; returns the trainer used for evaluation."""
        trainer = ctx.make_trainer(model, ctx.epochs, ctx.lr, callbacks=self.callbacks(model, ctx))
        trainer.train()
        return trainer

    def export(self, model: nn.Module, directory: Path) -> Export:
        raise NotImplementedError

    def details(self, model: nn.Module) -> dict[str, Any]:
        """Method-specific facts worth recording (e.g. the structure slaft found)."""
        return {}


def is_head(name: str) -> bool:
    """True for a parameter or module name inside the task head (peft's frozen copies excepted)."""
    parts = name.split(".")
    return any(h in parts for h in HEAD_MODULES) and "original_module" not in parts


def head_paths(model: nn.Module) -> list[str]:
    """Module paths of the head in a plain task model, e.g. ["bert.pooler", "classifier"]."""
    return [n for n, _ in model.named_modules() if n and n.split(".")[-1] in HEAD_MODULES]


def head_parameters(model: nn.Module) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if is_head(n))


def make_head_trainable(model: nn.Module) -> None:
    """The same head for every method: pooler and classifier train."""
    for name, param in model.named_parameters():
        if is_head(name):
            param.requires_grad_(True)


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


Builder = Callable[[nn.Module, RunContext], nn.Module]
