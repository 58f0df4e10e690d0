"""Where the candidate sites are, found from the model itself: its repeated blocks, the linears inside each block,
and what each linear does, from module names and shapes alone (no code per architecture).

* **Blocks** are the elements of the outermost ``nn.ModuleList``\\ s whose elements hold linears: a decoder's or an
  encoder's layer list, both stacks of an encoder-decoder (numbered on, encoder first), the mixed layer list of a
  hybrid. ``SlaftConfig.block_lists`` names them where this finds the wrong lists.
* **Linears** are ``nn.Linear`` and transformers' ``Conv1D`` (GPT-2's transposed linear).
* **Roles** come from the path inside the block: the group a linear sits in (attention, cross-attention, feed-forward,
  mixture-of-experts experts) and its own name (``q_proj``, ``query``, ``c_attn``, ``wi``, ``fc1`` ...), with the
  linear's shape deciding where a name is shared (``dense``, ``wo``, ``c_proj``). A linear whose role cannot be told
  is a candidate all the same, under its own path. A mixture-of-experts router is found (and left out) the same way.
* **Fused projections** (GPT-2's ``c_attn``, Phi-3's ``qkv_proj``) can be split (``split_fused``): the query, key
  and value rows of the output, sized from the config's head counts and checked against the linear's width, each
  become a site of their own, so the search gives each its own rank. Models whose fused layout interleaves the
  heads (GPT-NeoX, BLOOM, Falcon, DeBERTa, CodeGen, Persimmon) are not split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

try:  # transformers' Conv1D: weight (in, out), y = x W + b
    from transformers.pytorch_utils import Conv1D
except ImportError:  # pragma: no cover - transformers is a dependency
    Conv1D = ()

LINEAR_TYPES = (nn.Linear, Conv1D) if Conv1D else (nn.Linear,)
CONTAINER = "slaft_modules"  # the per-block dict slaft's own modules live in (never a candidate host)

# Roles. Shorthand roles name sites of their own (``lora_q`` ...); the others are candidates under their path.
Q, K, V, QKV, O = "q", "k", "v", "qkv", "o"
FFN_GATE, FFN_IN, FFN_GATE_UP, FFN_OUT = "ffn_gate", "ffn_in", "ffn_gate_up", "ffn_out"
EXPERT, ROUTER, OTHER = "expert", "router", "other"
CROSS = "cross_"  # prefix of a cross-attention role: cross_q, cross_k, cross_v, cross_qkv, cross_o

ATTENTION_NAMES = {
    Q: {"q", "q_proj", "query", "q_lin", "wq", "query_proj", "to_q", "q_attn", "q_a_proj"},
    K: {"k", "k_proj", "key", "k_lin", "wk", "key_proj", "to_k"},
    V: {"v", "v_proj", "value", "v_lin", "wv", "value_proj", "to_v"},
    QKV: {"qkv", "qkv_proj", "c_attn", "query_key_value", "wqkv", "w_pack", "qkv_lin", "in_proj_qkv", "in_proj"},
    O: {"o", "o_proj", "out_proj", "out_lin", "c_proj", "dense", "wo", "proj", "to_out", "out", "output",
        "attn_out", "o_lin"},
}
FFN_NAMES = {
    FFN_GATE: {"gate_proj", "w1", "wi_0", "gate", "ffn_gate"},
    FFN_IN: {"up_proj", "fc1", "c_fc", "wi", "wi_1", "dense_h_to_4h", "lin1", "fc_in", "w3", "ffn", "dense",
             "intermediate", "up", "ffn_up"},
    FFN_GATE_UP: {"gate_up_proj", "w12", "gate_up"},
    FFN_OUT: {"down_proj", "fc2", "c_proj", "wo", "dense_4h_to_h", "lin2", "fc_out", "w2", "ffn_output", "dense",
              "down", "output", "ffn_down"},
}
# Names that say the role wherever the linear sits (no attention or feed-forward group above it, as in OPT's fc1).
UNAMBIGUOUS = {
    **{name: Q for name in ("q_proj", "query", "q_lin", "query_proj")},
    **{name: K for name in ("k_proj", "key", "k_lin", "key_proj")},
    **{name: V for name in ("v_proj", "value", "v_lin", "value_proj")},
    **{name: QKV for name in ("qkv_proj", "c_attn", "query_key_value", "wqkv", "w_pack")},
    **{name: O for name in ("o_proj", "out_lin")},
    **{name: FFN_GATE for name in ("gate_proj",)},
    **{name: FFN_IN for name in ("up_proj", "fc1", "c_fc", "dense_h_to_4h", "lin1", "fc_in", "ffn")},
    **{name: FFN_GATE_UP for name in ("gate_up_proj",)},
    **{name: FFN_OUT for name in ("down_proj", "fc2", "dense_4h_to_h", "lin2", "fc_out", "ffn_output")},
}
CROSS_GROUP = re.compile(r"encdecattention|encoder_attn|crossattention|cross_attn|crossattn|cross_attention|src_attn")
ATTENTION_GROUP = re.compile(r"attn|attention")
FFN_GROUP = re.compile(r"mlp|ffn|feed_?forward|intermediate|densereludense|^output$|moe|shared_expert")
EXPERTS_GROUP = re.compile(r"^experts?$|^local_experts$")
ROUTER_NAMES = re.compile(r"^(gate|router|wg|classifier)$|router|shared_expert_gate")


class DiscoveryError(ValueError):
    """slaft could not find the model's blocks (or the blocks a config names); the message says what to do."""


@dataclass(frozen=True)
class HostLinear:
    """One linear inside a block: its path relative to the block, its role and its shape."""

    path: str
    role: str
    in_features: int
    out_features: int
    slices: tuple[tuple[str, int, int], ...] = ()  # a split fused projection: (role, first row, end row) per part


@dataclass(frozen=True)
class Block:
    """One repeated block: its path in the model, the block list it belongs to, and its linears in module order."""

    path: str
    stack: str
    linears: tuple[HostLinear, ...]

    def by_role(self, role: str) -> list[HostLinear]:
        return [linear for linear in self.linears if linear.role == role]


def linear_shape(module: nn.Module) -> tuple[int, int]:
    """(in_features, out_features) of an ``nn.Linear`` or a ``Conv1D``."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    rows, cols = module.weight.shape  # Conv1D: (in, out)
    return int(rows), int(cols)


def is_linear(module: nn.Module) -> bool:
    return isinstance(module, LINEAR_TYPES)


def _has_linear(module: nn.Module) -> bool:
    return any(is_linear(m) for m in module.modules())


def find_block_lists(model: nn.Module, names: tuple[str, ...] | None = None) -> list[str]:
    """Paths of the block lists: those ``names`` gives, else every outermost ``nn.ModuleList`` whose elements hold
    linears (outside the task heads' own lists, which hold none of a block's)."""
    if names:
        found = []
        for name in names:
            try:
                module = model.get_submodule(name)
            except AttributeError:
                module = None
            if not isinstance(module, nn.ModuleList):
                what = "nothing" if module is None else type(module).__name__
                raise DiscoveryError(f"block_lists names {name!r}, but the model has {what} there, not an "
                                     "nn.ModuleList of blocks. Use a path as print(model) shows it, e.g. "
                                     "'model.layers' or 'transformer.h'.")
            found.append(name)
        return found
    lists = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0 or CONTAINER in name.split("."):
            continue
        if any(name.startswith(outer + ".") for outer in lists):
            continue  # inside a block (T5's block.layer, a mixture's experts)
        if all(_has_linear(element) for element in module):
            lists.append(name)
    if not lists:
        raise DiscoveryError(
            f"slaft found no transformer blocks in {type(model).__name__}: it looks for an nn.ModuleList whose "
            "elements (the blocks) contain nn.Linear or Conv1D layers, and this model has none. If its blocks live "
            "elsewhere, name their list: SlaftConfig(block_lists=['path.to.layers']) (--block-lists on the command "
            "line), with the path as print(model) shows it."
        )
    return lists


def _group(parts: list[str]) -> str | None:
    """The group the linear at ``parts`` (its path inside the block, leaf last) sits in, from its parents' names."""
    parents = [p.lower() for p in parts[:-1]]
    if any(EXPERTS_GROUP.search(p) for p in parents):
        return EXPERT
    if any(CROSS_GROUP.search(p) for p in parents):
        return "cross"
    if any(ATTENTION_GROUP.search(p) for p in parents):
        return "attention"
    if any(FFN_GROUP.search(p) for p in parents):
        return "ffn"
    return None


def _attention_role(leaf: str, in_features: int, out_features: int, hidden: int | None) -> str:
    for role, names in ATTENTION_NAMES.items():
        if leaf in names:
            if role == O and hidden and out_features != hidden:
                continue  # 'dense' / 'proj' reading the hidden state into something else: not the output
            return role
    return OTHER


def _ffn_role(leaf: str, parent: str, in_features: int, out_features: int, hidden: int | None,
              intermediate: int | None) -> str:
    if leaf == "dense" and parent in ("intermediate", "output"):  # BERT's intermediate.dense and output.dense
        return FFN_IN if parent == "intermediate" else FFN_OUT
    if hidden and out_features == hidden and in_features != hidden and leaf in FFN_NAMES[FFN_OUT]:
        return FFN_OUT
    if leaf in FFN_NAMES[FFN_GATE_UP] or (leaf == "wi" and intermediate and out_features == 2 * intermediate):
        return FFN_GATE_UP  # ModernBERT's Wi: gate and up in one linear
    for role in (FFN_GATE, FFN_IN):
        if leaf in FFN_NAMES[role] and (not hidden or in_features == hidden):
            return role
    if leaf in FFN_NAMES[FFN_OUT] and (not hidden or out_features == hidden):
        return FFN_OUT
    return OTHER


def classify(path: str, in_features: int, out_features: int, hidden: int | None = None,
             intermediate: int | None = None, num_experts: int | None = None) -> str:
    """The role of the linear at ``path`` (relative to its block) of the given shape; ``hidden`` is the model's hidden
    size, ``intermediate`` its feed-forward width and ``num_experts`` its experts' count, where known."""
    parts = path.split(".")
    leaf = parts[-1].lower()
    group = _group(parts)
    if ROUTER_NAMES.search(leaf) and (out_features == 1 or (num_experts and out_features == num_experts)):
        return ROUTER
    if group == EXPERT:
        return EXPERT
    if group in ("attention", "cross"):
        role = _attention_role(leaf, in_features, out_features, hidden)
        if role == OTHER and leaf in UNAMBIGUOUS and UNAMBIGUOUS[leaf].startswith("ffn"):
            role = UNAMBIGUOUS[leaf]  # an MLP inside an "attention" layer wrapper (rare)
        return CROSS + role if group == "cross" and role != OTHER else role
    if group == "ffn":
        parent = parts[-2].lower() if len(parts) > 1 else ""
        return _ffn_role(leaf, parent, in_features, out_features, hidden, intermediate)
    return UNAMBIGUOUS.get(leaf, OTHER)


def _config_size(config, *names: str) -> int | None:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def model_sizes(model: nn.Module) -> dict[str, int | None]:
    """The sizes role detection reads from the model's config (None where the config does not say)."""
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", None) or config
    return {
        "hidden": _config_size(config, "hidden_size", "d_model", "n_embd", "dim"),
        "intermediate": _config_size(config, "intermediate_size", "d_ff", "ffn_dim", "encoder_ffn_dim", "n_inner",
                                     "hidden_dim", "ffn_hidden_size"),
        "num_experts": _config_size(config, "num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts"),
    }


INTERLEAVED_QKV = ("gpt_neox", "bloom", "falcon", "deberta", "codegen", "persimmon")  # heads interleaved in the rows


def qkv_slices(model: nn.Module, out_features: int) -> tuple[tuple[str, int, int], ...]:
    """The query, key and value rows of a fused projection of width ``out_features``, where the config's head counts
    account for exactly that width (multi-query and grouped-query included); () where they do not, or where the
    model type's layout interleaves the heads."""
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", None) or config
    if getattr(config, "model_type", None) in INTERLEAVED_QKV:
        return ()
    heads = _config_size(config, "num_attention_heads", "n_head", "num_heads")
    hidden = _config_size(config, "hidden_size", "d_model", "n_embd")
    if not heads or not hidden:
        return ()
    head_dim = _config_size(config, "head_dim") or hidden // heads
    query = heads * head_dim
    kv_heads = _config_size(config, "num_key_value_heads", "num_kv_heads", "n_head_kv")
    for kv in dict.fromkeys(x for x in (kv_heads and kv_heads * head_dim, head_dim, query) if x):
        if query + 2 * kv == out_features:
            return ((Q, 0, query), (K, query, query + kv), (V, query + kv, out_features))
    return ()


def find_blocks(model: nn.Module, block_lists: tuple[str, ...] | None = None,
                split_fused: bool = False) -> list[Block]:
    """Every block of ``model`` with its linears and their roles, in order (stacks in module order); with
    ``split_fused`` a fused query-key-value projection carries its parts' rows."""
    sizes = model_sizes(model)
    blocks = []
    for stack in find_block_lists(model, block_lists):
        for index, block in enumerate(model.get_submodule(stack)):
            linears = []
            for name, module in block.named_modules():
                if not name or not is_linear(module) or CONTAINER in name.split("."):
                    continue
                fan_in, fan_out = linear_shape(module)
                role = classify(name, fan_in, fan_out, **sizes)
                slices = qkv_slices(model, fan_out) if split_fused and role in (QKV, CROSS + QKV) else ()
                if role.startswith(CROSS):
                    slices = tuple((CROSS + part, a, b) for part, a, b in slices)
                linears.append(HostLinear(name, role, fan_in, fan_out, slices=slices))
            blocks.append(Block(f"{stack}.{index}", stack, tuple(linears)))
    return blocks


def find_heads(model: nn.Module) -> list[str]:
    """The task head: what a task model adds to its backbone (``classifier``, ``score``, ``classification_head``,
    DeBERTa's ``pooler`` ...) and the backbone's own pooler, which train with the adapters and are saved with them;
    the output embeddings (a language model's head, tied to the input embeddings) stay frozen."""
    prefix = getattr(model, "base_model_prefix", "")
    backbone = getattr(model, prefix, None) if prefix else None
    output_embeddings = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    heads = []
    if isinstance(backbone, nn.Module):
        if isinstance(getattr(backbone, "pooler", None), nn.Module):
            heads.append(f"{prefix}.pooler")
        for name, child in model.named_children():
            if child is backbone or child is output_embeddings or not any(True for _ in child.parameters()):
                continue
            heads.append(name)
    elif isinstance(getattr(model, "pooler", None), nn.Module):
        heads.append("pooler")
    return heads
