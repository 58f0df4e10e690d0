"""slaft's runs: the λ-mode default, budget mode at LoRA r=8 (q,v)'s size and at a quarter of it, and the ablations.

The default candidate space is LoRA on every linear (``slaft-lora-only``, ``slaft-budget-lora-lora-only``). The
methods that name no sites (``slaft``, ``slaft-budget-lora``, ``slaft-budget-quarter`` and the ablations against
them) ran in the earlier default, which adds a bottleneck adapter after each feed-forward block, and keep it.

slaft trains in one Trainer run with the same epochs, learning rate and schedule as every other method: the
structure search (dense start, pruning, decision) happens inside it (``slaft.SlaftTrainer``), and the decided
structure trains on with its optimizer state. The export is the compact adapter directory (``save_pretrained``);
for inference the linear paths are merged into the base weights and only nonlinear survivors stay as modules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn
from transformers import Trainer, TrainerCallback

from .protocol import Export, Method, RunContext, head_paths


class ResetOptimizerAfterDecision(TrainerCallback):
    """Ablation: forget the optimizer's state (Adam's moments) once the structure is decided, as a restarted second
    phase would."""

    def __init__(self) -> None:
        self.done = False

    def on_step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        if not self.done and getattr(model, "decided_at_step", None) is not None:
            getattr(optimizer, "optimizer", optimizer).state.clear()
            self.done = True


# The LoRA sites of MiniLM's blocks: slaft's default candidate space since protocol 2 measured the one below.
LORA_SITES = ("lora_q", "lora_k", "lora_v", "lora_o", "lora_ffn_in", "lora_ffn_out")
# slaft's default candidate space until then: LoRA on every linear and a bottleneck adapter after each feed-forward
# block. Every method that names no sites ran in it, in every suite recorded before the switch, so it keeps it: a
# method's name means one configuration whatever the library's default is.
FFN_ADAPTER_SPACE = (*LORA_SITES, "ffn_adapter")
# The settings every suite before protocol 3's design choice ran with, held fixed for the same reason: rank components
# pruned two at a time (the library's rank_block until then). A method that names other settings overrides them.
RECORDED_DEFAULTS = {"rank_block": 2}


@dataclass
class SlaftMethod(Method):
    config_kwargs: Callable[[RunContext], dict[str, Any]] = field(default=lambda ctx: {})
    sites: tuple[str, ...] = FFN_ADAPTER_SPACE  # the candidate space, unless config_kwargs names one
    reset_optimizer: bool = False  # ablation: Adam's state forgotten after the decision

    def build(self, model: nn.Module, ctx: RunContext) -> nn.Module:
        from slaft import SlaftConfig, get_slaft_model

        # The benchmark's shared head (pooler and classifier) trains and is saved like every peer's.
        extra_heads = tuple(path for path in head_paths(model) if path.split(".")[-1] != "classifier")
        settings = {"sites": self.sites, **RECORDED_DEFAULTS, **self.config_kwargs(ctx), **ctx.slaft_settings}
        if "budget_of_lora" in settings:  # a budget as a multiple of LoRA r=8 (q,v)'s size
            settings["target_params"] = int(ctx.lora_qv_params * settings.pop("budget_of_lora"))
        config = SlaftConfig(**settings, modules_to_save=extra_heads or None, base_model_name_or_path=ctx.model_id)
        return get_slaft_model(model, config)

    def train(self, model: nn.Module, ctx: RunContext) -> Trainer:
        from slaft import SlaftTrainer

        callbacks = [ResetOptimizerAfterDecision()] if self.reset_optimizer else None
        trainer = ctx.make_trainer(model, ctx.epochs, ctx.lr, trainer_cls=SlaftTrainer, callbacks=callbacks)
        trainer.train()
        model.discretize()  # a no-op when the search ended inside the run (search_end < 1)
        return trainer

    def export(self, model: nn.Module, directory: Path) -> Export:
        model.eval()
        model.save_pretrained(str(directory))
        report = model.merge()
        inference = model.unload() if not report.kept else model
        return Export(directory, inference.eval(), merged=not report.kept,
                      details={"merge_folded": len(report.folded), "merge_kept": len(report.kept)})

    def details(self, model: nn.Module) -> dict[str, Any]:
        structure = model.structure()
        return {
            "slaft_kept_params": structure.num_params,
            "slaft_candidate_params": model.candidate.num_params,
            "slaft_modules": structure.num_sites,
            "slaft_linear_modules": sum(m.is_linear for m in structure.modules),
            "slaft_sites": sorted({m.site for m in structure.modules}),
            "slaft_structure": [f"{m.key} {m.describe()}" for m in structure.modules],
            "slaft_target_params": model.slaft_config.target_params,
            "slaft_config": model.slaft_config.to_dict(),
            "slaft_decision_step": model.decided_at_step,  # optimizer steps before the structure was decided
        }


def _budget(fraction: float, **extra):
    return lambda ctx: {"target_params": int(ctx.lora_qv_params * fraction), **extra}


# Protocol 3's size axis: slaft's budget as a multiple of LoRA r=8 (q,v)'s size (method name part, label, fraction).
SIZE_AXIS = (("eighth", "1/8", 0.125), ("quarter", "1/4", 0.25), ("half", "1/2", 0.5), ("lora", "1x", 1.0),
             ("double", "2x", 2.0))


def slaft_methods() -> list[Method]:
    return [
        # slaft's default space (LoRA on every linear): λ mode, and budget mode at LoRA r=8 (q,v)'s size and a quarter.
        SlaftMethod("slaft-lora-only", "slaft (λ default)", "slaft", "slaft",
                    "λ mode with the default sparsity weight in the default space: LoRA sites only",
                    sites=LORA_SITES),
        # The library's default since protocol 3's design choice: rank components pruned one at a time.
        SlaftMethod("slaft-lora-only-rank1", "slaft, rank-1 units (λ default)", "slaft", "slaft",
                    "λ mode with the default sparsity weight in the default space, LoRA sites only, rank components "
                    "pruned one at a time (rank_block 1)", lambda ctx: {"rank_block": 1}, sites=LORA_SITES),
        SlaftMethod("slaft-budget-lora-lora-only", "slaft (budget = LoRA q,v)", "slaft", "slaft",
                    "budget mode at LoRA r=8 (q,v)'s size in the default space: LoRA sites only",
                    _budget(1.0), sites=LORA_SITES),
        SlaftMethod("slaft-budget-quarter-lora-only", "slaft (budget = 1/4 LoRA)", "slaft", "slaft",
                    "budget mode at a quarter of LoRA r=8 (q,v)'s size in the default space: LoRA sites only",
                    _budget(0.25), sites=LORA_SITES),
        # Protocol 3's size axis in the default space: 1/8, 1/2 and 2 times LoRA r=8 (q,v)'s size (1/4 and 1 above).
        *(SlaftMethod(f"slaft-budget-{name}-lora-only", f"slaft (budget = {label} LoRA)", "slaft", "slaft",
                      f"budget mode at {label} LoRA r=8 (q,v)'s size in the default space: LoRA sites only",
                      _budget(fraction), sites=LORA_SITES)
          for name, label, fraction in (("eighth", "1/8", 0.125), ("half", "1/2", 0.5), ("double", "2x", 2.0))),
        # Issue 41's design candidates (suite design3, chosen on selection seeds only): at 1/8 and 1/4 of LoRA q,v's
        # size, where slaft trailed LoRA (q,v) r=1, the decided structure at three times the search's rate, rank
        # components pruned one at a time, a shorter search, and pairs of these; rank-one units at every size.
        *(SlaftMethod(f"slaft-budget-{name}-lora-only-{variant}", f"slaft, {what} (budget = {label} LoRA)", "slaft",
                      "slaft", f"budget mode at {label} LoRA r=8 (q,v)'s size, LoRA sites only, {how}",
                      _budget(fraction, **settings), sites=LORA_SITES)
          for name, label, fraction in SIZE_AXIS
          for variant, what, how, settings in (
              ("lr3", "rate x3 once decided", "the decided structure at three times the search's rate "
               "(decided_lr_scale 3)", {"decided_lr_scale": 3.0}),
              ("rank1", "rank-1 units", "rank components pruned one at a time (rank_block 1)",
               {"rank_block": 1}),
              ("rank1-lr3", "rank-1 units, rate x3 once decided", "rank_block 1 and "
               "decided_lr_scale 3", {"rank_block": 1, "decided_lr_scale": 3.0}),
              ("short", "decided at 30% of the steps", "a shorter search: pruning from 10% to 30% of the steps "
               "(search_start 0.1, search_end 0.3), so the decided structure trains 70% of them",
               {"search_start": 0.1, "search_end": 0.3}),
              ("short-lr3", "decided at 30% of the steps, rate x3 once decided", "search_start 0.1, search_end "
               "0.3 and decided_lr_scale 3", {"search_start": 0.1, "search_end": 0.3, "decided_lr_scale": 3.0}))
          if name in ("eighth", "quarter") or variant == "rank1"),
        # The earlier default space, with a bottleneck adapter after each feed-forward block (FFN_ADAPTER_SPACE).
        SlaftMethod("slaft", "slaft +FFN adapters (λ)", "slaft", "slaft",
                    "λ mode with the default sparsity weight, in the space with bottleneck adapters"),
        SlaftMethod("slaft-budget-lora", "slaft +FFN adapters (budget = LoRA q,v)", "slaft", "slaft",
                    "budget mode at LoRA r=8 (q,v)'s parameter count", _budget(1.0)),
        SlaftMethod("slaft-budget-quarter", "slaft +FFN adapters (budget = 1/4 LoRA)", "slaft", "slaft",
                    "budget mode at a quarter of LoRA r=8 (q,v)'s parameter count", _budget(0.25)),
        SlaftMethod("slaft-budget-lora-all", "slaft +FFN adapters (budget = LoRA all)", "slaft", "slaft",
                    "budget mode at LoRA r=8 on every linear's parameter count (peft-lora-all's size)",
                    lambda ctx: {"target_params": ctx.lora_all_params}),
        # Ablations: one change each against slaft-budget-lora.
        SlaftMethod("slaft-gates-budget-lora", "slaft gates (budget = LoRA q,v)", "slaft", "slaft",
                    "allocator 'gates': hard-concrete gates under a solved shift", _budget(1.0, allocator="gates")),
        SlaftMethod("slaft-budget-lora-layer", "slaft, blocks compete apart (budget = LoRA q,v)", "slaft", "slaft",
                    "importance relative to the unit's block (importance_scope 'layer')",
                    _budget(1.0, importance_scope="layer")),
        SlaftMethod("slaft-budget-quarter-spread", "slaft, half the budget spread over blocks (budget = 1/4 LoRA)",
                    "slaft", "slaft", "each block first keeps its best units up to half the budget / blocks "
                    "(block_share 0.5), at a quarter of LoRA q,v", _budget(0.25, block_share=0.5)),
        SlaftMethod("slaft-budget-quarter-even", "slaft, budget split evenly over blocks (budget = 1/4 LoRA)",
                    "slaft", "slaft", "each block first keeps its best units up to budget / blocks (block_share 1), "
                    "at a quarter of LoRA q,v", _budget(0.25, block_share=1.0)),
        SlaftMethod("slaft-budget-quarter-lr3", "slaft, rate x3 once decided (budget = 1/4 LoRA)", "slaft", "slaft",
                    "the decided structure trains at three times the search's rate (decided_lr_scale 3), at a "
                    "quarter of LoRA q,v", _budget(0.25, decided_lr_scale=3.0)),
        SlaftMethod("slaft-budget-lora-nowarmup", "slaft, no dense start (budget = LoRA q,v)", "slaft", "slaft",
                    "pruning starts at step 0 (search_start 0)", _budget(1.0, search_start=0.0)),
        SlaftMethod("slaft-budget-lora-reset", "slaft, optimizer restarted at the decision (budget = LoRA q,v)",
                    "slaft", "slaft", "Adam's moments forgotten once the structure is decided", _budget(1.0),
                    reset_optimizer=True),
        SlaftMethod("slaft-budget-lora-lr3", "slaft, rate x3 once decided (budget = LoRA q,v)", "slaft", "slaft",
                    "the decided structure trains at three times the search's rate (decided_lr_scale 3)",
                    _budget(1.0, decided_lr_scale=3.0)),
        SlaftMethod("slaft-fixed-lora-qv", "slaft code, fixed LoRA q,v r=8", "slaft", "slaft",
                    "no search: LoRA r=8 on q,v through slaft's modules (parity check with peft)",
                    lambda ctx: {"sites": ("lora_q", "lora_v"), "sparsity_weight": 0.0}),
        SlaftMethod("slaft-fixed-lora-qv-r2", "slaft code, fixed LoRA q,v r=2", "slaft", "slaft",
                    "no search: LoRA r=2 (α 4) on q,v through slaft's modules, at the quarter's rate",
                    lambda ctx: {"sites": ("lora_q", "lora_v"), "lora_rank": 2, "lora_alpha": 4.0,
                                 "sparsity_weight": 0.0}),
    ]
