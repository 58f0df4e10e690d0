"""The machine and library versions a record was measured with, so tables say what the numbers mean."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch

LIBRARIES = ("slaft", "torch", "transformers", "peft", "adapters", "accelerate", "datasets")


def version(distribution: str) -> str | None:
    """The installed distribution's version; slaft's from the code that runs (an editable install's metadata keeps
    the version it was installed at, and PYTHONPATH can put another copy of the code first)."""
    if distribution == "slaft":
        from slaft.version import __version__

        return __version__
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    return {"python": platform.python_version(), **{lib: version(lib) for lib in LIBRARIES}}


def code_revision() -> str | None:
    """The repository commit the run's code came from, with "+dirty" when the work tree had changes."""
    repo = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src", "benchmarks/**/*.py"], cwd=repo,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}+dirty" if dirty else commit


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description(device: str) -> str:
    """E.g. "cpu: Intel Xeon ... (2 cores, 2 torch threads)" or "cuda: NVIDIA H100 80GB HBM3"."""
    if device == "cuda":
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu: {cpu_name()} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
