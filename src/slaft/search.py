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
many steps the run has.

The search has a task axis. One task is the single-task case; several tasks share one pool of candidate modules
(``slaft.multitask``): each task has its own mask and importances over the pool's units and its own budget, the
pool (the union of the tasks' units, what is stored) a budget of its own, and each step's gradients count for the
task of its batch (``set_task``). ``StructureSearch`` holds no state of its own that a checkpoint would lose: masks,
importances and budgets are buffers of a ``SearchState`` module inside the model.
"""

from __future__ import annotations

import torch
from torch import nn

from .allocation import Units, budget_at_weight, ranking_scores, select, solve_shift, task_scores
from .config import ConfigError, SlaftConfig
from .gates import GumbelChoice, annealed_temperature, pruned_fraction
from .inject import remove_module
from .sites import fixed_cost, unit_cost

GATE_INIT_SPREAD = 2.0  # gate logits start at this many standard deviations per std of log importance density
STATE_NAME = "search_state"  # the model attribute (and state-dict prefix) of the search's buffers


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


def remove_from_optimizer(optimizer, params: list[nn.Parameter]) -> None:
    """Drop ``params`` (and their state) from a torch optimizer."""
    if optimizer is None or not params:
        return
    gone = {id(p) for p in params}
    for group in optimizer.param_groups:
        group["params"] = [p for p in group["params"] if id(p) not in gone]
    for param in params:
        optimizer.state.pop(param, None)


class SearchState(nn.Module):
    """The search's state as buffers, so checkpoints and device moves carry it: per task (rows) the units' masks,
    their smoothed Fisher importances and the number of updates folded in, the tasks' budgets and the pool's
    (-1 until pruning starts fixes them)."""

    def __init__(self, num_tasks: int, num_units: int) -> None:
        super().__init__()
        self.register_buffer("masks", torch.ones(num_tasks, num_units, dtype=torch.bool))
        self.register_buffer("importance", torch.zeros(num_tasks, num_units))
        self.register_buffer("updates", torch.zeros(num_tasks, dtype=torch.long))
        self.register_buffer("budgets", torch.full((num_tasks,), -1, dtype=torch.long))
        self.register_buffer("pool_budget", torch.tensor(-1, dtype=torch.long))


class StructureSearch:
    """Drives the gates of a searching slaft model (``model.search``); ``SlaftCallback`` calls it each step.

    ``num_tasks`` rows of state; with several tasks, ``pool_share`` (or ``pool_params``) sizes the pool against the
    sum of the tasks' budgets and units of ``exclusive_sites`` serve one task at most. The search registers its
    ``SearchState`` on the model as ``model.search_state``."""

    def __init__(self, model, config: SlaftConfig, *, num_tasks: int = 1, pool_share: float = 1.0,
                 pool_params: float | None = None, exclusive_sites: tuple[str, ...] = ()) -> None:
        if num_tasks > 1 and config.allocator != "importance":
            raise ConfigError("Multi-task structure learning ranks units by importance: use allocator='importance'.")
        self.model, self.config = model, config
        self.total_steps = config.total_steps
        self.driven = False  # set once a callback (or the user's own loop) drives the schedule
        self.frozen = False  # decided, but its modules kept whole (distributed training: see freeze)
        self.keys = [(layer, site) for layer, site, _ in model.slaft_modules()]
        self.choices = [m for m in model.modules() if isinstance(m, GumbelChoice)]
        self.units = build_units(model, config)
        self.target = config.resolve_target(model.backbone_params, model.candidate.num_params)
        self.pool_share, self.pool_params = pool_share, pool_params
        sites = [site for _, site, module in model.slaft_modules() for _ in range(module.gate.num_units)]
        self.exclusive = torch.tensor([site in exclusive_sites for site in sites], dtype=torch.bool)
        setattr(model, STATE_NAME, SearchState(num_tasks, self.units.cost.numel()))
        self.active = 0

    @property
    def state(self) -> SearchState:
        return getattr(self.model, STATE_NAME)

    @property
    def num_tasks(self) -> int:
        return self.state.masks.shape[0]

    # The model's modules and flat views over their units ---------------------------------------------------------
    def gates(self):
        return [module.gate for _, _, module in self.model.slaft_modules()]

    def _flat(self, read) -> torch.Tensor:
        """``read(gate)`` of every gate, concatenated in unit order (on the CPU, as floats)."""
        return torch.cat([read(gate).detach().float().cpu() for gate in self.gates()])

    def _per_gate(self, flat: torch.Tensor):
        """(key, gate, its part of ``flat``) for every module, where ``flat``'s last axis runs over the units."""
        parts = torch.split(flat, [gate.num_units for gate in self.gates()], dim=-1)
        return zip(self.keys, self.gates(), parts)

    def set_task(self, index: int) -> None:
        """The gates take task ``index``'s mask: the next forward passes compute its structure, and the next
        gradients count for it."""
        self.active = index
        for _, gate, part in self._per_gate(self.state.masks[index]):
            gate.mask.copy_(part)

    def _set_masks(self, masks: torch.Tensor) -> None:
        self.state.masks.copy_(masks)
        self.set_task(self.active)

    def mask(self) -> torch.Tensor:
        """The active task's mask over the units."""
        return self.state.masks[self.active].cpu()

    # Schedule ----------------------------------------------------------------------------------------------------
    def steps(self) -> tuple[int, int, int]:
        """(total, step pruning starts, step the structure is final)."""
        return schedule_steps(self.config, self.total_steps, "slaft.SlaftTrainer or a Trainer with "
                                                              "slaft.SlaftCallback()")

    @property
    def started(self) -> bool:
        return int(self.state.pool_budget) >= 0

    @property
    def budget(self) -> int | None:
        """The first task's kept size at the end of the search (in λ mode, known once pruning starts)."""
        return int(self.state.budgets[0]) if self.started else self.target

    def budgets(self) -> tuple[list[int], int]:
        """(each task's budget, the pool's budget): fixed when pruning starts; before, what they would be now
        (nothing is fixed by asking). One task's pool is its budget."""
        if self.started:
            return [int(b) for b in self.state.budgets], int(self.state.pool_budget)
        scope = self.config.importance_scope
        tasks = [self.target if self.target is not None else
                 budget_at_weight(row.cpu(), self.units, self.config.sparsity_weight, scope)
                 for row in self.state.importance]
        if self.num_tasks == 1:
            return tasks, tasks[0]
        pool = self.pool_params or self.pool_share * sum(tasks)
        return tasks, int(min(round(pool), self.units.total))

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
            if not bool((self.state.importance > 0).any(dim=1).all()):
                return  # a task has shown no signal yet (B and W_up start at zero): keep training densely
            self._start_pruning()
        fraction, full = pruned_fraction(step, start, end), self.units.total
        tasks, pool = self.budgets()
        targets = [full - fraction * (full - budget) for budget in tasks]
        pool_target = full - fraction * (full - pool)
        if self.config.allocator == "gates":
            log_alpha = self._flat(lambda gate: gate.log_alpha)
            shift = solve_shift(log_alpha, self.units, targets[0], self.config.gate_beta, self.config.gate_limits)
            for _, gate, part in self._per_gate(shift):
                gate.shift.copy_(part)
                gate.sampling = True
        self._set_masks(self._select(targets, pool_target, by_importance=self.config.allocator == "importance"))

    def _select(self, budgets: list[float], pool: float, by_importance: bool) -> torch.Tensor:
        """(T, U) masks filling the budgets: ranked by importance per parameter (units kept so far first), or by the
        gates' keep probabilities (one task)."""
        if by_importance:
            scores = task_scores(self.state.importance.cpu(), self.units, self.config.importance_scope)
            return select(scores, self.units, budgets, pool, preferred=self.state.masks.cpu(),
                          exclusive=self.exclusive, block_share=self.config.block_share)
        keep = self._flat(lambda gate: gate.keep_probability())
        return select(keep[None], self.units, budgets, pool, block_share=self.config.block_share)

    @torch.no_grad()
    def _start_pruning(self) -> None:
        """Fix the budgets (λ mode: from the importances) and start the gate logits from the importance ranking."""
        tasks, pool = self.budgets()
        self.state.budgets.copy_(torch.tensor(tasks))
        self.state.pool_budget.fill_(pool)
        if self.config.allocator == "gates":
            density = ranking_scores(self.state.importance[0].cpu(), self.units, self.config.importance_scope)
            log_density = torch.log(density.clamp_min(1e-30))
            spread = log_density.std().clamp_min(1e-6) if log_density.numel() > 1 else torch.tensor(1.0)
            logits = GATE_INIT_SPREAD * (log_density - log_density.mean()) / spread
            for _, gate, part in self._per_gate(logits):
                gate.log_alpha.copy_(part.to(gate.log_alpha))

    @torch.no_grad()
    def after_backward(self) -> None:
        """Fold this step's gate gradients into the active task's importances, a moving average of (dL/dz)^2
        (before the optimizer step). Under DDP the gradients are averaged over ranks first, so every rank keeps the
        same importances and decisions."""
        flat = probe_gradients(self.gates())
        if flat is None or self.frozen:
            return
        state, index, beta = self.state, self.active, self.config.importance_beta
        square = flat.to(state.importance) ** 2
        first = int(state.updates[index]) == 0
        state.importance[index] = square if first else beta * state.importance[index] + (1 - beta) * square
        state.updates[index] += 1

    def should_decide(self, completed_steps: int) -> bool:
        return not self.frozen and completed_steps >= self.steps()[2]

    def final_masks(self) -> torch.Tensor:
        """(T, U): the units each task keeps at its full budget (once frozen, the masks as they are). Asking changes
        nothing: before pruning has started it answers with the budgets and ranking the units have now."""
        if self.frozen:
            return self.state.masks.cpu().clone()
        tasks, pool = self.budgets()
        return self._select(tasks, pool, by_importance=self.config.allocator == "importance" or not self.started)

    def module_masks(self, masks: torch.Tensor | None = None) -> dict[tuple[int, str], torch.Tensor]:
        """Per module, (T, width): the rank components / hidden units each task keeps (of ``final_masks()``)."""
        masks = self.final_masks() if masks is None else masks
        return {key: part.repeat_interleave(gate.block, dim=1) for key, gate, part in self._per_gate(masks)}

    @torch.no_grad()
    def freeze(self) -> None:
        """Decide without removing anything: the masks become the decision, gates stop sampling and choices take
        their arg-max. Under DDP the modules cannot change shape while the wrapper holds their parameters, so the
        decided structure trains on with its shut units masked, and is cut down once training ends."""
        self._set_masks(self.final_masks())
        for gate in self.gates():
            gate.sampling = False
        for choice in self.choices:
            choice.frozen = True
        self.frozen = True

    @torch.no_grad()
    def decide(self, optimizer=None) -> dict[tuple[int, str], torch.Tensor]:
        """The decision: every module keeps the union of the tasks' components (trained weights, and with the
        ``optimizer`` that trains the model its state, sliced along), a module no task keeps is removed, gates and
        structure logits leave the model and the optimizer. Returns, per kept module, (T, kept width): which of its
        components each task uses. The model is left without a search state."""
        optimizer = getattr(optimizer, "optimizer", optimizer)  # the torch optimizer inside accelerate's wrapper
        components = self.module_masks()
        removed, kept = list(self.structure_parameters()), {}
        for layer, site, module in list(self.model.slaft_modules()):
            removed += list(module.gate.parameters())  # the hard-concrete logits, if any
            per_task = components[(layer, site)]
            union = per_task.any(0)
            if union.any():
                module.prune_(union, optimizer)  # a bottleneck also fixes its activation to the chosen one
                kept[(layer, site)] = per_task[:, union]
            else:
                removed += list(module.parameters())
                remove_module(self.model.base_model, self.model.blocks, layer, site)
        remove_from_optimizer(optimizer, removed)
        delattr(self.model, STATE_NAME)
        return kept

    def structure_parameters(self) -> list[nn.Parameter]:
        """Gate logits and activation-choice logits: trained at ``structure_lr``, removed with the gates."""
        params = [gate.log_alpha for gate in self.gates() if gate.log_alpha is not None]
        return params + [choice.logits for choice in self.choices]

    def stats(self) -> dict[str, float]:
        """Numbers for the training logs: the active task's kept size, and with several tasks the pool's."""
        mask = self.mask()
        stats = {"kept_params": float(self.units.kept_params(mask)), "kept_units": float(mask.sum())}
        if self.budget is not None:
            stats["budget"] = float(self.budget)
        if self.num_tasks > 1:
            stats["pool_params"] = float(self.units.kept_params(self.state.masks.cpu().any(0)))
        return stats
