"""Warm start: a peft LoRA adapter's weights as the first ranks of slaft's low-rank candidates.

peft's update on a linear is (alpha / r) · B A (alpha / √r with rsLoRA). slaft's candidate there has a larger rank
r_c and the fixed scale s = alpha_c / r_c, so the adapter's A fills the candidate's first r rows and its B, rescaled
by (alpha / r) / s, the first r columns; the candidate's other ranks keep B = 0. Before training, the slaft model
therefore computes what the peft model computes (the other candidates start at zero too), and the search begins
from a known-good structure with its evidence already in the importances. The adapter's saved head (peft's
``modules_to_save``) is copied when the slaft model trains the same module. peft's own readers read the adapter
(safetensors only: a pickled ``.bin`` adapter is refused).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch

from .hub import resolve_adapter
from .io import AdapterLoadError
from .sites import LORA, block_sites, site

PEFT_PREFIX = "base_model.model."
SAFE_WEIGHTS = "adapter_model.safetensors"


class WarmStartError(AdapterLoadError):
    """The peft adapter cannot start this slaft model; the message says why and what to do."""


def _pattern_value(patterns: dict, name: str, default):
    for key, value in patterns.items():
        if re.fullmatch(rf"(.*\.)?{key}", name):
            return value
    return default


def _peft():
    try:
        import peft
    except ImportError as err:
        raise WarmStartError("A warm start reads the adapter with peft, which is not installed: pip install "
                             "'slaft[peers]' (or pip install peft).") from err
    return peft


def _read(location: str | Path) -> tuple[Path, dict, dict[str, torch.Tensor]]:
    """(directory, config as a dict, tensors) of the peft adapter at ``location`` (a directory or a hub id), read
    by peft's own readers: ``PeftConfig.from_pretrained`` and ``load_peft_weights``."""
    peft = _peft()
    from peft.utils import load_peft_weights

    directory = resolve_adapter(location)
    if not (directory / "adapter_config.json").is_file() or not (directory / SAFE_WEIGHTS).is_file():
        raise WarmStartError(f"{directory} is not a peft adapter directory: it needs adapter_config.json and "
                             f"{SAFE_WEIGHTS} (a .bin adapter is pickle and is not read; re-save it with "
                             "safe_serialization=True).")
    try:
        config = peft.PeftConfig.from_pretrained(str(directory))
        tensors = load_peft_weights(str(directory), device="cpu")
    except (OSError, ValueError, TypeError) as err:
        raise WarmStartError(f"Could not read the peft adapter in {directory} ({err}).") from err
    peft_type = str(getattr(config.peft_type, "value", config.peft_type))
    if peft_type != "LORA":
        raise WarmStartError(f"{directory} holds a {peft_type} adapter; only LoRA adapters can start slaft's "
                             "low-rank candidates.")
    if getattr(config, "use_dora", False):
        raise WarmStartError(f"{directory} is a DoRA adapter (its magnitude vectors have no slaft counterpart); "
                             "start from a plain LoRA adapter.")
    return directory, config.to_dict(), tensors


def init_from_peft(model, directory: str | Path) -> str:
    """Copy a peft LoRA adapter (its directory, or a hub id) into the candidate space of a searching SlaftModel;
    returns a one-line report. Needs peft, which reads the adapter."""
    directory, config, tensors = _read(directory)
    if model.discrete:
        raise WarmStartError("Warm starts begin a search: call init_from_peft before training, on a model that is "
                             "still searching.")
    hosts = {f"{model.blocks[layer].path}.{offered.host.path}": (layer, name)
             for layer, block in enumerate(model.blocks) for name, offered in block_sites(block).items()
             if site(name).kind == LORA and offered.rows is None}  # a split fused projection has no peft twin
    modules = {(layer, name): module for layer, name, module in model.slaft_modules()}
    params = dict(model.base_model.named_parameters())
    copied, heads = 0, 0
    with torch.no_grad():
        for key, tensor in tensors.items():
            name = key.removeprefix(PEFT_PREFIX)
            match = re.fullmatch(r"(.+)\.lora_([AB])\.weight", name)
            if match is None or match.group(1) not in hosts:
                if name in params and model.is_head(name):
                    if params[name].shape != tensor.shape:
                        raise WarmStartError(f"The adapter's {name} has shape {tuple(tensor.shape)}, the model's "
                                             f"{tuple(params[name].shape)}: was it trained with another label count?")
                    params[name].copy_(tensor)
                    heads += 1
                    continue
                raise WarmStartError(f"The adapter tensor {key} has no place in this slaft model (not a LoRA A/B on "
                                     "a linear of a transformer block, nor a head slaft trains).")
            path, which = match.group(1), match.group(2)
            layer, site_name = hosts[path]
            module = modules.get((layer, site_name))
            if module is None:
                raise WarmStartError(f"The adapter has LoRA on {path}, which is not in this slaft candidate space "
                                     f"(block {layer}, site {site_name}); add it with --sites, --target-modules or "
                                     "--layers.")
            if which == "B":
                continue  # copied with its A
            a, b = tensor, tensors[key[:-len("lora_A.weight")] + "lora_B.weight"]
            rank = a.shape[0]
            if rank > module.width:
                raise WarmStartError(f"The adapter's rank {rank} on {path} is larger than slaft's "
                                     f"candidate rank {module.width}; pass --lora-rank {rank} or more.")
            alpha = _pattern_value(config.get("alpha_pattern") or {}, path,
                                   config.get("lora_alpha", rank))
            scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
            module.lora_A[:rank].copy_(a)
            module.lora_B[:, :rank].copy_(b * (scale / module.scaling))
            module.lora_B[:, rank:].zero_()
            copied += 1
    return f"warm start from {directory}: {copied} LoRA module(s) and {heads} head tensor(s) copied"
