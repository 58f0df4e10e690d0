"""The structure search: what happens to the gates at each optimizer step, and when the structure becomes final.

One training run, three stretches (fractions of its steps, from ``SlaftConfig``):

    [0, search_start)            every candidate unit trains (gates open); the units' Fisher importance accumulates
    [search_start, search_end)   the kept size moves from the whole candidate space to the budget on a cubic
                                 schedule; the allocator decides which units stay:
                                   "importance": the most important units per parameter, units kept so far first
                                   "gates":      hard-concrete gates, started from the importance ranking and trained
                                                 by the task loss, their expected size held on schedule by a solved
                                                 shift; the decision keeps the most probable units
    [search_end, end]            the structure is final: shut units and modules are removed, the rest keeps its
                                 weights and its optimizer state and trains on

The budget is ``target_params``, or in λ mode the size of the units whose importance per parameter reaches λ times
the candidate space's average when pruning starts: a function of the knob and of ratios of importances, not of how
many steps the run has. ``StructureSearch`` holds no state of its own that a checkpoint would lose: masks,
importances and the budget live in buffers of the model.
"""

from __future__ import annotations

import torch
from torch import nn

from .allocation import Units, budget_at_weight, ranking_scores, select_within_budget, solve_shift
from .config import SlaftConfig
from .gates import GumbelChoice, annealed_temperature, pruned_fraction
from .sites import fixed_cost, unit_cost

GATE_INIT_SPREAD = 2.0  # gate logits start at this many standard deviations per std of log importance density


def schedule_steps(config: SlaftConfig, total_steps: int | None, trainer: str) -> tuple[int, int, int]:
    """(total, step pruning starts, step the structure is final) of a run of ``total_steps`` optimizer steps."""
    if total_steps is None:
        raise RuntimeError(f"The search does not know the training length: set SlaftConfig.total_steps, or train "
                           f"with {trainer}.")
    return (total_steps, round(config.search_start * total_steps),
            max(1, round(config.search_end * total_steps)))


def probe_gradients(gates) -> torch.Tensor | None:
    """The gates' dL/dz since the last call, flat and averaged over DDP ranks (None before any backward pass)."""
    grads = [gate.take_probe_gradient() for gate in gates]
    if any(g is None for g in grads):
        return None
    flat = torch.cat(grads)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(flat)
        flat /= torch.distributed.get_world_size()
    return flat


def build_units(model, config: SlaftConfig) -> Units:
    """The flat unit table (module, cost, fixed cost, block, prior) of a model's gated candidate modules, in
    ``model.slaft_modules()`` order."""
    costs, modules, fixed, layers, prior = [], [], [], [], []
    for index, (layer, site, module) in enumerate(model.slaft_modules()):
        spec, units = model.candidate.get(layer, site), module.gate.num_units
        costs += [float(module.gate.block * unit_cost(spec.kind, spec.in_features, spec.out_features))] * units
        modules += [index] * units
        layers += [layer] * units
        prior += [config.prior_weight if site in config.prior_sites else 1.0] * units
        fixed.append(float(fixed_cost(spec.kind, spec.out_features)))
    return Units(torch.tensor(modules, dtype=torch.long), torch.tensor(costs), torch.tensor(fixed),
                 torch.tensor(layers, dtype=torch.long), torch.tensor(prior))


class StructureSearch:
    """Drives the gates of a searching ``SlaftModel`` (``model.search``); ``SlaftCallback`` calls it each step."""

    def __init__(self, model, config: SlaftConfig) -> None:
        self.model, self.config = model, config
        self.total_steps = config.total_steps
        self.driven = False  # set once a callback (or the user's own loop) drives the schedule
        self.frozen = False  # decided, but its modules kept whole (distributed training: see freeze)
        self.keys = [(layer, site) for layer, site, _ in model.slaft_modules()]
        self.choices = [m for m in model.modules() if isinstance(m, GumbelChoice)]
        self.units = build_units(model, config)

    # The model's modules and flat views over their units ---------------------------------------------------------
    def gates(self):
        return [module.gate for _, _, module in self.model.slaft_modules()]

    def _flat(self, name: str) -> torch.Tensor:
        return torch.cat([getattr(gate, name).detach().float().cpu() for gate in self.gates()])

    def _set_masks(self, mask: torch.Tensor) -> None:
        start = 0
        for gate in self.gates():
            gate.mask.copy_(mask[start:start + gate.num_units])
            start += gate.num_units

    def mask(self) -> torch.Tensor:
        return self._flat("mask").bool()

    # Schedule ----------------------------------------------------------------------------------------------------
    def steps(self) -> tuple[int, int, int]:
        """(total, step pruning starts, step the structure is final)."""
        return schedule_steps(self.config, self.total_steps, "slaft.SlaftTrainer or a Trainer with "
                                                              "slaft.SlaftCallback()")

    @property
    def started(self) -> bool:
        return int(self.model.slaft_budget) >= 0

    @property
    def budget(self) -> int | None:
        """The kept size the search ends at (in λ mode, known once pruning starts)."""
        return int(self.model.slaft_budget) if self.started else self.model.target

    def begin_step(self, step: int) -> None:
        """Set temperatures, masks and gate shifts for optimizer step ``step`` (0-based)."""
        self.driven = True
        if self.frozen:
            return
        total, start, end = self.steps()
        tau = annealed_temperature(step, end, self.config.tau_start, self.config.tau_end)
        for choice in self.choices:  # once per step, not per forward
            choice.tau = tau
        if step < start:
            return
        if not self.started:
            if not bool((self._flat("importance") > 0).any()):
                return  # no unit has shown any signal yet (B and W_up start at zero): keep training densely
            self._start_pruning()
        target = self.target_at(step)
        if self.config.allocator == "importance":
            self._set_masks(self._select(target, by_importance=True))
            return
        log_alpha = torch.cat([gate.log_alpha.detach().float().cpu() for gate in self.gates()])
        shift = solve_shift(log_alpha, self.units, target, self.config.gate_beta, self.config.gate_limits)
        start_index = 0
        for gate in self.gates():
            gate.shift.copy_(shift[start_index:start_index + gate.num_units])
            gate.sampling = True
            start_index += gate.num_units
        self._set_masks(self._select(target, by_importance=False))

    def _select(self, budget: float, by_importance: bool) -> torch.Tensor:
        """The units that fill ``budget``: ranked by importance per parameter (units kept so far first), or by the
        gates' keep probabilities."""
        if by_importance:
            scores = ranking_scores(self._flat("importance"), self.units, self.config.importance_scope)
            return select_within_budget(scores, self.units, budget, preferred=self.mask(),
                                        block_share=self.config.block_share)
        return select_within_budget(self._flat_keep_probability(), self.units, budget,
                                    block_share=self.config.block_share)

    def target_at(self, step: int) -> float:
        total, start, end = self.steps()
        return self.units.total - pruned_fraction(step, start, end) * (self.units.total - self.budget)

    def _flat_keep_probability(self) -> torch.Tensor:
        return torch.cat([gate.keep_probability().detach().float().cpu() for gate in self.gates()])

    def budget_now(self) -> int:
        """The budget, or before pruning starts the one it would get now (nothing is fixed by asking)."""
        if self.started:
            return int(self.model.slaft_budget)
        if self.model.target is not None:
            return self.model.target
        return budget_at_weight(self._flat("importance"), self.units, self.config.sparsity_weight,
                                self.config.importance_scope)

    @torch.no_grad()
    def _start_pruning(self) -> None:
        """Fix the budget (λ mode: from the importances) and start the gate logits from the importance ranking."""
        importance = self._flat("importance")
        self.model.slaft_budget.fill_(self.budget_now())
        if self.config.allocator == "gates":
            density = ranking_scores(importance, self.units, self.config.importance_scope)
            log_density = torch.log(density.clamp_min(1e-30))
            spread = log_density.std().clamp_min(1e-6) if log_density.numel() > 1 else torch.tensor(1.0)
            logits = GATE_INIT_SPREAD * (log_density - log_density.mean()) / spread
            start = 0
            for gate in self.gates():
                gate.log_alpha.copy_(logits[start:start + gate.num_units].to(gate.log_alpha))
                start += gate.num_units

    def after_backward(self) -> None:
        """Fold this step's gate gradients into the importances (before the optimizer step). Under DDP the
        gradients are averaged over ranks first, so every rank keeps the same importances and decisions."""
        gates = self.gates()
        flat = probe_gradients(gates)
        if flat is None:
            return
        first = int(self.model.slaft_importance_updates) == 0
        start = 0
        for gate in gates:
            gate.update_importance(flat[start:start + gate.num_units], self.config.importance_beta, first)
            start += gate.num_units
        self.model.slaft_importance_updates += 1

    def should_decide(self, completed_steps: int) -> bool:
        return completed_steps >= self.steps()[2]

    def final_masks(self) -> dict[tuple[int, str], torch.Tensor]:
        """Per module, the kept rank components / hidden units (one entry per component), filling the budget. Asking
        changes nothing: before pruning has started it answers with the budget and ranking the units have now."""
        budget = self.budget_now()
        if self.frozen:
            mask = self.mask()
        else:
            mask = self._select(budget, by_importance=self.config.allocator == "importance" or not self.started)
        out, start = {}, 0
        for key, gate in zip(self.keys, self.gates()):
            out[key] = mask[start:start + gate.num_units].repeat_interleave(gate.block)
            start += gate.num_units
        return out

    @torch.no_grad()
    def freeze(self) -> None:
        """Decide without removing anything: the masks become the decision, gates stop sampling and choices take
        their arg-max. Under DDP the modules cannot change shape while the wrapper holds their parameters, so the
        decided structure trains on with its shut units masked, and is cut down once training ends."""
        masks = self.final_masks()
        for key, gate in zip(self.keys, self.gates()):
            gate.mask.copy_(masks[key][::gate.block])
            gate.sampling = False
        for choice in self.choices:
            choice.frozen = True
        self.frozen = True

    def structure_parameters(self) -> list[nn.Parameter]:
        """Gate logits and activation-choice logits: trained at ``structure_lr``, removed with the gates."""
        params = [gate.log_alpha for gate in self.gates() if gate.log_alpha is not None]
        return params + [choice.logits for choice in self.choices]

    def stats(self) -> dict[str, float]:
        """Numbers for the training logs."""
        mask = self.mask()
        stats = {"kept_params": float(self.units.kept_params(mask)), "kept_units": float(mask.sum())}
        if self.budget is not None:
            stats["budget"] = float(self.budget)
        return stats
