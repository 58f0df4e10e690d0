"""Where things live inside each supported transformer: a table of data, no code per architecture.

An entry names, relative to the task model (``BertForSequenceClassification``, ``LlamaForSequenceClassification``
...), the block list, and relative to one block the linears that play each role of the site table (``sites.py``):
``q``, ``k``, ``v``, ``o`` (attention output), ``ffn_gate``, ``ffn_in``, ``ffn_out``, and the module whose input is
the feed-forward block's input (``ffn_input``). Adding an architecture is adding an entry (or passing one to
``register_architecture``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from .config import ConfigError, closest
from .sites import PARALLEL, SITES


@dataclass(frozen=True)
class ArchitectureSpec:
    """Paths of one architecture family's blocks, role linears and task heads."""

    name: str
    model_types: tuple[str, ...]          # transformers ``config.model_type`` values this entry serves
    layers: tuple[str, ...]               # candidate paths of the block list (first that exists wins)
    linears: dict[str, str]               # site-table role -> path of the nn.Linear inside a block
    ffn_input: str                        # module whose *input* is the feed-forward block's input
    heads: tuple[str, ...]                # task-head modules that train with the adapters
    bias_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # config flag -> roles it gives a bias

    def sites(self) -> tuple[str, ...]:
        """The site-table entries this architecture can host, in table order."""
        return tuple(name for name, site in SITES.items()
                     if site.host in self.linears and (site.kind != PARALLEL or self.ffn_input))

    def host_path(self, site: str) -> str:
        return self.linears[SITES[site].host]


ARCHITECTURES: dict[str, ArchitectureSpec] = {
    "bert": ArchitectureSpec(
        name="bert",
        model_types=("bert", "roberta", "xlm-roberta", "electra", "camembert"),
        layers=("bert.encoder.layer", "roberta.encoder.layer", "electra.encoder.layer", "encoder.layer"),
        linears={"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
                 "o": "attention.output.dense", "ffn_in": "intermediate.dense", "ffn_out": "output.dense"},
        ffn_input="intermediate",
        heads=("bert.pooler", "roberta.pooler", "electra.pooler", "pooler", "classifier"),
    ),
    "llama": ArchitectureSpec(
        name="llama",
        model_types=("llama", "mistral", "qwen2"),
        layers=("model.layers", "layers"),
        linears={"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
                 "ffn_gate": "mlp.gate_proj", "ffn_in": "mlp.up_proj", "ffn_out": "mlp.down_proj"},
        ffn_input="mlp",
        heads=("score",),
        bias_groups={"attention_bias": ("q", "k", "v", "o"), "mlp_bias": ("ffn_gate", "ffn_in", "ffn_out")},
    ),
}


class ArchitectureError(ValueError):
    """The model's architecture is not in the table, or the table entry does not fit the model."""


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
        "To add one, describe where its blocks, attention and feed-forward linears live in a "
        "slaft.architectures.ArchitectureSpec and call slaft.register_architecture(spec) (or add it to "
        "ARCHITECTURES in slaft/architectures.py)."
    )


def find_layers(model: nn.Module, spec: ArchitectureSpec) -> nn.ModuleList:
    return model.get_submodule(layers_path(model, spec))


def layers_path(model: nn.Module, spec: ArchitectureSpec) -> str:
    """The path of the block list inside ``model`` (the first of the entry's candidates that exists)."""
    for path in spec.layers:
        try:
            layers = model.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(layers, nn.ModuleList):
            return path
    raise ArchitectureError(
        f"Architecture entry {spec.name!r} expects the block list at one of {spec.layers}, but the model has none "
        "of them. Check the entry's `layers` paths against print(model)."
    )


def find_linear(block: nn.Module, spec: ArchitectureSpec, role: str) -> nn.Linear:
    """The block's linear for ``role``, checked to be an ``nn.Linear``."""
    path = spec.linears[role]
    try:
        module = block.get_submodule(path)
    except AttributeError:
        module = None
    if not isinstance(module, nn.Linear):
        found = "nothing" if module is None else type(module).__name__
        raise ArchitectureError(f"Architecture entry {spec.name!r} expects an nn.Linear at {path!r} ({role}) in every "
                                f"block, found {found}. Check the entry's `linears` against print(model).")
    return module


def find_heads(model: nn.Module, spec: ArchitectureSpec, extra: tuple[str, ...] = ()) -> list[str]:
    """Names of the task-head modules present in ``model`` (they train, and are saved with the adapters): the
    entry's heads, and the ``extra`` modules a config names (which must exist)."""
    names = {name for name, _ in model.named_modules()}
    missing = [name for name in extra if name not in names]
    if missing:
        raise ConfigError(f"modules_to_save names {missing}, which the model does not have."
                          f"{closest(missing[0], sorted(n for n in names if n))} Use paths as print(model) shows them.")
    return list(dict.fromkeys([head for head in spec.heads if head in names] + list(extra)))
