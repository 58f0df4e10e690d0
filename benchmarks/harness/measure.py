"""Measurements taken inside a run: step times, peak memory, stored size and inference latency.

Peak memory on CPU is the kernel's own high-water mark of the run's process (VmHWM in /proc/self/status). Each run
is a fresh subprocess (see harness.py), so the mark belongs to that run alone and nothing from earlier runs inflates
it; it includes the interpreter, the libraries and the frozen backbone, so the training increment over the RSS just
before training is recorded next to it. On CUDA it is torch.cuda.max_memory_allocated over training.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from transformers import TrainerCallback

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


class StepTimer(TrainerCallback):
    """Wall time of each optimizer step (forward, backward, optimizer), synchronised on CUDA."""

    def __init__(self, phase: str) -> None:
        self.phase = phase
        self.durations: list[float] = []
        self._start: float | None = None

    def on_step_begin(self, args, state, control, **kwargs):
        _sync()
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        _sync()
        if self._start is not None:
            self.durations.append(time.perf_counter() - self._start)
            self._start = None


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def median_step_seconds(durations: list[float]) -> float | None:
    """Median over steps, leaving out the first (allocator and kernel warm-up) when there are enough."""
    steps = durations[1:] if len(durations) > 3 else durations
    return statistics.median(steps) if steps else None


def _proc_status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        return None
    return None


def rss_mb() -> float | None:
    return _proc_status_mb("VmRSS")


def peak_rss_mb() -> float:
    """The process's peak resident set so far; ru_maxrss where /proc is missing (kB on Linux, bytes on macOS)."""
    hwm = _proc_status_mb("VmHWM")
    if hwm is not None:
        return hwm
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class MemoryMeter:
    """Peak memory over a stretch of work: process peak RSS on CPU, peak allocated tensor memory on CUDA."""

    def __init__(self, device: str) -> None:
        self.cuda = device == "cuda"
        self.before_mb: float | None = None

    def start(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            self.before_mb = torch.cuda.memory_allocated() / 2**20
        else:
            self.before_mb = rss_mb()

    def peak(self) -> tuple[float, float | None]:
        """(peak MB, increment over the start MB)."""
        peak = torch.cuda.max_memory_allocated() / 2**20 if self.cuda else peak_rss_mb()
        return peak, (peak - self.before_mb if self.before_mb is not None else None)


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _tensors(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _tensors(value)


def _count_pickled(obj) -> int:
    """Elements physically stored: a storage shared by several names (AdapterHub registers one ejected prefix
    under every layer) is written once by torch.save and counted once here."""
    seen: dict[int, int] = {}
    for tensor in _tensors(obj):
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes() // tensor.element_size()
    return sum(seen.values())


def stored_size(directory: Path) -> tuple[int, int]:
    """(parameters, bytes) in the weight files of an exported directory; configs and model cards not counted."""
    from safetensors import safe_open

    params = size = 0
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or path.suffix not in WEIGHT_SUFFIXES:
            continue
        size += path.stat().st_size
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as handle:
                for key in handle.keys():
                    shape = handle.get_slice(key).get_shape()
                    count = 1
                    for dim in shape:
                        count *= dim
                    params += count
        else:
            params += _count_pickled(torch.load(path, map_location="cpu", weights_only=True))
    return params, size


@torch.inference_mode()
def compare_latency(model: nn.Module, base: nn.Module, batch: dict[str, torch.Tensor], *, repeats: int,
                    warmup: int = 3, bf16: bool = False) -> tuple[float, float]:
    """Median forward time (ms) of ``model`` and of ``base`` on the same batch, interleaved so that load from other
    processes hits both alike."""
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else torch.autocast("cpu", enabled=False)

    def once(m: nn.Module) -> float:
        _sync()
        start = time.perf_counter()
        with autocast:
            m(**batch)
        _sync()
        return time.perf_counter() - start

    for _ in range(warmup):
        once(model), once(base)
    timings: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        timings[0].append(once(model))
        timings[1].append(once(base))
    return 1000 * statistics.median(timings[0]), 1000 * statistics.median(timings[1])


@torch.inference_mode()
def logits_of(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(**batch).logits.float().cpu()
