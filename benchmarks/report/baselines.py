"""The best constant predictor of each task: the most a model can score that ignores its input.

For a classification task it is the best of "always class c" over the classes, scored on the split itself (the
majority class for accuracy, the positive class for F1, and 0 for Matthews correlation whatever c is); for a
regression task a constant has no correlation with the labels, taken as 0, the correlation metrics'
no-information value. It is computed from the data on every render, never stored. A method whose score sits at this
level has learned nothing the metric can see, which on small training sets is common (CoLA's MCC 0, MRPC's
all-positive F1).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from slaft.data import DataError, compute_metrics

from ..harness.tasks import load_benchmark_task


def best_constant_score(spec, labels: np.ndarray) -> float:
    if spec.is_regression:
        return 0.0
    scores = [compute_metrics(spec, np.full(len(labels), c), labels)[spec.main_metric]
              for c in range(spec.num_labels)]
    return max(0.0 if math.isnan(s) else s for s in scores)


def constant_scores(tasks: list[str], data_dir: Path,
                    max_eval_samples: int | None = None) -> dict[str, dict[str, float | None]]:
    """{task: {"score": on validation, "test_score": on the labelled test split or None}}, each on the examples a
    suite scores (the first ``max_eval_samples`` when it caps them); tasks whose data is not under ``data_dir`` are
    left out."""
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    out = {}
    for task in tasks:
        try:
            data = load_benchmark_task(task, data_dir=data_dir)
        except (DataError, OSError):
            continue
        scored = {split: np.asarray(data.splits[split]["label"][:max_eval_samples])
                  for split in (data.eval_split, data.test_split) if split}
        out[task] = {
            "score": best_constant_score(data.spec, scored[data.eval_split]),
            "test_score": best_constant_score(data.spec, scored[data.test_split]) if data.test_split else None,
        }
    return out
