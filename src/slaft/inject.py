"""Build a structure into a frozen model: one ``slaft_modules`` dict per block, and forward hooks at the sites.

Every site uses the same mechanism, a forward hook on an existing module that adds the slaft module's delta to
the host's output, so the backbone's parameter names never change (its state dict stays a plain transformers
one) and removing a module is deleting its entry: the hook then passes the output through untouched.

* low-rank sites: hook on the target linear, ``out + lora(x)``
* serial adapters: hook on the attention / FFN output linear, ``out + adapter(out)`` (before the residual add)
* parallel adapter: ``ffn_out + adapter(ffn_in)``, the FFN input taken by a pre-hook when it is another module
"""

from __future__ import annotations

from torch import nn
from torch.utils.hooks import RemovableHandle

from .architectures import ArchitectureSpec, find_layers
from .config import BOTTLENECK_SITES, PARALLEL_SITES, SlaftConfig
from .modules import BottleneckAdapter, LowRankUpdate
from .structure import ModuleSpec, Structure

CONTAINER = "slaft_modules"


def _linear(block: nn.Module, path: str) -> nn.Linear:
    module = block.get_submodule(path)
    if not isinstance(module, nn.Linear):
        raise TypeError(f"slaft expects an nn.Linear at {path!r}, found {type(module).__name__}.")
    return module


def available_sites(arch: ArchitectureSpec) -> tuple[str, ...]:
    return BOTTLENECK_SITES + tuple(arch.lora_targets)


def candidate_structure(model: nn.Module, arch: ArchitectureSpec, config: SlaftConfig) -> Structure:
    """The full candidate space the config asks for, as data."""
    layers = find_layers(model, arch)
    possible = available_sites(arch)
    sites = config.sites if config.sites is not None else possible
    missing = [s for s in sites if s not in possible]
    if missing:
        raise ValueError(
            f"Site(s) {missing} do not exist in architecture {arch.name!r}, which offers {possible}. "
            "Remove them from `sites`."
        )
    chosen_layers = config.layers if config.layers is not None else tuple(range(len(layers)))
    bad = [i for i in chosen_layers if i >= len(layers)]
    if bad:
        raise ValueError(f"Layer(s) {bad} out of range: the model has {len(layers)} blocks (0..{len(layers) - 1}).")
    modules = []
    for i in chosen_layers:
        block = layers[i]
        for site in sites:
            if site in BOTTLENECK_SITES:
                dim = _linear(block, arch.ffn_output).out_features
                modules.append(ModuleSpec(i, site, config.adapter_width, dim, dim, tuple(config.activations)))
            else:
                target = _linear(block, arch.lora_targets[site])
                rank = min(config.lora_rank, target.in_features, target.out_features)
                modules.append(ModuleSpec(i, site, rank, target.in_features, target.out_features))
    return Structure(modules=modules, discrete=False, num_layers=len(layers))


def build_module(spec: ModuleSpec, config: SlaftConfig, *, gated: bool) -> nn.Module:
    gate_kwargs = {"init_keep": config.gate_init_keep, "beta": config.gate_beta, "limits": config.gate_limits}
    if spec.kind == "bottleneck":
        return BottleneckAdapter(
            spec.in_features, spec.width, spec.activations, gated=gated, dropout=config.adapter_dropout,
            hard_choice=config.hard_choice, gate_kwargs=gate_kwargs,
        )
    scaling = config.lora_alpha / config.lora_rank if gated else 1.0  # discrete modules carry the scale in B
    return LowRankUpdate(
        spec.in_features, spec.out_features, spec.width, scaling=scaling, gated=gated,
        dropout=config.adapter_dropout, gate_kwargs=gate_kwargs,
    )


def _delta(container: nn.ModuleDict, site: str, x, out):
    if site not in container:
        return out
    module = container[site]
    weight = next(module.parameters())
    return out + module(x.to(weight.dtype)).to(out.dtype)


def _hook_add(container: nn.ModuleDict, site: str, use_output: bool):
    def hook(_module, args, output):
        return _delta(container, site, output if use_output else args[0], output)

    return hook


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
        for spec in specs:
            if spec.kind == "lora":
                host = _linear(block, arch.lora_targets[spec.site])
                handles.append(host.register_forward_hook(_hook_add(container, spec.site, use_output=False)))
        for spec in specs:
            if spec.site == "attn_adapter":
                host = block.get_submodule(arch.attn_output)
                handles.append(host.register_forward_hook(_hook_add(container, spec.site, use_output=True)))
            elif spec.site == "ffn_adapter":
                host = block.get_submodule(arch.ffn_output)
                handles.append(host.register_forward_hook(_hook_add(container, spec.site, use_output=True)))
            elif spec.site in PARALLEL_SITES:
                handles.extend(_attach_parallel(block, arch, container, spec.site))
    return handles


def _attach_parallel(block: nn.Module, arch: ArchitectureSpec, container: nn.ModuleDict, site: str):
    source, sink = block.get_submodule(arch.ffn_input), block.get_submodule(arch.ffn_output)
    if source is sink:
        return [sink.register_forward_hook(_hook_add(container, site, use_output=False))]
    cache: dict[str, object] = {}

    def remember_input(_module, args):
        cache["x"] = args[0]

    def add_parallel(_module, _args, output):
        x = cache.pop("x", None)
        return output if x is None else _delta(container, site, x, output)

    return [source.register_forward_pre_hook(remember_input), sink.register_forward_hook(add_parallel)]


def iter_modules(model: nn.Module, arch: ArchitectureSpec):
    """(layer index, site, module) for every slaft module currently in the model."""
    for index, block in enumerate(find_layers(model, arch)):
        container = getattr(block, CONTAINER, None)
        if container is None:
            continue
        for site, module in container.items():
            yield index, site, module


def detach(model: nn.Module, arch: ArchitectureSpec, handles: list[RemovableHandle]) -> None:
    """Remove every hook and every ``slaft_modules`` dict: the plain model again."""
    for handle in handles:
        handle.remove()
    handles.clear()
    for block in find_layers(model, arch):
        if hasattr(block, CONTAINER):
            delattr(block, CONTAINER)
