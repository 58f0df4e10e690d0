"""Pictures of what was learned: a heatmap of layers x sites, each cell the kept width and chosen activation.

Figures are drawn with matplotlib's object API (``matplotlib.figure.Figure``), never pyplot, so importing slaft
neither picks nor changes the user's matplotlib backend.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .sites import SITES
from .structure import Structure

_SHORT = {"identity": "id", "relu": "relu", "gelu": "gelu", "silu": "silu", "tanh": "tanh"}


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
    ax.set_xticks(range(len(sites)), [SITES[s].label for s in sites], fontsize=8)
    ax.set_yticks(range(layers), [f"block {i}" for i in range(layers)], fontsize=8)
    ratio = learned.num_params / max(candidate.num_params, 1)
    ax.set_title(f"{title}\n{learned.num_sites}/{candidate.num_sites} modules, {learned.num_params:,} of "
                 f"{candidate.num_params:,} candidate parameters ({100 * ratio:.1f}%)".strip(), fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.03, label="fraction of candidate width kept")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    return path
