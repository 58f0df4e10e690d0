"""The site table: every place a candidate module can sit inside a transformer block, as data.

A site names its kind and its host, a role that ``discovery.py`` finds in each block:

* ``lora``     a low-rank update on a linear: reads the host's input, adds to the host's output
* ``serial``   a bottleneck adapter after a linear: reads the host's output, adds to it (before the residual add)
* ``parallel`` a bottleneck adapter beside the feed-forward block: reads the input of the block's first feed-forward
               linear, adds to the output of its last (``ffn_out``)

The named sites are shorthands for roles a block has once (``lora_q`` is the low-rank update on the query
projection, whatever the model calls it). Every other linear of a block (a second linear of one role, a mixture's
experts, a linear whose role cannot be told) is a low-rank site under its own path: ``lora:<path in the block>``.

What a module of each kind costs is written here once (``unit_cost``/``fixed_cost``), and every count in slaft —
structures, budgets, reports — goes through it.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import discovery as roles
from .discovery import Block, HostLinear

LORA, SERIAL, PARALLEL = "lora", "serial", "parallel"
BOTTLENECK_KINDS = (SERIAL, PARALLEL)
PATH_SITE = "lora:"  # prefix of a low-rank site named by its host's path
FFN_FIRST = (roles.FFN_GATE, roles.FFN_IN, roles.FFN_GATE_UP)  # roles whose input is the feed-forward block's input


@dataclass(frozen=True)
class Site:
    name: str       # the name users pass in ``SlaftConfig.sites``
    kind: str       # LORA, SERIAL or PARALLEL
    host: str       # the role of the linear the module's output joins ("" for a path site: its path says)
    reads: str      # what the module reads: "input" or "output" of the host, or "ffn_input"
    label: str      # short column label for tables and plots

    @property
    def is_bottleneck(self) -> bool:
        return self.kind in BOTTLENECK_KINDS


SITES: dict[str, Site] = {site.name: site for site in (
    Site("attn_adapter", SERIAL, roles.O, "output", "attn"),
    Site("ffn_adapter", SERIAL, roles.FFN_OUT, "output", "ffn"),
    Site("parallel_adapter", PARALLEL, roles.FFN_OUT, "ffn_input", "parallel"),
    Site("lora_q", LORA, roles.Q, "input", "q"),
    Site("lora_k", LORA, roles.K, "input", "k"),
    Site("lora_v", LORA, roles.V, "input", "v"),
    Site("lora_qkv", LORA, roles.QKV, "input", "qkv"),
    Site("lora_o", LORA, roles.O, "input", "o"),
    Site("lora_cross_q", LORA, roles.CROSS + roles.Q, "input", "cross_q"),
    Site("lora_cross_k", LORA, roles.CROSS + roles.K, "input", "cross_k"),
    Site("lora_cross_v", LORA, roles.CROSS + roles.V, "input", "cross_v"),
    Site("lora_cross_qkv", LORA, roles.CROSS + roles.QKV, "input", "cross_qkv"),
    Site("lora_cross_o", LORA, roles.CROSS + roles.O, "input", "cross_o"),
    Site("lora_ffn_gate", LORA, roles.FFN_GATE, "input", "ffn_gate"),
    Site("lora_ffn_in", LORA, roles.FFN_IN, "input", "ffn_in"),
    Site("lora_ffn_gate_up", LORA, roles.FFN_GATE_UP, "input", "ffn_gate_up"),
    Site("lora_ffn_out", LORA, roles.FFN_OUT, "input", "ffn_out"),
)}
SITE_NAMES: tuple[str, ...] = tuple(SITES)  # table order: the column order of every table and plot
LORA_ROLES = {site.host: name for name, site in SITES.items() if site.kind == LORA}


def site(name: str) -> Site:
    """The site called ``name``: a named one, or a path site (``lora:<path>``)."""
    if name in SITES:
        return SITES[name]
    if is_path_site(name):
        return Site(name, LORA, "", "input", name[len(PATH_SITE):])
    raise KeyError(name)


def is_path_site(name: str) -> bool:
    return name.startswith(PATH_SITE) and len(name) > len(PATH_SITE)


def is_known_site(name: str) -> bool:
    return name in SITES or is_path_site(name)


def site_order(name: str) -> tuple[int, str]:
    """Where a site's column goes: the table's order, then path sites by path."""
    return (SITE_NAMES.index(name), "") if name in SITES else (len(SITE_NAMES), name)


@dataclass(frozen=True)
class SiteHosts:
    """Where one site sits in one block: the host linear whose output the module joins; for a parallel adapter, the
    linear whose input it reads; for a part of a split fused projection, the rows of the host's output it adds to."""

    host: HostLinear
    source: HostLinear | None = None
    rows: tuple[int, int] | None = None

    @property
    def out_features(self) -> int:
        return self.rows[1] - self.rows[0] if self.rows else self.host.out_features


def block_sites(block: Block) -> dict[str, SiteHosts]:
    """Every site ``block`` offers, in table order then module order. A role held by one linear gets its named site;
    every other linear (routers aside) gets a path site."""
    out: dict[str, SiteHosts] = {}
    unique = {role: linears[0] for role in {l.role for l in block.linears}
              if len(linears := block.by_role(role)) == 1}
    if roles.O in unique:
        out["attn_adapter"] = SiteHosts(unique[roles.O])
    if roles.FFN_OUT in unique:
        out["ffn_adapter"] = SiteHosts(unique[roles.FFN_OUT])
        first = next((l for l in block.linears if l.role in FFN_FIRST), None)
        if first is not None:
            out["parallel_adapter"] = SiteHosts(unique[roles.FFN_OUT], source=first)
    lora = {}
    for linear in block.linears:
        if linear.role == roles.ROUTER:
            continue
        named = LORA_ROLES.get(linear.role) if unique.get(linear.role) is linear else None
        parts = [role for role, _, _ in linear.slices]
        if named and parts and not any(role in unique for role in parts):  # a split fused projection
            for role, first, end in linear.slices:
                lora[LORA_ROLES[role]] = SiteHosts(linear, rows=(first, end))
            continue
        lora[named or PATH_SITE + linear.path] = SiteHosts(linear)
    for name in sorted(lora, key=site_order):
        out[name] = lora[name]
    return out


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
