"""Baselines without an adapter library: BitFit (biases only), head-only (linear probe) and full fine-tuning (and,
as a diagnostic of its lead, full fine-tuning with the embedding layer frozen).

They are plain transformers models, so their export is a safetensors file of what was trained (the whole checkpoint
for full fine-tuning) and their inference model is the trained model itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import save_file
from torch import nn

from .protocol import Export, Method, RunContext, make_head_trainable


@dataclass
class SubsetMethod(Method):
    """Freeze everything, then unfreeze the parameters that ``keep(name)`` selects, plus the head."""

    def keep(self, name: str) -> bool:
        return False

    def build(self, model: nn.Module, ctx: RunContext) -> nn.Module:
        for name, param in model.named_parameters():
            param.requires_grad_(self.keep(name))
        make_head_trainable(model)
        return model

    def export(self, model: nn.Module, directory: Path) -> Export:
        directory.mkdir(parents=True, exist_ok=True)
        state = {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}
        save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
        return Export(directory, model.eval(), merged=True)


@dataclass
class BitFit(SubsetMethod):
    """Ben Zaken et al. (2022): every bias term (attention, FFN, LayerNorm, pooler) plus the head."""

    def keep(self, name: str) -> bool:
        return name.endswith(".bias")


@dataclass
class HeadOnly(SubsetMethod):
    """The linear probe: the frozen encoder's pooled output into a trained classifier."""


@dataclass
class FrozenEmbeddings(SubsetMethod):
    """Full fine-tuning except the embedding layer (token, position and type embeddings and their LayerNorm), which
    no adapter reaches: does full fine-tuning's lead come from the embeddings or from the blocks?"""

    def keep(self, name: str) -> bool:
        return ".embeddings." not in f".{name}"


@dataclass
class FullFineTuning(Method):
    """Every weight trains; the export is the whole checkpoint, written by transformers' own save_pretrained."""

    def build(self, model: nn.Module, ctx: RunContext) -> nn.Module:
        for param in model.parameters():
            param.requires_grad_(True)
        return model

    def export(self, model: nn.Module, directory: Path) -> Export:
        model.save_pretrained(directory, safe_serialization=True)
        return Export(directory, model.eval(), merged=True)


@dataclass
class Untuned(Method):
    """The model as it ships, trained on nothing: a decoder's zero-shot answer to each prompt (causal-LM suites), the
    floor every fine-tuning method is measured against. Nothing is stored."""

    def build(self, model: nn.Module, ctx: RunContext) -> nn.Module:
        model.requires_grad_(False)
        return model

    def train(self, model: nn.Module, ctx: RunContext):
        return ctx.make_trainer(model, ctx.epochs, ctx.lr)  # never trained: its log history stays empty

    def export(self, model: nn.Module, directory: Path) -> Export:
        directory.mkdir(parents=True, exist_ok=True)
        return Export(directory, model.eval(), merged=True)


UNTUNED = "untuned"


def plain_methods() -> list[Method]:
    return [
        BitFit("bitfit", "BitFit", "transformers", "bitfit", "bias terms + head"),
        HeadOnly("head-only", "Head only", "transformers", "head", "linear probe: classifier only"),
        FullFineTuning("full-ft", "Full FT", "transformers", "full", "all weights"),
        FrozenEmbeddings("full-ft-frozen-embeddings", "Full FT, embeddings frozen", "transformers", "full",
                         "all weights but the embedding layer"),
        Untuned(UNTUNED, "Untuned", "transformers", "none", "the pretrained model, no training (causal-LM suites)"),
    ]
