"""AdapterHub (`adapters`) methods through its public API: Houlsby, Pfeiffer, parallel bottleneck, UniPELT, MAM.

Configurations are the library's own defaults (sized by reduction factors, so they scale with the hidden size).
``adapters.init`` adds adapter support to the plain transformers model; ``train_adapter`` freezes the backbone and
activates the adapter; the head (pooler and classifier) is then made trainable explicitly, so it is the same as for
every other method. ``save_adapter`` writes the adapter and the classifier; the pooler goes beside them. None of
these can be folded into the base weights (bottlenecks are nonlinear, UniPELT's LoRA is gated), so the inference
model keeps its modules; prefix-tuning parts are ejected first, as AdapterHub recommends for inference, which also
drops their re-parametrisation network from the saved adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import save_file
from torch import nn

from .protocol import Export, Method, RunContext, is_head, make_head_trainable

ADAPTER_NAME = "bench"


@dataclass
class AdapterHubMethod(Method):
    config_name: str = ""                 # class name in `adapters`, e.g. "SeqBnConfig"
    has_prefix: bool = False

    def build(self, model: nn.Module, ctx: RunContext) -> nn.Module:
        import adapters

        adapters.init(model)
        model.add_adapter(ADAPTER_NAME, config=getattr(adapters, self.config_name)())
        model.train_adapter(ADAPTER_NAME)
        make_head_trainable(model)
        return model

    def export(self, model: nn.Module, directory: Path) -> Export:
        model.eval()
        if self.has_prefix:
            model.eject_prefix_tuning(ADAPTER_NAME)
        model.save_adapter(str(directory), ADAPTER_NAME)  # adapter weights and the classifier, AdapterHub's format
        pooler = {n: p.detach().contiguous().cpu() for n, p in model.named_parameters()
                  if is_head(n) and "classifier" not in n.split(".")}
        if pooler:
            save_file(pooler, str(directory / "pooler.safetensors"))
        return Export(directory, model, merged=False)

    def details(self, model: nn.Module) -> dict[str, Any]:
        return {"adapter_config": self.config_name}


def adapterhub_methods() -> list[Method]:
    return [
        AdapterHubMethod("ah-houlsby", "Houlsby", "adapters", "bottleneck",
                         "sequential bottleneck after attention and FFN (DoubleSeqBnConfig)", "DoubleSeqBnConfig"),
        AdapterHubMethod("ah-pfeiffer", "Pfeiffer", "adapters", "bottleneck",
                         "sequential bottleneck after the FFN (SeqBnConfig)", "SeqBnConfig"),
        AdapterHubMethod("ah-parallel", "Parallel BN", "adapters", "bottleneck",
                         "parallel bottleneck beside the FFN (ParBnConfig)", "ParBnConfig"),
        AdapterHubMethod("ah-unipelt", "UniPELT", "adapters", "bottleneck",
                         "gated LoRA + prefix tuning + bottleneck (UniPELTConfig)", "UniPELTConfig", has_prefix=True),
        AdapterHubMethod("ah-mam", "MAM", "adapters", "bottleneck",
                         "prefix tuning + parallel bottleneck (MAMConfig)", "MAMConfig", has_prefix=True),
    ]
