"""The structure as data: which module sits at which (layer, site), how wide, with which activation.

A ``Structure`` describes both the candidate space (``discrete=False``: full widths, every activation, gated) and
a learned substructure (``discrete=True``: surviving units, one activation, no gates). It prints as a layers x sites
table, diffs against another, counts its parameters and round-trips through JSON; ``SlaftModel`` builds modules
from it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .sites import LORA, module_cost, site, site_order

STRUCTURE_FORMAT = 2  # 2: LoRA modules keep alpha / r as their scale (slaft >= 0.2); 1 folded it into B


@dataclass(frozen=True)
class ModuleSpec:
    """One module of a structure: its place, its width (ranks or hidden units) and, for bottlenecks, activations."""

    layer: int
    site: str
    width: int
    in_features: int
    out_features: int
    activations: tuple[str, ...] = ()   # bottleneck only: the candidates, or the single chosen one
    host: str = ""                      # the host linear's path inside its block (e.g. "attn.c_attn")

    @property
    def kind(self) -> str:
        return site(self.site).kind

    @property
    def key(self) -> str:
        return f"{self.layer}.{self.site}"

    @property
    def num_params(self) -> int:
        return module_cost(self.kind, self.width, self.in_features, self.out_features)

    @property
    def is_linear(self) -> bool:
        """True when merging can fold the module into its host's weights."""
        return self.kind == LORA or (site(self.site).reads == "output" and self.activations == ("identity",))

    def describe(self) -> str:
        if self.kind == LORA:
            return f"r={self.width}"
        act = self.activations[0] if len(self.activations) == 1 else "search"
        return f"{'id' if act == 'identity' else act} w={self.width}"


@dataclass
class Structure:
    """A set of modules (candidate space or learned structure) over ``num_layers`` blocks."""

    modules: list[ModuleSpec] = field(default_factory=list)
    discrete: bool = False
    num_layers: int = 0

    @property
    def num_params(self) -> int:
        return sum(m.num_params for m in self.modules)

    @property
    def num_sites(self) -> int:
        return len(self.modules)

    def get(self, layer: int, site: str) -> ModuleSpec | None:
        return next((m for m in self.modules if m.layer == layer and m.site == site), None)

    def sites(self) -> list[str]:
        return sorted({m.site for m in self.modules}, key=site_order)

    def hosts(self) -> dict[str, str]:
        """Each site's host linear, by its path in the block, where every block has it at one path."""
        paths: dict[str, set[str]] = {}
        for m in self.modules:
            paths.setdefault(m.site, set()).add(m.host)
        return {name: next(iter(p)) for name, p in paths.items() if len(p) == 1 and "" not in p}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": STRUCTURE_FORMAT,
            "discrete": self.discrete,
            "num_layers": self.num_layers,
            "modules": [{**asdict(m), "activations": list(m.activations)} for m in self.modules],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Structure":
        if data.get("format") != STRUCTURE_FORMAT:
            raise ValueError(f"Unsupported structure format {data.get('format')!r}; this slaft reads format "
                             f"{STRUCTURE_FORMAT} (structures saved by slaft 0.1 use format 1: train them again).")
        modules = [ModuleSpec(**{**m, "activations": tuple(m.get("activations", ()))}) for m in data["modules"]]
        return cls(modules=modules, discrete=bool(data["discrete"]), num_layers=int(data["num_layers"]))

    def fits(self, other: "Structure") -> bool:
        """Whether the modules of both sit on the same linears (layer, site, host, shape); a structure saved before
        hosts were recorded fits any."""
        def places(structure):
            return {(m.layer, m.site, m.host, m.in_features, m.out_features) for m in structure.modules}

        if any(not m.host for m in self.modules):
            return True
        return places(self) == places(other)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Structure":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def diff(self, other: "Structure") -> list[str]:
        """Human-readable differences, one line per (layer, site) that changed."""
        mine = {(m.layer, m.site): m for m in self.modules}
        theirs = {(m.layer, m.site): m for m in other.modules}
        lines = []
        for layer, site in sorted(set(mine) | set(theirs), key=lambda k: (k[0], site_order(k[1]))):
            a, b = mine.get((layer, site)), theirs.get((layer, site))
            if a != b:
                left, right = (a.describe() if a else "-"), (b.describe() if b else "-")
                lines.append(f"layer {layer:>2} {site:<16} {left} -> {right}")
        return lines

    def table(self) -> str:
        """Layers x sites, each cell the module's activation and width (or '.' where the site is empty)."""
        sites = self.sites()
        if not sites:
            return "(no modules)"
        cells = [[(spec.describe() if (spec := self.get(layer, name)) else ".") for name in sites]
                 for layer in range(self.num_layers)]
        labels = [site(name).label for name in sites]
        widths = [max(len(labels[j]), *(len(row[j]) for row in cells)) for j in range(len(sites))]
        rows = ["layer  " + "  ".join(f"{label:>{w}}" for label, w in zip(labels, widths))]
        rows += [f"{i:>5}  " + "  ".join(f"{c:>{w}}" for c, w in zip(row, widths)) for i, row in enumerate(cells)]
        hosts = self.hosts()
        named = [f"{site(name).label} = {hosts[name]}" for name in sites if name in hosts and not
                 hosts[name] == site(name).label]
        if named:
            rows.append("sites: " + ", ".join(named))
        return "\n".join(rows)

    def __str__(self) -> str:
        kind = "learned structure" if self.discrete else "candidate space"
        return f"{kind}: {self.num_sites} modules, {self.num_params:,} parameters\n{self.table()}"
