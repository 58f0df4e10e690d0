"""The multi-task directory format: one shared pool file, one head file per task, one JSON payload.

    multitask_config.json      config, tasks, phase, the pool's and every task's structure, checksums
    pool.safetensors           shared pool modules (with the tasks' component masks), shared head parts
    heads/<task>.safetensors   each task's own head, named as in a single-task model

Every file is written atomically, the payload last (it holds the others' checksums), so an interrupted save leaves
either the old complete set or files the payload does not vouch for.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..io import (AdapterLoadError, atomic_write_text, read_payload, read_verified_tensors, write_adapter,
                  write_tensors)
from ..version import __version__

MULTITASK_CONFIG = "multitask_config.json"
POOL_FILE = "pool.safetensors"
HEADS_DIR = "heads"
FORMAT = 1


def is_multitask_dir(directory: str | os.PathLike) -> bool:
    return (Path(directory) / MULTITASK_CONFIG).is_file()


def write_multitask(directory: str | os.PathLike, pool: dict[str, torch.Tensor],
                    heads: dict[str, dict[str, torch.Tensor]], payload: dict) -> None:
    directory = Path(directory)
    checksums = {POOL_FILE: write_tensors(directory / POOL_FILE, pool)}
    for task, tensors in heads.items():
        name = f"{HEADS_DIR}/{task}.safetensors"
        checksums[name] = write_tensors(directory / name, tensors)
    payload = {"slaft_version": __version__, "format": FORMAT, **payload, "sha256": checksums}
    atomic_write_text(directory / MULTITASK_CONFIG, json.dumps(payload, indent=2) + "\n")


def read_multitask(directory: str | os.PathLike, tasks: list[str] | None, payload: dict | None = None
                   ) -> tuple[dict, dict[str, torch.Tensor], dict[str, dict[str, torch.Tensor]]]:
    """(payload, pool tensors, heads per task); with ``tasks`` None, the payload alone (no tensors read)."""
    directory = Path(directory)
    if payload is None:
        payload = read_payload(directory, MULTITASK_CONFIG, "not a slaft multi-task directory (train one with "
                                                            "`slaft train --tasks ...`)")
        if payload.get("format") != FORMAT:
            raise AdapterLoadError(f"{directory / MULTITASK_CONFIG} is not a multi-task payload of format {FORMAT}.")
    if tasks is None:
        return payload, {}, {}
    checksums = payload.get("sha256", {})
    pool = read_verified_tensors(directory / POOL_FILE, checksums.get(POOL_FILE))
    heads = {}
    for task in tasks:
        name = f"{HEADS_DIR}/{task}.safetensors"
        heads[task] = read_verified_tensors(directory / name, checksums.get(name))
    return payload, pool, heads


def write_single_task(directory: str | os.PathLike, tensors: dict[str, torch.Tensor], payload: dict) -> Path:
    """A plain single-task adapter directory (the format ``SlaftModel.from_pretrained`` reads)."""
    write_adapter(directory, tensors, {"slaft_version": __version__, **payload})
    return Path(directory)


def is_complete_multitask(directory: str | os.PathLike) -> bool:
    """True when ``directory`` holds a multi-task save whose files all match their checksums."""
    try:
        payload, _, _ = read_multitask(directory, None)
        tasks = [t["name"] for t in payload["tasks"]]
        read_multitask(directory, tasks, payload)
    except (AdapterLoadError, KeyError, TypeError):
        return False
    return bool(payload.get("sha256"))
