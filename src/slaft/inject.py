"""Build a structure into a frozen model: one ``slaft_modules`` dict per block, and forward hooks at the sites.

Every site uses the same mechanism, a forward hook on an existing module that adds the slaft module's delta to the
host's output, so the backbone's parameter names never change (its state dict stays a plain transformers one) and
removing a module is deleting its entry: the hook then passes the output through untouched. Which linear hosts a
site in which block, and what the site reads, comes from the blocks ``discovery.py`` found and the site table
(``sites.py``).
"""

from __future__ import annotations

import re

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from .config import ConfigError, SlaftConfig, closest
from .discovery import CONTAINER, Block
from .gates import UnitGate
from .modules import BottleneckAdapter, LowRankUpdate
from .sites import LORA, PARALLEL, SiteHosts, block_sites, is_path_site, site
from .structure import ModuleSpec, Structure


def matches(name: str, patterns) -> bool:
    """peft's rule for ``target_modules`` / ``exclude_modules``: a string is a regular expression the whole module
    name must match; a list holds names a module name must equal or end with (after a dot)."""
    if patterns is None:
        return False
    if isinstance(patterns, str):
        return patterns == "all-linear" or re.fullmatch(patterns, name) is not None
    return any(name == p or name.endswith("." + p) for p in patterns)


def _chosen_sites(block: Block, offered: dict[str, SiteHosts], config: SlaftConfig) -> list[str]:
    """The block's sites the config asks for: ``sites`` (default: a low-rank update on every linear), the low-rank
    ones narrowed to the linears ``target_modules`` names and without those ``exclude_modules`` names."""
    if config.sites is None:
        names = [name for name in offered if site(name).kind == LORA]
    else:  # the config's order (the order modules are built in)
        names = [name for name in config.sites if name in offered]
    kept = []
    for name in names:
        if site(name).kind == LORA:
            full = f"{block.path}.{offered[name].host.path}"
            if config.target_modules is not None and not matches(full, config.target_modules):
                continue
            if matches(full, config.exclude_modules):
                continue
        kept.append(name)
    return kept


def candidate_structure(blocks: list[Block], config: SlaftConfig) -> Structure:
    """The full candidate space the config asks for, as data."""
    chosen = config.layers if config.layers is not None else tuple(range(len(blocks)))
    bad = sorted(i for i in chosen if i >= len(blocks))
    if bad:
        raise ConfigError(f"Layer(s) {bad} out of range: the model has {len(blocks)} blocks, numbered 0 to "
                          f"{len(blocks) - 1}. Fix --layers.")
    offered = [block_sites(block) for block in blocks]
    if config.sites is not None:
        everywhere = {name for sites in offered for name in sites}
        missing = [s for s in config.sites if s not in everywhere]
        if missing:
            names = sorted(everywhere, key=lambda n: (site(n).kind == LORA, n))
            hint = "".join(closest(m, names) for m in missing[:1])
            raise ConfigError(f"Site(s) {missing} exist in no block of this model.{hint} Its blocks offer {names}. "
                              "Remove them from --sites (or name linears with --target-modules).")
    modules = []
    for i in sorted(set(chosen)):
        for name in _chosen_sites(blocks[i], offered[i], config):
            host, out_features = offered[i][name].host, offered[i][name].out_features
            if site(name).kind == LORA:
                widest = min(host.in_features, out_features)
                rank = config.lora_rank
                if config.sites is None and is_path_site(name) and rank > widest:  # Mamba's narrow dt_proj
                    rank = widest - widest % config.rank_block
                    if not rank:
                        continue
                spec = ModuleSpec(i, name, rank, host.in_features, out_features, host=host.path)
            else:
                widest = host.out_features
                spec = ModuleSpec(i, name, config.adapter_width, widest, widest, tuple(config.activations),
                                  host=host.path)
            if spec.width > widest:
                what = "lora_rank" if spec.kind == LORA else "adapter_width"
                raise ConfigError(f"{what}={spec.width} is more than {name} in block {i} can use (at most "
                                  f"{widest}: its linear {host.path} is {host.in_features} -> {host.out_features}); "
                                  "lower it.")
            modules.append(spec)
    if not modules:
        raise ConfigError("The candidate space is empty: no linear of any block fits --sites, --target-modules and "
                          "--exclude-modules together. Widen them.")
    return Structure(modules=modules, discrete=False, num_layers=len(blocks))


def build_module(spec: ModuleSpec, config: SlaftConfig, *, gated: bool) -> nn.Module:
    """A module for ``spec``: gated over its units while searching, plain once the structure is decided."""
    lora = spec.kind == LORA
    gate = None
    if gated:
        block = config.rank_block if lora else config.width_block
        gate = UnitGate(spec.width // block, block, hard_concrete=config.allocator == "gates",
                        beta=config.gate_beta, limits=config.gate_limits)
    if lora:
        return LowRankUpdate(spec.in_features, spec.out_features, spec.width,
                             scaling=config.lora_alpha / config.lora_rank, dropout=config.dropout, gate=gate)
    return BottleneckAdapter(spec.in_features, spec.width, spec.activations, dropout=config.dropout,
                             hard_choice=config.hard_choice, gate=gate)


DISABLED = "slaft_disabled"  # a container attribute: True while disable_adapter() bypasses its modules


def _add_delta(container: nn.ModuleDict, name: str, x, out, rows: tuple[int, int] | None = None):
    if name not in container or getattr(container, DISABLED, False):
        return out
    module = container[name]
    x = x.to(next(module.parameters()).dtype)
    if rows is not None:  # a part of a fused projection: its rows of the output only
        first, end = rows
        part = out[..., first:end] + module(x).to(out.dtype)
        return torch.cat([out[..., :first], part, out[..., end:]], dim=-1)
    if isinstance(module, LowRankUpdate):
        return module(x, out)  # adds into out in one GEMM
    return out + module(x).to(out.dtype)


class _AddDelta:
    """The forward hook of one site: adds the module's delta (of the host's input or output) to the host's output.
    An object, not a closure, so ``copy.deepcopy`` of a model gives the copy hooks on its own modules."""

    def __init__(self, container: nn.ModuleDict, key: str, reads_output: bool,
                 rows: tuple[int, int] | None = None) -> None:
        self.container, self.key, self.reads_output, self.rows = container, key, reads_output, rows

    def __call__(self, _module, args, output):
        return _add_delta(self.container, self.key, output if self.reads_output else args[0], output, self.rows)


class _ParallelDelta:
    """The two hooks of a parallel adapter: remember the source linear's input, add the delta to the sink's output."""

    def __init__(self, container: nn.ModuleDict, key: str) -> None:
        self.container, self.key, self.cache = container, key, {}

    def remember_input(self, _module, args):
        self.cache["x"] = args[0]

    def add(self, _module, _args, output):
        x = self.cache.pop("x", None)
        return output if x is None else _add_delta(self.container, self.key, x, output)


def _attach_parallel(block: nn.Module, hosts: SiteHosts, container: nn.ModuleDict, key: str):
    source, sink = block.get_submodule(hosts.source.path), block.get_submodule(hosts.host.path)
    hook = _ParallelDelta(container, key)
    return [source.register_forward_pre_hook(hook.remember_input), sink.register_forward_hook(hook.add)]


def module_key(name: str) -> str:
    """The key of site ``name``'s module in its block's ``slaft_modules`` (module names cannot hold dots)."""
    return name.replace(".", "-")


def site_of_key(key: str) -> str:
    return key.replace("-", ".")


def block_module(model: nn.Module, block: Block) -> nn.Module:
    return model.get_submodule(block.path)


def host_module(model: nn.Module, block: Block, name: str) -> nn.Module:
    """The linear that hosts site ``name`` in ``block``."""
    return block_module(model, block).get_submodule(block_sites(block)[name].host.path)


def attach(model: nn.Module, blocks: list[Block], structure: Structure, config: SlaftConfig,
           *, gated: bool) -> list[RemovableHandle]:
    """Create the modules of ``structure`` inside ``model`` and register their hooks. Returns the hook handles."""
    handles: list[RemovableHandle] = []
    by_layer: dict[int, list[ModuleSpec]] = {}
    for spec in structure.modules:
        by_layer.setdefault(spec.layer, []).append(spec)
    for index, specs in sorted(by_layer.items()):
        block, offered = block_module(model, blocks[index]), block_sites(blocks[index])
        container = nn.ModuleDict()
        block.add_module(CONTAINER, container)
        ref = next(block.parameters())
        for spec in specs:
            container[module_key(spec.site)] = build_module(spec, config, gated=gated).to(device=ref.device)
        # Low-rank hooks first: a serial adapter on the same linear must see the updated output.
        for spec in sorted(specs, key=lambda s: s.kind != LORA):
            found = offered.get(spec.site)
            if found is None or (spec.host and spec.host != found.host.path) or \
                    (spec.kind == LORA and (spec.in_features, spec.out_features) !=
                     (found.host.in_features, found.out_features)):
                raise ConfigError(f"Block {index} of this model has no site {spec.site!r} at {spec.host or 'its'} "
                                  f"linear of shape {spec.in_features} -> {spec.out_features}: the structure was "
                                  "built on another model.")
            where = site(spec.site)
            if where.kind == PARALLEL:
                handles.extend(_attach_parallel(block, offered[spec.site], container, module_key(spec.site)))
            else:
                host = block.get_submodule(offered[spec.site].host.path)
                handles.append(host.register_forward_hook(_AddDelta(container, module_key(spec.site),
                                                                    where.reads == "output", found.rows)))
    return handles


def iter_modules(model: nn.Module, blocks: list[Block]):
    """(layer index, site, module) for every slaft module currently in the model."""
    for index, block in enumerate(blocks):
        container = getattr(block_module(model, block), CONTAINER, None)
        if container is None:
            continue
        for key, module in container.items():
            yield index, site_of_key(key), module


def set_enabled(model: nn.Module, blocks: list[Block], enabled: bool) -> None:
    """Bypass (``enabled`` False) or restore every slaft module of ``model``: their hooks pass the host's output
    through while bypassed."""
    for block in blocks:
        container = getattr(block_module(model, block), CONTAINER, None)
        if container is not None:
            setattr(container, DISABLED, not enabled)


def remove_module(model: nn.Module, blocks: list[Block], layer: int, name: str) -> None:
    """Delete one module; its hook then passes the host's output through."""
    del getattr(block_module(model, blocks[layer]), CONTAINER)[module_key(name)]


def restore_module(model: nn.Module, blocks: list[Block], layer: int, name: str, module: nn.Module) -> None:
    """Put a module ``remove_module`` took out back in its place; its hook (still registered) applies it again."""
    getattr(block_module(model, blocks[layer]), CONTAINER)[module_key(name)] = module


def detach(model: nn.Module, blocks: list[Block], handles: list[RemovableHandle]) -> None:
    """Remove every hook and every ``slaft_modules`` dict: the plain model again."""
    for handle in handles:
        handle.remove()
    handles.clear()
    for block in blocks:
        module = block_module(model, block)
        if hasattr(module, CONTAINER):
            delattr(module, CONTAINER)
