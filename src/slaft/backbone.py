"""What every slaft model shares: a frozen transformers model, its blocks (found by ``discovery.py``) and task heads,
the slaft modules hooked into it, and the parameter groups, fingerprint and structure read-out built on them.

``SlaftModel`` (one task) and ``MultiTaskSlaftModel`` (several tasks over one pool) are both a ``FrozenBackbone``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import nn

from .discovery import find_blocks, find_heads
from .config import ConfigError, SlaftConfig, closest
from .inject import CONTAINER, iter_modules
from .io import fingerprint
from .modules import BottleneckAdapter
from .structure import ModuleSpec, Structure

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "inputs_embeds")


def enable_gradient_checkpointing(base_model: nn.Module, gradient_checkpointing_kwargs: dict | None = None) -> None:
    """The base model's gradient checkpointing, non-reentrant by default: with transformers' reentrant default and a
    frozen embedding layer, no gradient would reach the adapters inside checkpointed blocks. A caller who asks for
    the reentrant variant gets input embeddings that require grad, which makes it work too."""
    kwargs = {"use_reentrant": False, **(gradient_checkpointing_kwargs or {})}
    base_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if kwargs["use_reentrant"]:
        base_model.enable_input_require_grads()


def task_heads(model: nn.Module, extra: tuple[str, ...] = ()) -> list[str]:
    """The modules that train fully and are saved with the adapters: the model's task head (``find_heads``) and the
    ``modules_to_save`` a config names, which must exist."""
    names = {name for name, _ in model.named_modules()}
    missing = [name for name in extra if name not in names]
    if missing:
        raise ConfigError(f"modules_to_save names {missing}, which the model does not have."
                          f"{closest(missing[0], sorted(n for n in names if n))} Use paths as print(model) shows them.")
    return list(dict.fromkeys(find_heads(model) + list(extra)))


class FrozenBackbone(nn.Module):
    """A frozen ``base_model`` with its blocks and its task heads found (not yet trainable: each
    subclass decides which head parts train). ``backbone_params`` counts what stays frozen."""

    # The base models' task losses are means over the batch: the Trainer must not rescale them as if they were sums
    # over ``num_items_in_batch`` (it does so for models whose forward takes **kwargs, doubling gradients under DDP).
    accepts_loss_kwargs = False

    def __init__(self, base_model: nn.Module, config: SlaftConfig) -> None:
        super().__init__()
        self.base_model, self.slaft_config = base_model, config
        self.blocks = find_blocks(base_model, config.block_lists, config.split_fused)
        if config.base_model_name_or_path is None:  # a copy: the caller's config stays as it was
            config = dataclasses.replace(config, base_model_name_or_path=getattr(
                getattr(base_model, "config", None), "_name_or_path", None))
            self.slaft_config = config
        base_model.requires_grad_(False)
        self.head_names = task_heads(base_model, config.modules_to_save or ())
        self.backbone_params = sum(p.numel() for n, p in base_model.named_parameters()
                                   if CONTAINER not in n and not self.is_head(n))

    @property
    def config(self):
        """The base model's transformers config (what Trainer and generation code expect)."""
        return self.base_model.config

    def is_head(self, name: str) -> bool:
        """True for a parameter name (relative to the base model) inside a task head."""
        return any(name == h or name.startswith(h + ".") for h in self.head_names)

    def slaft_modules(self):
        """(layer, site, module) of every slaft module now in the model."""
        return iter_modules(self.base_model, self.blocks)

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None) -> None:
        enable_gradient_checkpointing(self.base_model, gradient_checkpointing_kwargs)

    def structure_parameters(self) -> list[nn.Parameter]:
        """Logits trained at ``structure_lr`` (gates, activation choices); none by default."""
        return []

    def weight_parameters(self) -> list[nn.Parameter]:
        """Adapter weights and the task head: what the optimizer trains at the main learning rate."""
        skip = {id(p) for p in self.structure_parameters()}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in skip]

    def base_fingerprint(self) -> str:
        """A hash of the frozen backbone: saved adapters refuse to load onto another base."""
        return fingerprint((n, p) for n, p in self.base_model.named_parameters()
                           if CONTAINER not in n and not self.is_head(n))

    @staticmethod
    def model_inputs(inputs: dict, kwargs: dict) -> dict:
        """The base model's inputs: the named ones given, and any other keyword (the Trainer's loss-normalisation
        hint, which base models do not take, dropped)."""
        kwargs.pop("num_items_in_batch", None)
        return {**{k: v for k, v in inputs.items() if v is not None}, **kwargs}

    def structure_with(self, kept: Callable[[int, str, nn.Module], torch.Tensor]) -> Structure:
        """The decided structure that keeps, of each module now in the model, the components ``kept(layer, site,
        module)`` marks (a bool tensor over its ranks / hidden units)."""
        modules = []
        for layer, site, module in self.slaft_modules():
            width = int(kept(layer, site, module).sum())
            if width:
                spec = self.candidate.get(layer, site)
                acts = (module.chosen_activation(),) if isinstance(module, BottleneckAdapter) else ()
                modules.append(ModuleSpec(layer, site, width, spec.in_features, spec.out_features, acts, spec.host))
        return Structure(modules=modules, discrete=True, num_layers=self.candidate.num_layers)
