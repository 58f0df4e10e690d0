"""The report's plots: score against stored parameters (Pareto), and cost ratios against the reference method."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..harness.methods import REFERENCE, label, library
from .summarize import SuiteSummary

FAMILY_STYLE = {  # library -> (colour, marker)
    "slaft": ("#d62728", "*"),
    "peft": ("#1f77b4", "o"),
    "adapters": ("#2ca02c", "s"),
    "transformers": ("#7f7f7f", "D"),
}




def pareto_front(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Points no other point beats on both fewer stored parameters and a higher score."""
    front, best = [], float("-inf")
    for x, y, name in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y, name))
            best = y
    return front


def _scatter(ax, summary: SuiteSummary, task: str | None, key: str) -> None:
    points = []
    for method in summary.methods:
        if task is None:
            score, error = summary.average(method), None
            params = summary.across_tasks(method, key)
        else:
            cell = summary.cell(method, task)
            if cell is None:
                continue
            score, error, params = cell.mean("score"), cell.std("score"), cell.mean(key)
        if score is None or not params:
            continue
        colour, marker = FAMILY_STYLE.get(library(method), ("black", "x"))
        ax.errorbar(params, 100 * score, yerr=100 * error if error else None, fmt=marker, color=colour,
                    markersize=11 if marker == "*" else 6, capsize=2, zorder=3)
        ax.annotate(label(method), (params, 100 * score), fontsize=6, xytext=(3, 3), textcoords="offset points")
        points.append((params, 100 * score, method))
    front = pareto_front(points)
    if len(front) > 1:
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="black", alpha=0.35, lw=1,
                zorder=1)
    floors = [summary.floors[t]["score"] for t in (summary.tasks if task is None else [task]) if t in summary.floors]
    if floors and len(floors) == (len(summary.tasks) if task is None else 1):
        ax.axhline(100 * sum(floors) / len(floors), color="black", ls="--", lw=0.8, alpha=0.6, zorder=0)
    ax.set_xscale("log")
    ax.grid(alpha=0.3, which="both")


def pareto_plot(summary: SuiteSummary, path: Path, metric_names: dict[str, str], key: str = "stored_params") -> Path:
    """Score against ``key`` (stored parameters, or adapter parameters on the size axis) for every method: the mean
    over tasks, then one panel per task."""
    panels = [None, *summary.tasks]
    cols = 3
    rows = (len(panels) + cols - 1) // cols
    fig = Figure(figsize=(5 * cols, 4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, task in zip(axes.flat, panels, strict=False):  # spare panels stay empty
        _scatter(ax, summary, task, key)
        ax.set_title("GLUE average (all tasks)" if task is None else f"{task} ({metric_names.get(task, '')})")
        ax.set_xlabel("stored parameters (adapter + head; log scale)" if key == "stored_params"
                      else "adapter parameters (log scale)")
        ax.set_ylabel("validation score x100")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles = [Line2D([], [], color=c, marker=m, ls="", label=lib) for lib, (c, m) in FAMILY_STYLE.items()]
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=9, bbox_to_anchor=(0.5, 0.955))
    what = "stored" if key == "stored_params" else "adapter"
    fig.suptitle(f"Score against {what} parameters ({summary.suite} suite; error bars: seed std; line: Pareto front; "
                 "dashed: best constant prediction)")
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


RATIOS = (
    ("step_seconds", "median step time"),
    ("peak_memory_mb", "peak memory"),
    ("train_memory_mb", "training memory increment"),
    ("latency_ratio_vs_base", "inference latency"),
)


def ratio_plot(summary: SuiteSummary, path: Path) -> Path:
    methods = [m for m in summary.methods if m != REFERENCE]
    fig = Figure(figsize=(4.2 * len(RATIOS), 0.35 * len(methods) + 1.8))
    axes = fig.subplots(1, len(RATIOS), sharey=True)
    for ax, (key, title) in zip(axes, RATIOS, strict=True):
        values = [summary.ratio_vs_reference(m, key) for m in methods]
        colours = [FAMILY_STYLE.get(library(m), ("black", "x"))[0] for m in methods]
        ax.barh(range(len(methods)), [v or 0 for v in values], color=colours)
        top = max([v for v in values if v] + [1.0])
        for i, v in enumerate(values):
            ax.text((v or 0) + 0.02 * top, i, f"{v:.2f}x" if v else "n/a", va="center", fontsize=7)
        ax.axvline(1.0, color="black", lw=1)
        ax.set_xlim(0, 1.2 * top)
        ax.set_title(f"{title}\n(vs {label(REFERENCE)} = 1)", fontsize=9)
        ax.grid(alpha=0.3, axis="x")
    axes[0].set_yticks(range(len(methods)), [label(m) for m in methods], fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle(f"Cost ratios against {label(REFERENCE)}, geometric mean over tasks ({summary.suite} suite)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
