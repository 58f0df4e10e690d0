"""SlaftConfig: the candidate search space, the sparsity objective and the schedules.

The config is read at the edges (injection, training, the CLI); modules and gates take explicit arguments.
It round-trips through JSON (``slaft_config.json``), like peft's configs.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERIAL_SITES = ("attn_adapter", "ffn_adapter")
PARALLEL_SITES = ("parallel_adapter",)
BOTTLENECK_SITES = SERIAL_SITES + PARALLEL_SITES
LORA_SITES = ("lora_q", "lora_k", "lora_v", "lora_o", "lora_ffn_gate", "lora_ffn_in", "lora_ffn_out")
ALL_SITES = BOTTLENECK_SITES + LORA_SITES
ACTIVATIONS = ("identity", "relu", "gelu", "silu", "tanh")


class ConfigError(ValueError):
    """A configuration value a user can fix; the message says how."""


def _closest(name: str, choices: tuple[str, ...] | list[str]) -> str:
    match = difflib.get_close_matches(name, list(choices), n=1)
    return f" Did you mean {match[0]!r}?" if match else ""


# Fields older configs may carry that no longer mean anything; they are dropped when loading.
RETIRED_FIELDS = ("budget_tolerance",)  # never read: discretizing fills the budget from below


@dataclass
class SlaftConfig:
    """What slaft searches over and how it prunes. Every field has a default that works for the bundled MiniLM run."""

    sites: tuple[str, ...] | None = field(
        default=None,
        metadata={"help": f"Candidate sites per block, among {ALL_SITES}. None = every site the architecture has."},
    )
    layers: tuple[int, ...] | None = field(
        default=None, metadata={"help": "Blocks that get candidates (0-based). None = all blocks."}
    )
    adapter_width: int = field(default=64, metadata={"help": "Candidate hidden width of every bottleneck adapter."})
    lora_rank: int = field(default=8, metadata={"help": "Candidate rank of every low-rank update."})
    lora_alpha: float = field(default=16.0, metadata={"help": "LoRA scale numerator: the update is (alpha/rank)·B·A."})
    activations: tuple[str, ...] = field(
        default=("identity", "relu", "gelu", "silu"),
        metadata={"help": f"Activation paths each bottleneck chooses among, from {ACTIVATIONS}."},
    )
    adapter_dropout: float = field(default=0.0, metadata={"help": "Dropout on adapter inputs during training."})

    # Objective
    sparsity_weight: float = field(
        default=2.0,
        metadata={"help": "λ: loss added per million expected kept parameters. Larger = smaller structure."},
    )
    target_params: float | None = field(
        default=None,
        metadata={
            "help": "Budget mode: kept adapter parameters to land on, as a count (>= 1) or as a fraction of the "
            "backbone (< 1). Replaces sparsity_weight with a Lagrangian term (CoFi)."
        },
    )

    # Gates (Louizos et al. 2018) and choices (Jang et al. 2017)
    gate_init_keep: float = field(default=0.9, metadata={"help": "Initial probability that a gate is open."})
    gate_beta: float = field(default=2 / 3, metadata={"help": "Hard-concrete temperature β."})
    gate_limits: tuple[float, float] = field(
        default=(-0.1, 1.1), metadata={"help": "Hard-concrete stretch interval (γ, ζ), with γ < 0 < 1 < ζ."}
    )
    tau_start: float = field(default=1.0, metadata={"help": "Gumbel-softmax temperature at the start of search."})
    tau_end: float = field(default=0.1, metadata={"help": "Gumbel-softmax temperature at the end of search."})
    hard_choice: bool = field(default=False, metadata={"help": "Straight-through hard Gumbel-softmax in training."})

    # Schedules
    penalty_warmup_ratio: float = field(
        default=0.1, metadata={"help": "Fraction of search steps before the sparsity term switches on (linear ramp)."}
    )
    structure_lr: float = field(
        default=0.1, metadata={"help": "Learning rate of gate, choice and Lagrange-multiplier parameters."}
    )
    search_steps: int | None = field(
        default=None,
        metadata={"help": "Length of the schedules in optimizer steps. None = set by the Trainer (max_steps)."},
    )

    # Bookkeeping written by slaft itself
    base_model_name_or_path: str | None = field(default=None, metadata={"help": "Base model id or path."})
    architecture: str | None = field(default=None, metadata={"help": "Entry of the architecture table used."})

    def __post_init__(self) -> None:
        if self.sites is not None:
            self.sites = tuple(self.sites)
            if not self.sites:
                raise ConfigError(f"sites is empty: name at least one of {ALL_SITES}, or pass None for all of them.")
            for site in self.sites:
                if site not in ALL_SITES:
                    raise ConfigError(f"Unknown site {site!r}.{_closest(site, ALL_SITES)} Known sites: {ALL_SITES}.")
        if self.layers is not None:
            self.layers = tuple(int(i) for i in self.layers)
            if not self.layers or min(self.layers) < 0:
                raise ConfigError("layers must be a non-empty list of block indices >= 0, or None for all blocks.")
        self.activations = tuple(self.activations)
        if not self.activations:
            raise ConfigError(f"activations is empty: name at least one of {ACTIVATIONS}.")
        for act in self.activations:
            if act not in ACTIVATIONS:
                raise ConfigError(f"Unknown activation {act!r}.{_closest(act, ACTIVATIONS)} Known: {ACTIVATIONS}.")
        for name in ("adapter_width", "lora_rank"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if not 0.0 <= self.adapter_dropout < 1.0:
            raise ConfigError(f"adapter_dropout must be in [0, 1), got {self.adapter_dropout}.")
        if self.sparsity_weight < 0:
            raise ConfigError(f"sparsity_weight must be >= 0 (0 turns pruning off), got {self.sparsity_weight}.")
        if self.target_params is not None and self.target_params <= 0:
            raise ConfigError(
                f"target_params must be > 0: a parameter count (e.g. 50000) or a fraction of the backbone "
                f"(e.g. 0.01), got {self.target_params}."
            )
        if not 0.0 < self.gate_init_keep < 1.0:
            raise ConfigError(f"gate_init_keep is a probability in (0, 1), got {self.gate_init_keep}.")
        if self.gate_beta <= 0:
            raise ConfigError(f"gate_beta (hard-concrete temperature) must be > 0, got {self.gate_beta}.")
        self.gate_limits = tuple(float(x) for x in self.gate_limits)  # type: ignore[assignment]
        low, high = self.gate_limits
        if not (low < 0.0 and high > 1.0):
            raise ConfigError(f"gate_limits (γ, ζ) need γ < 0 and ζ > 1 so gates can be exactly 0 or 1, got {self.gate_limits}.")
        if self.tau_start <= 0 or self.tau_end <= 0:
            raise ConfigError(f"Temperatures must be > 0, got tau_start={self.tau_start}, tau_end={self.tau_end}.")
        if not 0.0 <= self.penalty_warmup_ratio < 1.0:
            raise ConfigError(f"penalty_warmup_ratio must be in [0, 1), got {self.penalty_warmup_ratio}.")
        if self.structure_lr <= 0:
            raise ConfigError(f"structure_lr must be > 0, got {self.structure_lr}.")
        if self.search_steps is not None and self.search_steps < 1:
            raise ConfigError(f"search_steps must be >= 1 or None, got {self.search_steps}.")

    @property
    def budget_mode(self) -> bool:
        return self.target_params is not None

    def resolve_target(self, backbone_params: int, candidate_params: int) -> int | None:
        """The budget as a parameter count, checked against the candidate space."""
        if self.target_params is None:
            return None
        target = self.target_params * backbone_params if self.target_params < 1 else self.target_params
        target = int(round(target))
        if target >= candidate_params:
            raise ConfigError(
                f"target_params={self.target_params} means {target:,} parameters, but the candidate space holds only "
                f"{candidate_params:,}: nothing would be pruned. Ask for fewer, or widen the space "
                f"(adapter_width, lora_rank, sites)."
            )
        if target < 1:
            raise ConfigError(f"target_params={self.target_params} rounds to no parameters at all; ask for more.")
        return target

    # JSON round trip ---------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SlaftConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k not in RETIRED_FIELDS}
        unknown = sorted(set(data) - known)
        if unknown:
            hint = "".join(_closest(k, sorted(known)) for k in unknown)
            raise ConfigError(f"Unknown SlaftConfig field(s) {unknown}.{hint}")
        return cls(**data)

    def to_json_file(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_json_file(cls, path: str | Path) -> "SlaftConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))
