"""Pictures of what was learned: a heatmap of layers x sites, each cell the kept width and chosen activation, and a
task x task heatmap of the parameters two tasks share (the curves of a `slaft sweep` are in ``slaft.robustness.plots``).

Figures are drawn with matplotlib's object API (``matplotlib.figure.Figure``), never pyplot, so importing slaft
neither picks nor changes the user's matplotlib backend.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .sites import site
from .structure import Structure

_SHORT = {"identity": "id"}  # other activations show under their own names


def plot_structure(learned: Structure, candidate: Structure, path: str | Path, *, title: str = "") -> Path:
    """Save a PNG: rows = blocks, columns = candidate sites, colour = fraction of the candidate width kept."""
    sites = candidate.sites()
    layers = candidate.num_layers
    kept = np.full((layers, len(sites)), np.nan)
    labels = [["" for _ in sites] for _ in range(layers)]
    for spec in candidate.modules:
        kept[spec.layer, sites.index(spec.site)] = 0.0
        labels[spec.layer][sites.index(spec.site)] = "off"
    for spec in learned.modules:
        column = sites.index(spec.site)
        full = candidate.get(spec.layer, spec.site)
        kept[spec.layer, column] = spec.width / full.width if full else 1.0
        act = f"{_SHORT.get(spec.activations[0], spec.activations[0])}\n" if spec.activations else ""
        labels[spec.layer][column] = f"{act}{'r' if spec.kind == 'lora' else 'w'}={spec.width}"

    fig = Figure(figsize=(1.1 * len(sites) + 2.5, 0.55 * layers + 2.2))
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(kept), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for row in range(layers):
        for column in range(len(sites)):
            if labels[row][column]:
                light = np.nan_to_num(kept[row, column]) < 0.6
                ax.text(column, row, labels[row][column], ha="center", va="center", fontsize=7,
                        color="white" if light else "black")
    hosts = candidate.hosts()  # the model's own names for the sites' linears (GPT-2's attn.c_attn, T5's ...q)
    ticks = [f"{site(s).label}\n{hosts[s]}" if s in hosts and hosts[s] != site(s).label else site(s).label
             for s in sites]
    ax.set_xticks(range(len(sites)), ticks, fontsize=7, rotation=30, ha="right")
    ax.set_yticks(range(layers), [f"block {i}" for i in range(layers)], fontsize=8)
    ratio = learned.num_params / max(candidate.num_params, 1)
    ax.set_title(f"{title}\n{learned.num_sites}/{candidate.num_sites} modules, {learned.num_params:,} of "
                 f"{candidate.num_params:,} candidate parameters ({100 * ratio:.1f}%)".strip(), fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.03, label="fraction of candidate width kept")
    return save_figure(fig, path)


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Lay out ``fig`` and write it as a PNG at ``path`` (parent directories created); returns the path."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    return path


def plot_sharing(matrix, tasks: list[str], path: str | Path, *, title: str = "") -> Path:
    """Save a PNG: task x task, each cell the adapter parameters both tasks use (the diagonal: a task's own size)."""
    values = np.asarray(matrix, dtype=float)
    fig = Figure(figsize=(1.0 * len(tasks) + 2.8, 0.8 * len(tasks) + 1.8))
    ax = fig.subplots()
    image = ax.imshow(values, cmap="magma", vmin=0, aspect="auto")
    top = values.max() if values.size else 0.0
    for i in range(len(tasks)):
        for j in range(len(tasks)):
            ax.text(j, i, f"{values[i, j]:,.0f}", ha="center", va="center", fontsize=8,
                    color="white" if values[i, j] < 0.6 * top else "black")
    ax.set_xticks(range(len(tasks)), tasks, fontsize=8, rotation=30)
    ax.set_yticks(range(len(tasks)), tasks, fontsize=8)
    ax.set_title(title or "adapter parameters shared by two tasks", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04, label="parameters kept by both")
    return save_figure(fig, path)
