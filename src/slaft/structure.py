"""The structure as data: which module sits at which (layer, site), how wide, with which activation.

A ``Structure`` describes both the candidate space (``discrete=False``: full widths, every activation, gated) and
a learned substructure (``discrete=True``: surviving units, one activation, no gates). It prints as a table,
diffs against another, counts its parameters and round-trips through JSON; ``SlaftModel`` builds modules from it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .config import BOTTLENECK_SITES, LORA_SITES

STRUCTURE_FORMAT = 1
SITE_LABELS = {"attn_adapter": "attn", "ffn_adapter": "ffn", "parallel_adapter": "parallel", "lora_q": "q",
               "lora_k": "k", "lora_v": "v", "lora_o": "o", "lora_ffn_gate": "ffn_gate", "lora_ffn_in": "ffn_in",
               "lora_ffn_out": "ffn_out"}


@dataclass(frozen=True)
class ModuleSpec:
    layer: int
    site: str
    width: int                      # bottleneck hidden units, or low-rank components
    in_features: int
    out_features: int
    activations: tuple[str, ...] = ()   # bottleneck only: the candidates, or the single chosen one

    @property
    def kind(self) -> str:
        return "bottleneck" if self.site in BOTTLENECK_SITES else "lora"

    @property
    def key(self) -> str:
        return f"{self.layer}.{self.site}"

    @property
    def num_params(self) -> int:
        if self.kind == "bottleneck":  # W_down, b_down, W_up, b_up
            return self.width * (2 * self.in_features + 1) + self.out_features
        return self.width * (self.in_features + self.out_features)

    @property
    def is_linear(self) -> bool:
        return self.kind == "lora" or self.activations == ("identity",)

    def describe(self) -> str:
        if self.kind == "lora":
            return f"r={self.width}"
        act = self.activations[0] if len(self.activations) == 1 else "search"
        return f"{'id' if act == 'identity' else act} w={self.width}"


@dataclass
class Structure:
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
        order = list(BOTTLENECK_SITES) + list(LORA_SITES)
        present = {m.site for m in self.modules}
        return [s for s in order if s in present]

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
            raise ValueError(f"Unsupported structure format {data.get('format')!r}; this slaft reads {STRUCTURE_FORMAT}.")
        modules = [ModuleSpec(**{**m, "activations": tuple(m.get("activations", ()))}) for m in data["modules"]]
        return cls(modules=modules, discrete=bool(data["discrete"]), num_layers=int(data["num_layers"]))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Structure":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def diff(self, other: "Structure") -> list[str]:
        """Human-readable differences, one line per (layer, site) that changed."""
        mine = {m.key: m for m in self.modules}
        theirs = {m.key: m for m in other.modules}
        lines = []
        for key in sorted(set(mine) | set(theirs), key=lambda k: (int(k.split(".")[0]), k)):
            a, b = mine.get(key), theirs.get(key)
            if a == b:
                continue
            left = a.describe() if a else "-"
            right = b.describe() if b else "-"
            lines.append(f"layer {key.split('.', 1)[0]:>2} {key.split('.', 1)[1]:<16} {left} -> {right}")
        return lines

    def table(self) -> str:
        """Layers x sites, each cell the module's activation and width (or '.' where the site is empty)."""
        sites = self.sites()
        if not sites:
            return "(no modules)"
        cells = [[(spec.describe() if (spec := self.get(layer, site)) else ".") for site in sites]
                 for layer in range(self.num_layers)]
        labels = [SITE_LABELS.get(site, site) for site in sites]
        widths = [max(len(labels[j]), *(len(row[j]) for row in cells)) for j in range(len(sites))]
        rows = ["layer  " + "  ".join(f"{label:>{w}}" for label, w in zip(labels, widths))]
        rows += [f"{i:>5}  " + "  ".join(f"{c:>{w}}" for c, w in zip(row, widths)) for i, row in enumerate(cells)]
        return "\n".join(rows)

    def __str__(self) -> str:
        kind = "learned structure" if self.discrete else "candidate space"
        return f"{kind}: {self.num_sites} modules, {self.num_params:,} parameters\n{self.table()}"
