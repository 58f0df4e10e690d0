"""SlaftConfig: the candidate search space, what decides how much of it survives, and the search schedule.

The config is read at the edges (injection, the search, the CLI); modules and gates take explicit arguments.
It round-trips through JSON (inside ``slaft_config.json``), like peft's configs, and every field is a command-line
flag of ``slaft train`` (built from this dataclass by ``cli.py``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Optional

from .sites import SITE_NAMES, is_known_site, site

ACTIVATIONS = ("identity", "relu", "gelu", "silu", "tanh")
ALLOCATORS = ("importance", "gates")
SCOPES = ("global", "layer")
# The default candidate space (``sites`` unset) is LoRA on every linear of every block. The bottleneck adapters
# (attn_adapter, ffn_adapter, parallel_adapter) stay available through ``sites``. The default leaves them out because
# no measurement keeps them: with an adapter after each feed-forward block, protocol 2's budget runs at LoRA q,v's
# size scored 1.0 lower over four tasks and five seeds, and its λ-mode runs tied while keeping a third more
# parameters (BENCHMARKS.md).
SITE_HELP = (f"named sites {SITE_NAMES} (those a block has), or lora:<path of a linear in the block> for any "
             "other linear")


class ConfigError(ValueError):
    """A configuration value a user can fix; the message says how."""


class ConfigWarning(UserWarning):
    """A SlaftConfig field set away from its default where it cannot act under the other settings (e.g. an adapter
    width without a bottleneck-adapter site); the message says why and what to change."""


# Fields that act only in some candidate spaces or with one allocator (see ``SlaftConfig._warn_idle_fields``).
BOTTLENECK_FIELDS = ("adapter_width", "width_block", "activations")
CHOICE_FIELDS = ("tau_start", "tau_end", "hard_choice")  # the Gumbel-softmax choice among a bottleneck's activations
LORA_FIELDS = ("lora_rank", "lora_alpha", "rank_block", "split_fused", "target_modules", "exclude_modules")
GATE_FIELDS = ("gate_beta", "gate_limits")  # the hard-concrete gates of allocator "gates"


def closest(name: str, choices) -> str:
    """' Did you mean X?' for the closest of ``choices``, or ''."""
    match = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
    return f" Did you mean {match[0]!r}?" if match else ""


def list_entries(entries) -> list[tuple[str, str, str]]:
    """Command-line list entries, space- or comma-separated (``--tasks``, ``--task-passes``), each split at its first
    "=": (name, "=" or "", value), stripped; empty items are skipped."""
    items = (part.strip() for entry in entries or () for part in str(entry).split(","))
    return [(name.strip(), sep, value.strip()) for name, sep, value in (item.partition("=") for item in items if item)]


# Fields of older configs (slaft 0.1) that no longer mean anything; they are dropped when loading.
RETIRED_FIELDS = ("budget_tolerance", "gate_init_keep", "penalty_warmup_ratio", "search_steps", "adapter_dropout",
                  "architecture")  # architecture: the table of slaft <= 0.2; blocks are found from the model now


@dataclass
class SlaftConfig:
    """What slaft searches over and how it decides what survives. The defaults are the method as benchmarked.

    Sequence fields are annotated as lists (so ``HfArgumentParser`` makes them multi-value flags) and stored as
    tuples.
    """

    # The candidate space
    sites: Optional[list[str]] = field(
        default=None,
        metadata={"help": f"Candidate sites in every block: {SITE_HELP}. Default: LoRA on every linear of every "
                          "block; name sites to narrow it, or to add e.g. ffn_adapter for a bottleneck adapter."},
    )
    target_modules: Optional[list[str]] = field(
        default=None,
        metadata={"help": "As peft's target_modules: the linears that get low-rank candidates, by name (a module "
                          "name equal to or ending in '.NAME', e.g. q_proj v_proj), by regular expression (a Python "
                          "string, matched against the whole module name), or all-linear. Default: every linear of "
                          "every block (a mixture's routers aside)."},
    )
    exclude_modules: Optional[list[str]] = field(
        default=None,
        metadata={"help": "As peft's exclude_modules: linears (names or a regular expression, as target_modules) "
                          "that get no candidate."},
    )
    split_fused: bool = field(
        default=False,
        metadata={"help": "Split fused query-key-value projections (GPT-2's c_attn, Phi-3's qkv_proj) into query, key "
                          "and value rows, each a site of its own (lora_q, lora_k, lora_v), so each gets its own "
                          "learned rank; off: one low-rank update on the fused linear, as peft has it."},
    )
    block_lists: Optional[list[str]] = field(
        default=None,
        metadata={"help": "Paths of the model's block lists (nn.ModuleList), e.g. model.layers. Default: found from "
                          "the model (its outermost module lists whose elements hold linears)."},
    )
    layers: Optional[list[int]] = field(
        default=None, metadata={"help": "Blocks that get candidates (0-based). Default: every block."}
    )
    lora_rank: int = field(default=8, metadata={"help": "Candidate rank of every low-rank update."})
    lora_alpha: float = field(
        default=16.0, metadata={"help": "LoRA scale numerator: the update is (alpha / lora_rank) * B A, kept after "
                                        "pruning, as peft's LoRA keeps it."}
    )
    rank_block: int = field(
        default=1, metadata={"help": "Rank components pruned together: the smallest rank a kept update can have. "
                                     "1 (the default) lets a small budget keep rank-one updates on many linears."}
    )
    adapter_width: int = field(default=32, metadata={"help": "Candidate hidden width of every bottleneck adapter."})
    width_block: int = field(
        default=8, metadata={"help": "Hidden units pruned together: the smallest width a kept adapter can have."}
    )
    activations: list[str] = field(
        default_factory=lambda: ["relu", "gelu"],
        metadata={"help": f"Activation paths each bottleneck adapter chooses among (Gumbel-softmax), from "
                          f"{ACTIVATIONS}. 'identity' makes a serial adapter the same function class as LoRA on "
                          "its host, so it is left out by default."},
    )
    dropout: float = field(default=0.0, metadata={"help": "Dropout on every candidate module's input in training."})
    modules_to_save: Optional[list[str]] = field(
        default=None,
        metadata={"help": "Modules of the base model (dotted paths, e.g. bert.pooler) that train fully and are saved "
                          "with the adapters, besides the architecture's task head (as peft's modules_to_save)."},
    )

    # How much survives
    sparsity_weight: float = field(
        default=1.0,
        metadata={"help": "λ: a unit survives when its importance per parameter is at least λ times the candidate "
                          "space's average, measured when the search starts. Larger = smaller structure; 0 keeps "
                          "everything. λ mode only: refused together with target_params (a budget)."},
    )
    target_params: Optional[float] = field(
        default=None,
        metadata={"help": "Budget mode: adapter parameters to keep, as a count (>= 1) or as a fraction of the "
                          "backbone (< 1). The learned structure lands at most 2 percent under it."},
    )

    # How the search decides what survives
    allocator: str = field(
        default="importance",
        metadata={"help": "What ranks the units: 'importance' (Fisher importance of each unit's gate, measured "
                          "while training) or 'gates' (hard-concrete gates trained by the task loss, the budget "
                          "held by a solved shift)."},
    )
    importance_scope: str = field(
        default="global",
        metadata={"help": "Where units compete: 'global' (every unit against every other, by importance per "
                          "parameter) or 'layer' (importance per parameter relative to the unit's own block)."},
    )
    block_share: float = field(
        default=0.0,
        metadata={"help": "Fraction of the budget spread evenly over the blocks first: each block keeps its own best "
                          "units up to block_share x budget / blocks, then all units compete for the rest "
                          "(0 = every unit competes across the model)."},
    )
    prior_sites: list[str] = field(
        default_factory=lambda: ["lora_q", "lora_v"],
        metadata={"help": "The baseline structure's sites (LoRA on query and value, as a person would pick): their "
                          "units start with prior_weight times the evidence of the others."},
    )
    prior_weight: float = field(
        default=1.0,
        metadata={"help": "How much more importance per parameter another unit needs to displace a unit of the "
                          "baseline structure (1 = no preference)."},
    )
    search_start: float = field(
        default=0.2, metadata={"help": "Fraction of training steps every candidate trains, before pruning starts."}
    )
    search_end: float = field(
        default=0.5, metadata={"help": "Fraction of training steps after which the structure is final: pruned "
                                       "modules are removed and the rest trains on (same optimizer state)."}
    )
    decided_lr_scale: float = field(
        default=1.0, metadata={"help": "Multiplies the learning rate of every trained weight once the structure is "
                                       "decided (the rest of the schedule unchanged): a small decided structure can "
                                       "take a higher rate than the dense search (1 = one rate throughout)."}
    )
    importance_beta: float = field(
        default=0.9, metadata={"help": "Smoothing of the importance estimates (exponential moving average)."}
    )
    structure_lr: float = field(
        default=0.05, metadata={"help": "Learning rate of gate logits and activation-choice logits."}
    )
    gate_beta: float = field(default=2 / 3, metadata={"help": "Hard-concrete temperature β (allocator 'gates')."})
    gate_limits: list[float] = field(
        default_factory=lambda: [-0.1, 1.1],
        metadata={"help": "Hard-concrete stretch interval (γ, ζ), with γ < 0 < 1 < ζ (allocator 'gates')."},
    )
    tau_start: float = field(default=1.0, metadata={"help": "Gumbel-softmax temperature when training starts."})
    tau_end: float = field(default=0.1, metadata={"help": "Gumbel-softmax temperature when the structure is final."})
    hard_choice: bool = field(default=False, metadata={"help": "Straight-through hard Gumbel-softmax in training."})
    total_steps: Optional[int] = field(
        default=None,
        metadata={"help": "Training length in optimizer steps, for the schedules. Default: the Trainer's max_steps."},
    )

    # Bookkeeping written by slaft itself
    base_model_name_or_path: Optional[str] = field(default=None, metadata={"help": "Base model id or path."})

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{f.name} must be a finite number, got {value}.")
        if self.sites is not None:
            self.sites = tuple(self.sites)
            if not self.sites:
                raise ConfigError(f"sites is empty: name at least one ({SITE_HELP}), or leave it unset.")
            for site in self.sites:
                if not is_known_site(site):
                    raise ConfigError(f"Unknown site {site!r}.{closest(site, SITE_NAMES)} Known sites: {SITE_HELP}.")
        for name in ("target_modules", "exclude_modules"):
            value = getattr(self, name)
            if value is None or isinstance(value, str):
                if isinstance(value, str):
                    try:
                        re.compile(value)
                    except re.error as err:
                        raise ConfigError(f"{name}={value!r} is not a valid regular expression ({err}).") from err
                continue
            value = tuple(str(v) for v in value)
            if not value:
                raise ConfigError(f"{name} is empty: name at least one module, or leave it unset.")
            setattr(self, name, "all-linear" if value == ("all-linear",) else value)
        if self.block_lists is not None:
            self.block_lists = tuple(self.block_lists)
        if self.layers is not None:
            self.layers = tuple(int(i) for i in self.layers)
            if not self.layers or min(self.layers) < 0:
                raise ConfigError("layers must be a non-empty list of block indices >= 0, or unset for all blocks.")
        if self.modules_to_save is not None:
            self.modules_to_save = tuple(self.modules_to_save)
        self.activations = tuple(self.activations)
        if not self.activations:
            raise ConfigError(f"activations is empty: name at least one of {ACTIVATIONS}.")
        for act in self.activations:
            if act not in ACTIVATIONS:
                raise ConfigError(f"Unknown activation {act!r}.{closest(act, ACTIVATIONS)} Known: {ACTIVATIONS}.")
        for name in ("lora_rank", "rank_block", "adapter_width", "width_block"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.lora_rank % self.rank_block:
            raise ConfigError(f"lora_rank ({self.lora_rank}) must be a multiple of rank_block ({self.rank_block}).")
        if self.adapter_width % self.width_block:
            raise ConfigError(f"adapter_width ({self.adapter_width}) must be a multiple of width_block "
                              f"({self.width_block}).")
        for name, high in (("lora_alpha", 1e4), ("structure_lr", 10.0), ("decided_lr_scale", 100.0),
                           ("gate_beta", 100.0), ("tau_start", 100.0), ("tau_end", 100.0)):
            if not 0 < getattr(self, name) <= high:
                raise ConfigError(f"{name} must be in (0, {high:g}], got {getattr(self, name):g}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}.")
        if not self.sparsity_weight >= 0:
            raise ConfigError(f"sparsity_weight must be >= 0 (0 keeps everything), got {self.sparsity_weight}.")
        if self.target_params is not None and not self.target_params > 0:
            raise ConfigError(f"target_params must be > 0: a parameter count (e.g. 50000) or a fraction of the "
                              f"backbone (e.g. 0.01), got {self.target_params}.")
        if self.allocator not in ALLOCATORS:
            raise ConfigError(f"Unknown allocator {self.allocator!r}.{closest(self.allocator, ALLOCATORS)} "
                              f"Known: {ALLOCATORS}.")
        self.prior_sites = tuple(self.prior_sites)
        for site in self.prior_sites:
            if not is_known_site(site):
                raise ConfigError(f"Unknown prior site {site!r}.{closest(site, SITE_NAMES)} Known sites: {SITE_HELP}.")
        if not 1.0 <= self.prior_weight <= 1e6:
            raise ConfigError(f"prior_weight must be in [1, 1e6] (1 = no preference), got {self.prior_weight}.")
        if self.importance_scope not in SCOPES:
            raise ConfigError(f"Unknown importance_scope {self.importance_scope!r}."
                              f"{closest(self.importance_scope, SCOPES)} Known: {SCOPES}.")
        if not 0.0 <= self.block_share <= 1.0:
            raise ConfigError(f"block_share must be in [0, 1] (a fraction of the budget), got {self.block_share}.")
        if not 0.0 <= self.search_start < self.search_end <= 1.0:
            raise ConfigError(f"Need 0 <= search_start < search_end <= 1 (fractions of the training steps), got "
                              f"search_start={self.search_start}, search_end={self.search_end}.")
        if not 0.0 <= self.importance_beta < 1.0:
            raise ConfigError(f"importance_beta must be in [0, 1), got {self.importance_beta}.")
        self.gate_limits = tuple(float(x) for x in self.gate_limits)  # type: ignore[assignment]
        if len(self.gate_limits) != 2 or not (self.gate_limits[0] < 0.0 and self.gate_limits[1] > 1.0):
            raise ConfigError(f"gate_limits (γ, ζ) need γ < 0 and ζ > 1 so gates can be exactly 0 or 1, got "
                              f"{self.gate_limits}.")
        if self.total_steps is not None and self.total_steps < 1:
            raise ConfigError(f"total_steps must be >= 1 or unset, got {self.total_steps}.")
        if self.target_params is not None and self.sparsity_weight != _default("sparsity_weight"):
            raise ConfigError(f"sparsity_weight={self.sparsity_weight:g} and target_params={self.target_params:g} "
                              "both decide how much survives, and with a budget the weight is ignored. Keep one: "
                              "drop sparsity_weight for budget mode, or target_params for λ mode.")
        self._warn_idle_fields()

    def _changed(self, names) -> list[str]:
        """Those of ``names`` set away from their defaults."""
        return [name for name in names if getattr(self, name) != _default(name)]

    def _warn_idle_fields(self) -> None:
        """A ``ConfigWarning`` for each group of fields set away from their defaults that cannot act here."""
        kinds = {site(name).is_bottleneck for name in self.sites} if self.sites is not None else {False}
        space = f"sites={list(self.sites)}" if self.sites is not None else "the default sites, LoRA on every linear"
        choice = True in kinds and len(self.activations) > 1  # a bottleneck that chooses among activations
        if True not in kinds:
            idle = self._changed(BOTTLENECK_FIELDS + CHOICE_FIELDS)
            _warn(idle, f"no candidate site is a bottleneck adapter ({space}). Add attn_adapter, ffn_adapter or "
                        "parallel_adapter to sites, or leave {them} at the defaults.")
        elif not choice:
            _warn(self._changed(CHOICE_FIELDS), f"with one activation ({self.activations[0]}) a bottleneck has no "
                                                "choice to relax. Name two or more activations, or leave {them} at "
                                                "the defaults.")
        if False not in kinds:
            _warn(self._changed(LORA_FIELDS), f"no candidate site is a low-rank update ({space}). Add lora_* sites "
                                              "(e.g. lora_q, lora_v), or leave {them} at the defaults.")
        if self.allocator == "importance":
            _warn(self._changed(GATE_FIELDS), "allocator='importance' has no hard-concrete gates to shape. Pass "
                                              "allocator='gates', or leave {them} at the defaults.")
            if not choice:
                _warn(self._changed(("structure_lr",)), "it trains the gate logits of allocator='gates' and the "
                                                        "activation choice of bottleneck adapters with several "
                                                        "activations; this config has neither.")
        if self.prior_weight == 1.0:
            _warn(self._changed(("prior_sites",)), "prior_weight=1 gives the prior sites no preference. Raise "
                                                   "prior_weight, or leave prior_sites at its default.")
        elif self.sites is not None and not set(self.prior_sites) & set(self.sites):
            _warn(["prior_weight"], f"none of prior_sites {list(self.prior_sites)} is a candidate site ({space}).")
        if self.search_end == 1.0:
            _warn(self._changed(("decided_lr_scale",)), "with search_end=1 the structure is decided when training "
                                                        "ends: no step trains the decided structure.")

    def resolve_target(self, backbone_params: int, candidate_params: int) -> int | None:
        """The budget as a parameter count, checked against the candidate space."""
        if self.target_params is None:
            return None
        target = self.target_params * backbone_params if self.target_params < 1 else self.target_params
        target = int(round(target))
        if target >= candidate_params:
            raise ConfigError(
                f"target_params={self.target_params:g} means {target:,} parameters, but the candidate space holds "
                f"only {candidate_params:,}: nothing would be pruned. Ask for fewer, or widen the space "
                "(lora_rank, adapter_width, sites)."
            )
        if target < 1:
            raise ConfigError(f"target_params={self.target_params:g} rounds to no parameters at all; ask for more.")
        return target

    # JSON round trip ---------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every field, sequences as lists: what ``slaft_config.json`` holds."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SlaftConfig":
        """The config a ``to_dict`` (or an older slaft's saved config) describes; unknown fields are refused."""
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k not in RETIRED_FIELDS}
        if data.get("target_params") is not None:  # slaft <= 0.2 stored a λ beside a budget and ignored it
            data.pop("sparsity_weight", None)
        unknown = sorted(set(data) - known)
        if unknown:
            hint = "".join(closest(k, sorted(known)) for k in unknown)
            raise ConfigError(f"Unknown SlaftConfig field(s) {unknown}.{hint}")
        return cls(**data)


def _default(name: str):
    """A SlaftConfig field's default as the config stores it (sequences as tuples)."""
    spec = next(f for f in dataclasses.fields(SlaftConfig) if f.name == name)
    value = spec.default_factory() if spec.default is dataclasses.MISSING else spec.default
    return tuple(value) if isinstance(value, list) else value


def _warn(fields: list[str], why: str) -> None:
    """One ``ConfigWarning`` naming ``fields`` (none: nothing to say) and why they cannot act."""
    if fields:
        verb = "has" if len(fields) == 1 else "have"
        why = why.replace("{them}", "it" if len(fields) == 1 else "them")
        warnings.warn(f"SlaftConfig: {', '.join(fields)} {verb} no effect: {why}", ConfigWarning, stacklevel=5)
