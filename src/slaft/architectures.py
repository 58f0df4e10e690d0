"""Where things live inside each supported transformer: a table of data, no code per architecture.

An entry names, relative to the task model (``BertForSequenceClassification``, ``LlamaForSequenceClassification``
...), the block list, and relative to one block: the attention output projection, the feed-forward sub-layer's
input module and output projection, and the linear layers that low-rank updates may target. Adding an architecture
is adding an entry (or passing one to ``register_architecture``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn


@dataclass(frozen=True)
class ArchitectureSpec:
    name: str
    model_types: tuple[str, ...]          # transformers ``config.model_type`` values this entry serves
    layers: tuple[str, ...]               # candidate paths of the block list (first that exists wins)
    attn_output: str                      # linear whose output the attention adapter follows (before the residual)
    ffn_input: str                        # module whose *input* feeds the parallel adapter
    ffn_output: str                       # linear whose output the FFN adapter follows and the parallel one joins
    lora_targets: dict[str, str]          # LoRA site -> linear inside a block
    heads: tuple[str, ...]                # task-head modules that train with the adapters
    bias_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # config flag -> linears it gives bias


ARCHITECTURES: dict[str, ArchitectureSpec] = {
    "bert": ArchitectureSpec(
        name="bert",
        model_types=("bert", "roberta", "xlm-roberta", "electra", "camembert"),
        layers=("bert.encoder.layer", "roberta.encoder.layer", "electra.encoder.layer", "encoder.layer"),
        attn_output="attention.output.dense",
        ffn_input="intermediate",
        ffn_output="output.dense",
        lora_targets={
            "lora_q": "attention.self.query",
            "lora_k": "attention.self.key",
            "lora_v": "attention.self.value",
            "lora_o": "attention.output.dense",
            "lora_ffn_in": "intermediate.dense",
            "lora_ffn_out": "output.dense",
        },
        heads=("classifier",),
    ),
    "llama": ArchitectureSpec(
        name="llama",
        model_types=("llama", "mistral", "qwen2"),
        layers=("model.layers", "layers"),
        attn_output="self_attn.o_proj",
        ffn_input="mlp",
        ffn_output="mlp.down_proj",
        lora_targets={
            "lora_q": "self_attn.q_proj",
            "lora_k": "self_attn.k_proj",
            "lora_v": "self_attn.v_proj",
            "lora_o": "self_attn.o_proj",
            "lora_ffn_gate": "mlp.gate_proj",
            "lora_ffn_in": "mlp.up_proj",
            "lora_ffn_out": "mlp.down_proj",
        },
        heads=("score",),
        bias_groups={
            "attention_bias": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"),
            "mlp_bias": ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"),
        },
    ),
}


class ArchitectureError(ValueError):
    """The model's architecture is not in the table."""


def register_architecture(spec: ArchitectureSpec) -> None:
    """Add (or replace) a table entry at run time."""
    ARCHITECTURES[spec.name] = spec


def resolve_architecture(model: nn.Module, name: str | None = None) -> ArchitectureSpec:
    """The table entry for ``model``: by explicit ``name``, else by ``model.config.model_type``."""
    if name is not None:
        if name not in ARCHITECTURES:
            raise ArchitectureError(f"Unknown architecture {name!r}; the table has {sorted(ARCHITECTURES)}.")
        return ARCHITECTURES[name]
    return architecture_for_model_type(getattr(getattr(model, "config", None), "model_type", None))


def architecture_for_model_type(model_type: str | None) -> ArchitectureSpec:
    for spec in ARCHITECTURES.values():
        if model_type in spec.model_types:
            return spec
    supported = sorted(t for spec in ARCHITECTURES.values() for t in spec.model_types)
    raise ArchitectureError(
        f"slaft has no architecture entry for model_type {model_type!r}. Supported model types: {supported}. "
        "To add one, describe where its blocks, attention output, feed-forward input/output and projections live "
        "in a slaft.architectures.ArchitectureSpec and call slaft.register_architecture(spec) (or add it to "
        "ARCHITECTURES in slaft/architectures.py)."
    )


def find_layers(model: nn.Module, spec: ArchitectureSpec) -> nn.ModuleList:
    for path in spec.layers:
        try:
            layers = model.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(layers, nn.ModuleList):
            return layers
    raise ArchitectureError(
        f"Architecture entry {spec.name!r} expects the block list at one of {spec.layers}, but the model has none "
        "of them. Check the entry's `layers` paths against print(model)."
    )


def find_heads(model: nn.Module, spec: ArchitectureSpec) -> list[str]:
    """Names of the task-head modules present in ``model`` (they train, and are saved with the adapters)."""
    names = {name for name, _ in model.named_modules()}
    return [head for head in spec.heads if head in names]
