"""The curves of a `slaft sweep`: the score against the swept value, mean and spread over seeds.

Drawn with matplotlib's object API, as ``slaft.plots`` draws, so the user's matplotlib backend is left alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..plots import save_figure


def _mean_and_spread(records: list[dict], key: str) -> tuple[list[float], list[float], list[float]]:
    """x values, means and sample standard deviations of ``key`` over the seeds at each x."""
    by_value: dict[float, list[float]] = {}
    for record in records:
        by_value.setdefault(record["value"], []).append(record[key])
    xs = sorted(by_value)
    means = [float(np.mean(by_value[x])) for x in xs]
    spreads = [float(np.std(by_value[x], ddof=1)) if len(by_value[x]) > 1 else 0.0 for x in xs]
    return xs, means, spreads


def plot_sweep(records: list[dict], path: str | Path, *, axis: str) -> Path:
    """Save a PNG of a `slaft sweep`: the score against the swept value (one line per perturbation kind), mean and
    spread over seeds; for the sparsity and budget axes also the kept adapter parameters."""
    size_axis = axis in ("sparsity_weight", "target_params")
    fig = Figure(figsize=(10 if size_axis else 6, 4))
    axes = fig.subplots(1, 2 if size_axis else 1)
    score_ax = axes[0] if size_axis else axes
    metric = records[0]["metric"] if records else "score"
    for kind in sorted({r.get("perturbation") or "" for r in records}):
        subset = [r for r in records if (r.get("perturbation") or "") == kind]
        xs, means, spreads = _mean_and_spread(subset, "score")
        score_ax.errorbar(xs, means, yerr=spreads, marker="o", capsize=3, label=kind or None)
    if axis == "perturbation" and records:
        score_ax.legend(fontsize=7)
    score_ax.set_xlabel("perturbation rate" if axis == "perturbation" else axis)
    score_ax.set_ylabel(f"validation {metric}")
    score_ax.grid(alpha=0.3)
    if size_axis:
        xs, means, spreads = _mean_and_spread(records, "kept_params")
        axes[1].errorbar(xs, means, yerr=spreads, marker="o", capsize=3, color="tab:orange")
        axes[1].set_xlabel(axis)
        axes[1].set_ylabel("kept adapter parameters")
        axes[1].grid(alpha=0.3)
    seeds = len({r["seed"] for r in records})
    task = records[0]["task"] if records else ""
    fig.suptitle(f"slaft sweep over {axis} on {task} ({seeds} seed{'s' * (seeds != 1)}; bars: sample std)", fontsize=9)
    return save_figure(fig, path)
