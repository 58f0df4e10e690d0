"""The adapter directory format, and nothing else: what is written where, atomically, and checked on reading.

    slaft_config.json          a JSON payload (built by the model): config, structure, phase, labels, checksum;
                               a multi-task pool adds its tasks, each task's structure and the sharing between them
    slaft_model.safetensors    the tensors: slaft modules and the task heads (a multi-task pool's per-task heads
                               under ``<head>.tasks.<task>.``), and while searching the search's state

The files carry slaft's names, not peft's ``adapter_config.json``: transformers treats a directory holding that
file as a peft adapter, which would break loading a merged export that keeps some modules beside its weights.
Files are written to a temporary name and renamed into place, so a crash never leaves a half-written checkpoint;
tensors are read through safetensors only (no pickle), and only after their SHA-256 matches the payload's.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

CONFIG_NAME = "slaft_config.json"
WEIGHTS_NAME = "slaft_model.safetensors"
LEGACY_MULTITASK = "multitask_config.json"  # slaft 0.2's multi-task layout (a pool file and a file per head)


class AdapterLoadError(ValueError):
    """An adapter directory that cannot be loaded; the message says why and what to do."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
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


def fingerprint(named_tensors: Iterable[tuple[str, torch.Tensor]]) -> str:
    """A hash of tensor names, shapes and a sample of values: adapters remember the base model they were built on."""
    digest = hashlib.sha256()
    for name, tensor in named_tensors:
        digest.update(f"{name}:{tuple(tensor.shape)};".encode())
        sample = tensor.detach().flatten()[:64].to(torch.float32).cpu()
        digest.update(sample.numpy().round(4).tobytes())
    return digest.hexdigest()[:32]


def write_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> str:
    """Write a safetensors file atomically; returns its SHA-256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp,
                  metadata={"format": "pt", "library": "slaft"})
        checksum = sha256_file(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return checksum


def write_adapter(directory: str | os.PathLike, tensors: dict[str, torch.Tensor], payload: dict) -> None:
    """Write the tensors, then the payload with their checksum; each file atomically."""
    directory = Path(directory)
    checksum = write_tensors(directory / WEIGHTS_NAME, tensors)
    atomic_write_text(directory / CONFIG_NAME, json.dumps({**payload, "weights_sha256": checksum}, indent=2) + "\n")


def read_payload(directory: str | os.PathLike, name: str = CONFIG_NAME,
                 missing_hint: str = "not a slaft adapter directory (save one with SlaftModel.save_pretrained or "
                                     "`slaft train`)") -> dict:
    """The JSON object in ``directory/name``; a clear error when it is missing or corrupted."""
    path = Path(directory) / name
    if not path.is_file():
        if (Path(directory) / LEGACY_MULTITASK).is_file():
            raise AdapterLoadError(f"{directory} holds a multi-task pool in slaft 0.2's layout ({LEGACY_MULTITASK}), "
                                   "which this version does not read: load it with slaft 0.2, or train it again.")
        raise AdapterLoadError(f"No {name} in {directory}: {missing_hint}.")
    try:
        payload = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AdapterLoadError(f"{path} is not valid JSON ({err}); the file is corrupted. Re-export the adapter.")
    if not isinstance(payload, dict):
        raise AdapterLoadError(f"{path} does not hold a JSON object; the file is corrupted. Re-export the adapter.")
    return payload


def verified_weights_path(directory: str | os.PathLike, payload: dict) -> Path:
    """The adapter's safetensors file, after its SHA-256 matched the payload's checksum (when one is recorded)."""
    path = Path(directory) / WEIGHTS_NAME
    if not path.is_file():
        raise AdapterLoadError(f"{path} is missing; the adapter directory is incomplete.")
    if payload.get("weights_sha256") and sha256_file(path) != payload["weights_sha256"]:
        raise AdapterLoadError(f"{path} does not match the checksum in {CONFIG_NAME}: the file is corrupted or "
                               "truncated. Re-export or re-download the adapter.")
    return path


def read_tensors(directory: str | os.PathLike, payload: dict) -> dict[str, torch.Tensor]:
    """The adapter's tensors, checksum verified."""
    path = verified_weights_path(directory, payload)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise AdapterLoadError(f"{path} cannot be read as safetensors ({err}); the file is corrupted.") from err


def is_complete_adapter(directory: str | os.PathLike) -> bool:
    """True when ``directory`` holds a saved adapter whose weights match their checksum."""
    try:
        payload = read_payload(directory)
        verified_weights_path(directory, payload)
    except AdapterLoadError:
        return False
    return bool(payload.get("weights_sha256"))


def is_multitask_dir(directory: str | os.PathLike) -> bool:
    """True when ``directory`` holds a saved multi-task pool (a payload that names tasks)."""
    try:
        return "tasks" in read_payload(directory)
    except AdapterLoadError:
        return False
