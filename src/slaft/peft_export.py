"""A learned structure as a peft LoRA adapter, when it is one: low-rank updates only, any rank per module.

peft computes each update as (alpha / r) · B A; slaft keeps the candidate's scale alpha / r_candidate whatever rank
survives, so each module's peft alpha is that scale times its kept rank (``alpha_pattern``), and its rank goes in
``rank_pattern``. The adapter is built with peft itself and saved by peft's own ``save_pretrained``, so
``peft.PeftModel.from_pretrained`` loads it as any other LoRA adapter.
"""

from __future__ import annotations

import torch

from .io import AdapterLoadError
from .modules import LowRankUpdate
from .sites import LORA, block_sites

TASK_HEADS = {"classifier", "score"}  # peft's SEQ_CLS task type saves these by itself


class PeftExportError(AdapterLoadError):
    """The structure holds modules peft's LoRA cannot express."""


def to_peft(model):
    """A ``peft.PeftModel`` (LoRA) computing what the decided SlaftModel ``model`` computes. ``model`` gives up its
    base model to it (its slaft modules are removed)."""
    try:
        from peft import LoraConfig, TaskType, get_peft_model
    except ImportError as err:
        raise PeftExportError("Exporting to peft needs peft: pip install peft") from err
    structure = model.discretize()
    other = [f"{m.key} ({m.describe()})" for m in structure.modules if m.kind != LORA]
    if other:
        raise PeftExportError(
            f"peft's LoRA cannot express {len(other)} kept module(s) of this structure: {', '.join(other)}. Export "
            "without --format peft (slaft's own format keeps them), or train with LoRA sites only "
            "(leave --sites unset, or name only lora_* sites)."
        )
    if not structure.modules:
        raise PeftExportError("The structure kept no module: there is no LoRA adapter to export.")
    parts: dict[str, list] = {}  # host linear -> its modules (several: the parts of a split fused projection)
    for layer, site_name, module in model.slaft_modules():
        assert isinstance(module, LowRankUpdate)
        where = block_sites(model.blocks[layer])[site_name]
        parts.setdefault(f"{model.blocks[layer].path}.{where.host.path}", []).append((where, module))
    weights, ranks, alphas = {}, {}, {}
    for name, modules in parts.items():
        # One peft LoRA per linear: the parts' A stacked, each part's B in its own rows and rank columns (zeros
        # elsewhere), at the parts' common scale alpha / r_candidate.
        scaling = modules[0][1].scaling
        a = torch.cat([module.lora_A.detach() for _, module in modules])
        b = torch.zeros(modules[0][0].host.out_features, a.shape[0], dtype=a.dtype, device=a.device)
        column = 0
        for where, module in modules:
            first, end = where.rows or (0, b.shape[0])
            b[first:end, column:column + module.width] = module.lora_B.detach() * (module.scaling / scaling)
            column += module.width
        weights[name] = (a, b)
        ranks[name], alphas[name] = a.shape[0], scaling * a.shape[0]
    heads = [name for name in model.head_names if name.split(".")[-1] not in TASK_HEADS]
    base = model.unload()
    task_type = TaskType.SEQ_CLS if hasattr(base, "num_labels") else None
    first = next(iter(ranks))
    config = LoraConfig(task_type=task_type, target_modules=sorted(ranks), r=ranks[first], lora_alpha=alphas[first],
                        rank_pattern=ranks, alpha_pattern=alphas, lora_dropout=0.0, modules_to_save=heads or None)
    peft_model = get_peft_model(base, config)
    inner = peft_model.base_model.model
    missed = [name for name in weights if not hasattr(inner.get_submodule(name), "lora_A")]
    if missed:
        raise PeftExportError(
            f"peft placed no LoRA on {len(missed)} of the structure's linears ({', '.join(missed[:3])}...): its own "
            f"conversion of target names for {type(inner).__name__} rewrote them. Export without --format peft "
            "(slaft's own format, or --merge) keeps them.")
    with torch.no_grad():
        for name, (a, b) in weights.items():
            layer = inner.get_submodule(name)
            layer.lora_A["default"].weight.copy_(a)
            layer.lora_B["default"].weight.copy_(b)
    return peft_model
