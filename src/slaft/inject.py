"""Build a structure into a frozen model: one ``slaft_modules`` dict per block, and forward hooks at the sites.

Every site uses the same mechanism, a forward hook on an existing module that adds the slaft module's delta to the
host's output, so the backbone's parameter names never change (its state dict stays a plain transformers one) and
removing a module is deleting its entry: the hook then passes the output through untouched. Which module hosts a
site, and what the site reads, comes from the site table (``sites.py``).
"""

from __future__ import annotations

from torch import nn
from torch.utils.hooks import RemovableHandle

from .architectures import ArchitectureSpec, find_layers, find_linear
from .config import DEFAULT_SITES, ConfigError, SlaftConfig
from .gates import UnitGate
from .modules import BottleneckAdapter, LowRankUpdate
from .sites import LORA, PARALLEL, SITES
from .structure import ModuleSpec, Structure

CONTAINER = "slaft_modules"


def candidate_structure(model: nn.Module, arch: ArchitectureSpec, config: SlaftConfig) -> Structure:
    """The full candidate space the config asks for, as data."""
    layers = find_layers(model, arch)
    possible = arch.sites()
    if config.sites is None:
        sites = tuple(s for s in DEFAULT_SITES if s in possible)
    else:
        sites = config.sites
        missing = [s for s in sites if s not in possible]
        if missing:
            raise ConfigError(f"Site(s) {missing} do not exist in {arch.name!r} models, which offer {possible}. "
                              "Remove them from --sites.")
    chosen = config.layers if config.layers is not None else tuple(range(len(layers)))
    bad = sorted(i for i in chosen if i >= len(layers))
    if bad:
        raise ConfigError(f"Layer(s) {bad} out of range: the model has {len(layers)} blocks, numbered 0 to "
                          f"{len(layers) - 1}. Fix --layers.")
    modules = []
    for i in sorted(set(chosen)):
        for site in sites:
            host = find_linear(layers[i], arch, SITES[site].host)
            if SITES[site].kind == LORA:
                widest = min(host.in_features, host.out_features)
                spec = ModuleSpec(i, site, config.lora_rank, host.in_features, host.out_features)
            else:
                widest = host.out_features
                spec = ModuleSpec(i, site, config.adapter_width, widest, widest, tuple(config.activations))
            if spec.width > widest:
                what = "lora_rank" if spec.kind == LORA else "adapter_width"
                raise ConfigError(f"{what}={spec.width} is more than {site} in {arch.name!r} models can use (at most "
                                  f"{widest}: its linear is {host.in_features} -> {host.out_features}); lower it.")
            modules.append(spec)
    return Structure(modules=modules, discrete=False, num_layers=len(layers))


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


def _add_delta(container: nn.ModuleDict, site: str, x, out):
    if site not in container:
        return out
    module = container[site]
    x = x.to(next(module.parameters()).dtype)
    if isinstance(module, LowRankUpdate):
        return module(x, out)  # adds into out in one GEMM
    return out + module(x).to(out.dtype)


def _hook(container: nn.ModuleDict, site: str, reads_output: bool):
    def hook(_module, args, output):
        return _add_delta(container, site, output if reads_output else args[0], output)

    return hook


def _attach_parallel(block: nn.Module, arch: ArchitectureSpec, container: nn.ModuleDict, site: str):
    source, sink = block.get_submodule(arch.ffn_input), find_linear(block, arch, SITES[site].host)
    if source is sink:
        return [sink.register_forward_hook(_hook(container, site, reads_output=False))]
    cache: dict[str, object] = {}

    def remember_input(_module, args):
        cache["x"] = args[0]

    def add_parallel(_module, _args, output):
        x = cache.pop("x", None)
        return output if x is None else _add_delta(container, site, x, output)

    return [source.register_forward_pre_hook(remember_input), sink.register_forward_hook(add_parallel)]


def attach(model: nn.Module, arch: ArchitectureSpec, structure: Structure, config: SlaftConfig,
           *, gated: bool) -> list[RemovableHandle]:
    """Create the modules of ``structure`` inside ``model`` and register their hooks. Returns the hook handles."""
    layers = find_layers(model, arch)
    handles: list[RemovableHandle] = []
    by_layer: dict[int, list[ModuleSpec]] = {}
    for spec in structure.modules:
        by_layer.setdefault(spec.layer, []).append(spec)
    for index, specs in sorted(by_layer.items()):
        block = layers[index]
        container = nn.ModuleDict()
        block.add_module(CONTAINER, container)
        ref = next(block.parameters())
        for spec in specs:
            container[spec.site] = build_module(spec, config, gated=gated).to(device=ref.device)
        # Low-rank hooks first: a serial adapter on the same linear must see the updated output.
        for spec in sorted(specs, key=lambda s: s.kind != LORA):
            site = SITES[spec.site]
            if site.kind == PARALLEL:
                handles.extend(_attach_parallel(block, arch, container, spec.site))
            else:
                host = find_linear(block, arch, site.host)
                handles.append(host.register_forward_hook(_hook(container, spec.site, site.reads == "output")))
    return handles


def iter_modules(model: nn.Module, arch: ArchitectureSpec):
    """(layer index, site, module) for every slaft module currently in the model."""
    for index, block in enumerate(find_layers(model, arch)):
        container = getattr(block, CONTAINER, None)
        if container is None:
            continue
        for site, module in container.items():
            yield index, site, module


def remove_module(model: nn.Module, arch: ArchitectureSpec, layer: int, site: str) -> None:
    """Delete one module; its hook then passes the host's output through."""
    del getattr(find_layers(model, arch)[layer], CONTAINER)[site]


def detach(model: nn.Module, arch: ArchitectureSpec, handles: list[RemovableHandle]) -> None:
    """Remove every hook and every ``slaft_modules`` dict: the plain model again."""
    for handle in handles:
        handle.remove()
    handles.clear()
    for block in find_layers(model, arch):
        if hasattr(block, CONTAINER):
            delattr(block, CONTAINER)
