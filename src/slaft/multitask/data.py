"""Several tasks' tokenized datasets as one, and a batch sampler that gives every batch a single task.

``TaskBatchSampler`` yields index lists into ``MultiTaskDataset``; each batch comes from one task, and every aligned
run of ``group`` batches (gradient accumulation × processes) comes from one task, so that an optimizer step sees one
task on every rank (DDP shards consecutive batches over the ranks). Sampling:

* proportional: every example once per epoch, the tasks' batches shuffled together (what concatenating the datasets
  would give, with one task per batch); a task whose batch count is not a multiple of ``group`` tops its last
  group up with batches drawn again from its own examples;
* temperature T: the task of each group is drawn with probability ∝ size^(1/T), its batch from a reshuffled stream
  of that task (T = 1 is proportional in expectation, large T tends to uniform);
* uniform: every task equally often.

``passes`` gives a task more (or fewer) passes over its examples per epoch than the others, e.g. so that a small task
gets the epochs its single-task recipe gives it: the task then counts ``passes × size`` in every mode. With
``lengths`` (each task's example lengths), a task's batches hold examples of similar lengths (transformers'
length grouping, as ``group_by_length`` gives a single-task Trainer): less padding, the same examples.

An epoch has as many batches in every mode. The order depends on the seed and the epoch only, so a resumed run
skips exactly the batches it had seen.
"""

from __future__ import annotations

import math
import random

import torch
from torch.utils.data import Dataset, Sampler
from transformers.trainer_pt_utils import get_length_grouped_indices


class MultiTaskDataset(Dataset):
    """The examples of several tokenized datasets, each with its task's index in a "task" field (by default the
    dataset's position; ``task_ids`` names them, e.g. to train only a task added to a trained model)."""

    def __init__(self, datasets: list, task_ids: list[int] | None = None) -> None:
        self.datasets = list(datasets)
        self.task_ids = list(task_ids) if task_ids is not None else list(range(len(self.datasets)))
        if len(self.task_ids) != len(self.datasets):
            raise ValueError(f"{len(self.datasets)} datasets but {len(self.task_ids)} task ids")
        self.offsets = [0]
        for dataset in self.datasets:
            self.offsets.append(self.offsets[-1] + len(dataset))

    def __len__(self) -> int:
        return self.offsets[-1]

    def locate(self, index: int) -> tuple[int, int]:
        for task in range(len(self.datasets)):
            if index < self.offsets[task + 1]:
                return task, index - self.offsets[task]
        raise IndexError(index)

    def __getitem__(self, index: int) -> dict:
        task, row = self.locate(index)
        return {**self.datasets[task][row], "task": self.task_ids[task]}


class TaskBatchSampler(Sampler[list[int]]):
    """See the module docstring."""

    def __init__(self, sizes: list[int], batch_size: int, *, sampling: str = "proportional",
                 temperature: float = 2.0, group: int = 1, seed: int = 0, passes: list[float] | None = None,
                 lengths: list[list[int]] | None = None) -> None:
        if not sizes or min(sizes) < 1:
            raise ValueError(f"every task needs at least one training example, got sizes {sizes}")
        passes = [1.0] * len(sizes) if passes is None else [float(p) for p in passes]
        if len(passes) != len(sizes) or not all(0 < p < math.inf for p in passes):
            raise ValueError(f"passes needs one positive number per task ({len(sizes)}), got {passes}")
        if lengths is not None and [len(task) for task in lengths] != list(sizes):
            raise ValueError("lengths needs one length per example of every task")
        self.sizes, self.batch_size, self.sampling = list(sizes), int(batch_size), sampling
        self.temperature, self.group, self.seed, self.epoch = float(temperature), max(1, int(group)), seed, 0
        self.passes, self.lengths = passes, lengths
        self.offsets = [sum(sizes[:t]) for t in range(len(sizes))]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def task_batches(self, task: int) -> int:
        """The task's batches per epoch: its passes over its examples."""
        return math.ceil(self.passes[task] * math.ceil(self.sizes[task] / self.batch_size) - 1e-9)

    def __len__(self) -> int:
        """Batches per epoch: every task's batches, each task's count rounded up to whole groups."""
        return sum(self.group * math.ceil(self.task_batches(t) / self.group) for t in range(len(self.sizes)))

    def probabilities(self) -> list[float]:
        if self.sampling == "uniform":
            weights = [1.0] * len(self.sizes)
        elif self.sampling == "temperature":
            weights = [(size * passes) ** (1.0 / self.temperature) for size, passes in zip(self.sizes, self.passes)]
        else:
            weights = [size * passes for size, passes in zip(self.sizes, self.passes)]
        total = sum(weights)
        return [w / total for w in weights]

    def _order(self, task: int, rng: random.Random) -> list[int]:
        """One pass over the task's examples: shuffled, or length-grouped when lengths are known."""
        if self.lengths is None:
            order = list(range(self.sizes[task]))
            rng.shuffle(order)
            return order
        generator = torch.Generator().manual_seed(rng.getrandbits(63))
        return get_length_grouped_indices(self.lengths[task], self.batch_size, generator=generator)

    def _stream(self, task: int, rng: random.Random):
        """The task's batches, reshuffled each time they run out."""
        while True:
            order = self._order(task, rng)
            for start in range(0, len(order), self.batch_size):
                yield [self.offsets[task] + i for i in order[start:start + self.batch_size]]

    def __iter__(self):
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        streams = [self._stream(t, rng) for t in range(len(self.sizes))]
        if self.sampling == "proportional":
            groups = []
            for task in range(len(self.sizes)):
                groups += [task] * math.ceil(self.task_batches(task) / self.group)
            rng.shuffle(groups)
        else:
            probabilities = self.probabilities()
            groups = rng.choices(range(len(self.sizes)), weights=probabilities, k=len(self) // self.group)
        for task in groups:
            for _ in range(self.group):
                yield next(streams[task])
