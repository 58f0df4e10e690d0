"""slaft's own runs: the default sparsity-weighted search, and budget mode at LoRA r=8's size and at a quarter of it.

slaft trains in two phases, as ``slaft train`` does (src/slaft/pipeline.py): a structure search, then discretize
(gates become decisions, modules shrink), then a fine-tune of what survived at half the learning rate. To give
slaft the same epoch budget as every other method, the suite's epochs are split between the two phases
(``search_fraction``). The export is the compact discrete adapter (``save_pretrained``); for inference the linear
paths are merged into the base weights (``merge``) and only nonlinear survivors stay as modules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn
from transformers import Trainer

from .protocol import Export, Method, RunContext, head_paths


def _with_benchmark_head(model: nn.Module) -> str:
    """Register (through slaft's public table API) a copy of the model's architecture entry whose heads are the
    benchmark's shared head, pooler included, so slaft trains and saves exactly what the peers do."""
    import dataclasses

    from slaft import register_architecture
    from slaft.architectures import resolve_architecture

    spec = resolve_architecture(model)
    heads = tuple(dict.fromkeys([*spec.heads, *head_paths(model)]))
    name = f"{spec.name}+benchmark-head"
    register_architecture(dataclasses.replace(spec, name=name, heads=heads))
    return name


@dataclass
class SlaftMethod(Method):
    config_kwargs: Callable[[RunContext], dict[str, Any]] = field(default=lambda ctx: {})
    search_fraction: float = 0.5
    finetune_lr_factor: float = 0.5   # the pipeline's default fine-tune rate: lr / 2

    def build(self, model: nn.Module, ctx: RunContext) -> nn.Module:
        from slaft import SlaftConfig, get_slaft_model

        config = SlaftConfig(**self.config_kwargs(ctx), architecture=_with_benchmark_head(model))
        config.base_model_name_or_path = ctx.model_id
        return get_slaft_model(model, config)

    def train(self, model: nn.Module, ctx: RunContext) -> Trainer:
        from slaft.training import SlaftTrainer

        search_epochs = ctx.epochs * self.search_fraction
        search = ctx.make_trainer(model, search_epochs, ctx.lr, trainer_cls=SlaftTrainer, phase="search")
        search.train()
        model.discretize()
        # Fine-tune even when every module closed: the head then still gets the rest of the epoch budget.
        finetune = ctx.make_trainer(model, ctx.epochs - search_epochs, ctx.lr * self.finetune_lr_factor,
                                    trainer_cls=SlaftTrainer, phase="finetune")
        finetune.train()
        return finetune

    def export(self, model: nn.Module, directory: Path) -> Export:
        model.eval()
        model.save_pretrained(str(directory))
        report = model.merge()
        inference = model.unload() if not report.kept else model
        return Export(directory, inference.eval(), merged=not report.kept,
                      details={"merge_folded": len(report.folded), "merge_kept": len(report.kept)})

    def details(self, model: nn.Module) -> dict[str, Any]:
        structure = model.structure()
        target = model.slaft_config.target_params
        return {
            "slaft_kept_params": structure.num_params,
            "slaft_candidate_params": model.candidate.num_params,
            "slaft_modules": structure.num_sites,
            "slaft_linear_modules": sum(m.is_linear for m in structure.modules),
            "slaft_sites": sorted({m.site for m in structure.modules}),
            "slaft_structure": [f"{m.key} {m.describe()}" for m in structure.modules],
            "slaft_target_params": int(target) if target else None,
        }


def slaft_methods() -> list[Method]:
    return [
        SlaftMethod("slaft-search", "slaft (search)", "slaft", "slaft",
                    "default search: sparsity weight 2.0 per million expected params"),
        SlaftMethod("slaft-budget-lora", "slaft (budget = LoRA q,v)", "slaft", "slaft",
                    "budget mode at LoRA r=8 (q,v)'s parameter count",
                    lambda ctx: {"target_params": ctx.lora_qv_params}),
        SlaftMethod("slaft-budget-quarter", "slaft (budget = 1/4 LoRA)", "slaft", "slaft",
                    "budget mode at a quarter of LoRA r=8 (q,v)'s parameter count",
                    lambda ctx: {"target_params": ctx.lora_qv_params // 4}),
    ]
