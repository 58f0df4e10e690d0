"""save_pretrained / from_pretrained: a compact adapter directory, laid out as peft lays out its own.

The files carry slaft's names, not peft's ``adapter_config.json``: transformers treats a directory holding that
file as a peft adapter, which would break loading a merged export that keeps some modules beside its weights.

    slaft_config.json          SlaftConfig, the structure, phase, heads, base-model fingerprint, file checksum
    slaft_model.safetensors    only slaft tensors and the task head (names relative to the base model)

Files are written to a temporary name and renamed into place, so a crash never leaves a half-written checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from . import __version__
from .config import SlaftConfig
from .inject import CONTAINER
from .structure import Structure

CONFIG_NAME = "slaft_config.json"
WEIGHTS_NAME = "slaft_model.safetensors"


class AdapterLoadError(ValueError):
    """An adapter directory that cannot be loaded onto this model; the message says why and what to do."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def base_fingerprint(model: nn.Module, skip=lambda name: False) -> str:
    """A hash of the base model's parameter names, shapes and a sample of its values: adapters remember it."""
    digest = hashlib.sha256()
    for name, param in model.named_parameters():
        if CONTAINER in name or skip(name):
            continue
        digest.update(f"{name}:{tuple(param.shape)};".encode())
        sample = param.detach().flatten()[:64].to(torch.float32).cpu()
        digest.update(sample.numpy().round(4).tobytes())
    return digest.hexdigest()[:32]


def adapter_state_dict(model) -> dict[str, torch.Tensor]:
    """The tensors that make a SlaftModel what it is beyond its base: slaft modules and the task head."""
    state = {
        name: tensor.detach().contiguous().cpu()
        for name, tensor in model.base_model.state_dict().items()
        if CONTAINER in name.split(".") or model._is_head(name)
    }
    if model.target is not None:
        state["slaft_lagrangian"] = model.slaft_lagrangian.detach().cpu()
    return state


def save_slaft(model, save_directory: str | os.PathLike, *, extra: dict | None = None) -> None:
    directory = Path(save_directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights_path = directory / WEIGHTS_NAME
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{WEIGHTS_NAME}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(adapter_state_dict(model), tmp, metadata={"format": "pt", "library": "slaft"})
        checksum = sha256_file(Path(tmp))
        os.replace(tmp, weights_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    payload = {
        "slaft_version": __version__,
        "config": model.slaft_config.to_dict(),
        "structure": model.structure_data.to_dict(),
        "candidate": model.candidate.to_dict(),
        "phase": "discrete" if model.discrete else "search",
        "merged": bool(model.merged),
        "heads": model.head_names,
        "num_labels": getattr(model.config, "num_labels", None),
        "base_fingerprint": base_fingerprint(model.base_model, model._is_head),
        "weights_sha256": checksum,
        "schedule_step": model.schedule_step,
        **(extra or {}),
    }
    atomic_write_text(directory / CONFIG_NAME, json.dumps(payload, indent=2) + "\n")


def read_adapter_config(directory: str | os.PathLike) -> dict:
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise AdapterLoadError(f"No {CONFIG_NAME} in {directory}: not a slaft adapter directory (save one with "
                               "SlaftModel.save_pretrained or `slaft train`).")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise AdapterLoadError(f"{path} is not valid JSON ({err}); the file is corrupted. Re-export the adapter.")


def _verified_weights(directory: Path, meta: dict) -> Path:
    weights_path = directory / WEIGHTS_NAME
    if not weights_path.is_file():
        raise AdapterLoadError(f"{weights_path} is missing; the adapter directory is incomplete.")
    if meta.get("weights_sha256") and sha256_file(weights_path) != meta["weights_sha256"]:
        raise AdapterLoadError(f"{weights_path} does not match the checksum in {CONFIG_NAME}: the file is corrupted "
                               "or truncated. Re-export or re-download the adapter.")
    return weights_path


def load_adapter_weights(model, directory: str | os.PathLike, meta: dict | None = None) -> None:
    """Load saved slaft tensors (and head) into a SlaftModel of the same structure, checking checksum and fit."""
    directory = Path(directory)
    meta = meta or read_adapter_config(directory)
    weights_path = _verified_weights(directory, meta)
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError) as err:
        raise AdapterLoadError(f"{weights_path} cannot be read as safetensors ({err}); the file is corrupted.")
    lagrangian = state.pop("slaft_lagrangian", None)
    if lagrangian is not None and model.target is not None:
        model.slaft_lagrangian.data.copy_(lagrangian)
    expected = set(adapter_state_dict(model)) - {"slaft_lagrangian"}
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        raise AdapterLoadError(f"{weights_path} does not fit its structure: missing {sorted(missing)[:5]}, "
                               f"unexpected {sorted(unexpected)[:5]}.")
    model.base_model.load_state_dict(state, strict=False)
    model.schedule_step = int(meta.get("schedule_step", 0))


def load_slaft(base_model: nn.Module, directory: str | os.PathLike, *, check_base: bool = True):
    """Rebuild the saved structure into ``base_model`` and load its tensors (safetensors only, never pickle)."""
    from .model import SlaftModel

    directory = Path(directory)
    meta = read_adapter_config(directory)
    _verified_weights(directory, meta)
    try:
        config = SlaftConfig.from_dict(meta["config"])
        structure = Structure.from_dict(meta["structure"])
    except (KeyError, TypeError, ValueError) as err:
        raise AdapterLoadError(f"{directory / CONFIG_NAME} is not a valid slaft adapter config ({err}).") from err
    model = SlaftModel(base_model, config, structure if meta.get("phase") == "discrete" else None)
    if check_base:
        found = base_fingerprint(base_model, model._is_head)
        if meta.get("base_fingerprint") and found != meta["base_fingerprint"]:
            raise AdapterLoadError(
                f"The adapters in {directory} were trained on a different base model (fingerprint "
                f"{meta['base_fingerprint']}, this model {found}; base recorded: "
                f"{config.base_model_name_or_path!r}). Load them onto the model they were trained on."
            )
    load_adapter_weights(model, directory, meta)
    return model
