"""A run's output directory: checked before any compute, never overwritten by accident, resumable.

    <output_dir>/checkpoints/checkpoint-N/   Trainer checkpoints (slaft files + optimizer, scheduler, RNG state)
    <output_dir>/adapter/, metrics.json ...  the finished run
"""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

from .io import is_complete_adapter

RUN_PARTS = ("checkpoints", "adapter", "metrics.json", "structure.json", "structure.png", "untuned.json", "multitask",
             "tasks", "structures", "sharing.png")
TRAINER_STATE = "trainer_state.json"  # the Trainer writes it last: its presence marks a complete checkpoint


class OutputDirError(ValueError):
    """The output directory cannot take this run; the message says what to do."""


def safe_name(text: str) -> str:
    """A single path component made from user or data text: no separators, no '..', nothing exotic."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-")
    return cleaned or "run"


def prepare_output_dir(directory: Path, *, resume: bool, overwrite: bool, needed_bytes: int) -> None:
    """Create ``directory`` and make sure it can hold the run, before any model is trained."""
    existing = [part for part in RUN_PARTS if (directory / part).exists()]
    if existing and not (resume or overwrite):
        raise OutputDirError(
            f"{directory} already holds a run ({', '.join(existing)}). Pass --resume to continue it, --overwrite to "
            "start over, or choose another --output-dir."
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test-{uuid.uuid4().hex}"
        probe.write_bytes(b"0" * 1024)
        probe.unlink()
    except OSError as err:
        raise OutputDirError(f"Cannot write to the output directory {directory} ({err.strerror or err}). Choose a "
                             "writable --output-dir.") from err
    free = shutil.disk_usage(directory).free
    if free < needed_bytes:
        raise OutputDirError(f"Only {free / 2**20:,.0f} MiB free at {directory}; this run needs about "
                             f"{needed_bytes / 2**20:,.0f} MiB for checkpoints and outputs. Free space or pick another "
                             "--output-dir.")
    if overwrite and not resume:
        for part in existing:
            path = directory / part
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def is_complete_checkpoint(path: Path) -> bool:
    return (path / TRAINER_STATE).is_file() and is_complete_adapter(path)


def latest_checkpoint(directory: Path) -> str | None:
    """The newest complete ``checkpoint-N`` below ``directory`` (a half-written one from a kill is skipped)."""
    if not directory.is_dir():
        return None
    steps = []
    for child in directory.iterdir():
        match = re.fullmatch(r"checkpoint-(\d+)", child.name)
        if match and child.is_dir() and is_complete_checkpoint(child):
            steps.append((int(match.group(1)), child))
    return str(max(steps)[1]) if steps else None
