"""The site table: every place a candidate module can sit inside a transformer block, as data.

A site names its kind and its host, a role in an architecture entry (``architectures.py``) that resolves to a module
inside one block:

* ``lora``     a low-rank update on a linear: reads the host's input, adds to the host's output
* ``serial``   a bottleneck adapter after a linear: reads the host's output, adds to it (before the residual add)
* ``parallel`` a bottleneck adapter beside the feed-forward block: reads the block's input (``ffn_input``), adds to
               the output of its last linear (``ffn_out``)

What a module of each kind costs is written here once (``unit_cost``/``fixed_cost``), and every count in slaft —
structures, budgets, reports — goes through it.
"""

from __future__ import annotations

from dataclasses import dataclass

LORA, SERIAL, PARALLEL = "lora", "serial", "parallel"
BOTTLENECK_KINDS = (SERIAL, PARALLEL)


@dataclass(frozen=True)
class Site:
    name: str       # the name users pass in ``SlaftConfig.sites``
    kind: str       # LORA, SERIAL or PARALLEL
    host: str       # the architecture role of the linear the module's output joins
    reads: str      # what the module reads: "input" or "output" of the host, or "ffn_input"
    label: str      # short column label for tables and plots

    @property
    def is_bottleneck(self) -> bool:
        return self.kind in BOTTLENECK_KINDS


SITES: dict[str, Site] = {site.name: site for site in (
    Site("attn_adapter", SERIAL, "o", "output", "attn"),
    Site("ffn_adapter", SERIAL, "ffn_out", "output", "ffn"),
    Site("parallel_adapter", PARALLEL, "ffn_out", "ffn_input", "parallel"),
    Site("lora_q", LORA, "q", "input", "q"),
    Site("lora_k", LORA, "k", "input", "k"),
    Site("lora_v", LORA, "v", "input", "v"),
    Site("lora_o", LORA, "o", "input", "o"),
    Site("lora_ffn_gate", LORA, "ffn_gate", "input", "ffn_gate"),
    Site("lora_ffn_in", LORA, "ffn_in", "input", "ffn_in"),
    Site("lora_ffn_out", LORA, "ffn_out", "input", "ffn_out"),
)}
SITE_NAMES: tuple[str, ...] = tuple(SITES)  # table order: the column order of every table and plot


def unit_cost(kind: str, in_features: int, out_features: int) -> int:
    """Parameters of one rank component (LoRA: a row of A and a column of B) or one hidden unit of a bottleneck
    (a row of W_down, its bias, a column of W_up)."""
    return in_features + out_features if kind == LORA else in_features + 1 + out_features


def fixed_cost(kind: str, out_features: int) -> int:
    """Parameters a module has as soon as one unit survives: the bottleneck's output bias b_up."""
    return 0 if kind == LORA else out_features


def module_cost(kind: str, width: int, in_features: int, out_features: int) -> int:
    """Parameters of a module with ``width`` ranks or hidden units (0 when it has none: the module is gone)."""
    if width <= 0:
        return 0
    return width * unit_cost(kind, in_features, out_features) + fixed_cost(kind, out_features)
