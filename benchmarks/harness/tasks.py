"""The benchmark's task definitions on top of ``slaft.data.load_task``: GLUE tasks whose training set is not in
``../shared/data/glue`` are posed from the splits that are, through slaft's public loader, with no library change.

- **mnli**: trains on ``validation_matched`` (9,815 pairs) and is scored on ``validation_mismatched`` (9,832), the
  other genres, so training and scoring never share a pair (``load_task`` with its own files; columns, labels and
  metric come from slaft's GLUE spec of mnli).
- **qnli**: a seeded, stratified split of its 5,463 validation pairs into a training set and a held-out set of
  ``QNLI_HELD_OUT`` pairs that is scored. The split's seed is fixed (``QNLI_SPLIT_SEED``), not the run's, so every
  method, seed and report (the best constant prediction included) sees the same two sets.

Every other task is ``load_task``'s own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slaft.data import TaskData, load_task

QNLI_HELD_OUT = 1500      # pairs scored (the size of STS-B's validation split); the other 3,963 train
QNLI_SPLIT_SEED = 0
DERIVED_TASKS = ("mnli", "qnli")


def _mnli(data_dir: Path, seed: int, max_train_samples: int | None) -> TaskData:
    folder = data_dir / "mnli"
    return load_task("mnli", train_file=str(folder / "validation_matched.jsonl"),
                     validation_file=str(folder / "validation_mismatched.jsonl"), seed=seed,
                     max_train_samples=max_train_samples)


def _qnli(data_dir: Path, seed: int, max_train_samples: int | None) -> TaskData:
    from datasets import DatasetDict
    from sklearn.model_selection import train_test_split

    data = load_task("qnli", data_dir=str(data_dir))  # its one split, validation: the pool to split
    pool = data.splits["validation"]
    train, held_out = train_test_split(np.arange(len(pool)), test_size=QNLI_HELD_OUT, random_state=QNLI_SPLIT_SEED,
                                       stratify=np.asarray(pool["label"]))
    data.splits = DatasetDict(train=pool.select(np.sort(train).tolist()),
                              validation=pool.select(np.sort(held_out).tolist()))
    if max_train_samples is not None and max_train_samples < len(data.splits["train"]):
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(data.splits["train"]), size=max_train_samples, replace=False))
        data.splits["train"] = data.splits["train"].select(keep.tolist())
    return data


def load_benchmark_task(task: str, *, data_dir: str | Path, seed: int = 42,
                        max_train_samples: int | None = None) -> TaskData:
    """A task as the benchmark poses it (see the module's docstring); the arguments are ``load_task``'s."""
    if task == "mnli":
        return _mnli(Path(data_dir), seed, max_train_samples)
    if task == "qnli":
        return _qnli(Path(data_dir), seed, max_train_samples)
    return load_task(task, data_dir=str(data_dir), seed=seed, max_train_samples=max_train_samples)
