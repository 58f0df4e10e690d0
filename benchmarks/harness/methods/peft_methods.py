"""peft's methods through peft's public API: LoRA (query/value, all linears), AdaLoRA, DoRA, (IA)³, prefix tuning.

With ``task_type=SEQ_CLS`` peft itself makes the classifier trainable (``modules_to_save``); the pooler is added to
``modules_to_save`` where the model has one, which gives the head every method in this benchmark trains. Exports are
``save_pretrained`` directories; for inference, what peft can fold into the base weights (LoRA, DoRA, AdaLoRA,
(IA)³) is merged with ``merge_and_unload``, and prefix tuning runs as the PeftModel it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn
from transformers import TrainerCallback

from .protocol import Export, Method, RunContext, head_paths

# Every linear inside the encoder blocks (not the pooler, not the classifier) of BERT-style models.
BLOCK_LINEARS = (r".*encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense"
                 r"|intermediate\.dense|output\.dense)")


@dataclass
class PeftMethod(Method):
    make_config: Callable[[RunContext], Any] | None = None
    mergeable: bool = True

    def build(self, model: nn.Module, ctx: RunContext) -> nn.Module:
        from peft import get_peft_model

        config = self.make_config(ctx)
        config.modules_to_save = _pooler_linears(model) or None  # peft adds the classifier itself
        return get_peft_model(model, config)

    def export(self, model: nn.Module, directory: Path) -> Export:
        model.save_pretrained(directory)
        model.eval()
        if self.mergeable:
            return Export(directory, model.merge_and_unload().eval(), merged=True)
        return Export(directory, model, merged=False)


def _pooler_linears(model: nn.Module) -> list[str]:
    """The pooler's parametrised leaves as peft ``modules_to_save`` keys (e.g. "pooler.dense").

    Wrapping the pooler itself would work for training, but (IA)³'s merge_and_unload then fails on it (peft 0.21
    copies ``.weight`` from every wrapped module, and BertPooler has none); its Linear has one.
    """
    keys = []
    for path in head_paths(model):
        short = path.split(".")[-1]
        if short == "classifier":
            continue
        for name, module in model.get_submodule(path).named_modules():
            if name and any(True for _ in module.parameters(recurse=False)):
                keys.append(f"{short}.{name}")
    return keys


class AdaLoraAllocator(TrainerCallback):
    """AdaLoRA re-allocates ranks from the gradients of each step: after optimizer.step(), before zero_grad()."""

    def on_optimizer_step(self, args, state, control, model=None, **kwargs):
        peft_model = getattr(model, "module", model)
        peft_model.base_model.update_and_allocate(state.global_step)


@dataclass
class AdaLoraMethod(PeftMethod):
    def callbacks(self, model: nn.Module, ctx: RunContext) -> list[TrainerCallback]:
        return [AdaLoraAllocator()]

    def details(self, model: nn.Module) -> dict[str, Any]:
        pattern = model.peft_config["default"].rank_pattern or {}
        ranks = {name: int(sum(mask)) for name, mask in pattern.items()}
        return {"adalora_final_rank_total": sum(ranks.values()), "adalora_modules": len(ranks)} if ranks else {}


QUERY_VALUE = "query and value"  # the model's query and value projections, by peft's own default for its type


def _targets(targets, ctx: RunContext):
    """``targets`` for this run's model: query/value by peft's default for the model type; every block linear as
    BLOCK_LINEARS on the encoder and as peft's "all-linear" (every linear but the output layer) on a decoder."""
    if targets == QUERY_VALUE:
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

        return list(DEFAULTS[ctx.model_type])
    if targets == BLOCK_LINEARS and ctx.objective == "causal-lm":
        return "all-linear"
    return targets


def _lora(targets, *, dora: bool = False, rank: int = 8):
    def make(ctx: RunContext):
        from peft import LoraConfig, TaskType

        task = TaskType.CAUSAL_LM if ctx.objective == "causal-lm" else TaskType.SEQ_CLS
        return LoraConfig(task_type=task, r=rank, lora_alpha=2 * rank, lora_dropout=0.0,
                          target_modules=_targets(targets, ctx), use_dora=dora)

    return make


def _adalora(ctx: RunContext):
    from peft import AdaLoraConfig, TaskType

    total = ctx.total_steps
    # Warm up for 10% of training, stop re-allocating for the last 20%: AdaLoRA's three phases, scaled to the run.
    tinit, tfinal = int(0.1 * total), int(0.2 * total)
    if tinit >= total - tfinal:  # tiny (quick-suite) runs: leave at least one budgeting step
        tinit, tfinal = 0, 0
    return AdaLoraConfig(task_type=TaskType.SEQ_CLS, init_r=12, target_r=8, lora_alpha=16,
                         target_modules=["query", "value"], total_step=total, tinit=tinit, tfinal=tfinal)


def _ia3(ctx: RunContext):
    from peft import IA3Config, TaskType

    return IA3Config(task_type=TaskType.SEQ_CLS)  # peft's defaults for BERT: key, value, FFN output


def _prefix(ctx: RunContext):
    from peft import PrefixTuningConfig, TaskType

    return PrefixTuningConfig(task_type=TaskType.SEQ_CLS, num_virtual_tokens=20)


def peft_methods() -> list[Method]:
    return [
        PeftMethod("peft-lora-qv", "LoRA r=8 (q,v)", "peft", "lora", "LoRA r=8, alpha 16, on query and value",
                   _lora(QUERY_VALUE)),
        PeftMethod("peft-lora-qv-r2", "LoRA r=2 (q,v)", "peft", "lora",
                   "LoRA r=2, alpha 4, on query and value: hand-chosen at a quarter of LoRA r=8 (q,v)'s size",
                   _lora(QUERY_VALUE, rank=2)),
        PeftMethod("peft-lora-all", "LoRA r=8 (all)", "peft", "lora", "LoRA r=8, alpha 16, on every block linear",
                   _lora(BLOCK_LINEARS)),
        # Protocol 3's size axis: the hand-chosen structures at 1/8 to 2 times LoRA r=8 (q,v)'s size (alpha 2r).
        *(PeftMethod(f"peft-lora-qv-r{rank}", f"LoRA r={rank} (q,v)", "peft", "lora",
                     f"LoRA r={rank}, alpha {2 * rank}, on query and value: {share} of LoRA r=8 (q,v)'s size",
                     _lora(QUERY_VALUE, rank=rank)) for rank, share in ((1, "1/8"), (4, "1/2"), (16, "2x"))),
        *(PeftMethod(f"peft-lora-all-r{rank}", f"LoRA r={rank} (all)", "peft", "lora",
                     f"LoRA r={rank}, alpha {2 * rank}, on every block linear", _lora(BLOCK_LINEARS, rank=rank))
          for rank in (1, 2)),
        AdaLoraMethod("peft-adalora", "AdaLoRA", "peft", "lora",
                      "AdaLoRA on query/value, init rank 12, average target rank 8", _adalora),
        PeftMethod("peft-dora", "DoRA r=8 (q,v)", "peft", "lora", "DoRA r=8 on query and value",
                   _lora(QUERY_VALUE, dora=True)),
        PeftMethod("peft-ia3", "(IA)³", "peft", "ia3", "(IA)³ on key, value and FFN output (peft defaults)", _ia3),
        PeftMethod("peft-prefix", "Prefix tuning", "peft", "prefix", "20 virtual tokens per layer, no projection",
                   _prefix, mergeable=False),
    ]
