"""MultiTaskSlaftModel: one frozen backbone, one pool of candidate modules, one learned structure per task.

While searching, every pool module carries the single-task unit gates; the model holds, per task, a mask over the
pool's units and their Fisher importances (buffers, so checkpoints keep them), and ``set_task`` puts the active
task's mask into the gates before a batch. Batches hold one task each (``TaskBatchSampler``). The schedule is the
single-task one (dense start, cubic pruning, decision); the allocation is sharing-aware (``allocation.py``).

At the decision the pool is cut down to the union of the tasks' units, keeping trained weights and optimizer state,
and each module's gate becomes a ``TaskComponentMask``: per task, which of the kept components it uses. A task's
output is then exactly its own structure's output, which ``export_task`` writes as a plain single-task adapter.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from ..allocation import budget_at_weight
from ..config import ConfigError, SlaftConfig
from ..gates import GumbelChoice, annealed_temperature, pruned_fraction
from ..backbone import FrozenBackbone
from ..inject import CONTAINER, attach, candidate_structure, remove_module
from ..io import AdapterLoadError
from ..model import remove_from_optimizer
from ..search import build_units, probe_gradients, schedule_steps
from ..structure import Structure
from .allocation import select_shared, sharing_matrix, task_scores
from .config import MultiTaskConfig, TaskInfo
from .heads import TaskRouter, head_for_task, is_label_sized
from .store import read_multitask, write_multitask, write_single_task

TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # task names name files (heads/<task>.safetensors)
SEARCH_BUFFERS = ("task_masks", "task_importance", "task_updates", "task_budgets", "pool_budget")


class TaskComponentMask(nn.Module):
    """A decided pool module's gate: for each task, which of the module's kept components (ranks or hidden units)
    the task uses; a task that uses none gets no output from the module at all (its bias included)."""

    def __init__(self, masks: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("masks", masks.bool())  # (tasks, width)
        self.active = 0

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.masks[self.active].to(h.dtype)


class MultiTaskSlaftModel(FrozenBackbone):
    """See the module docstring. ``base_model`` is a sequence-classification model; its label-sized head parts
    become per-task routers."""

    def __init__(self, base_model: nn.Module, config: SlaftConfig, tasks: list[TaskInfo],
                 multitask: MultiTaskConfig | None = None, pool: Structure | None = None) -> None:
        names = [task.name for task in tasks]
        if not tasks or len(set(names)) != len(names):
            raise ConfigError(f"A multi-task model needs tasks with distinct names, got {names}.")
        bad = [name for name in names if not TASK_NAME.fullmatch(name)]
        if bad:
            raise ConfigError(f"Task names {bad} cannot name files: use letters, digits, '_', '-' and '.'.")
        if config.allocator != "importance":
            raise ConfigError("Multi-task structure learning ranks units by importance: use allocator='importance'.")
        if config.block_share:
            raise ConfigError("block_share is not supported by multi-task pools yet: set block_share=0.")
        super().__init__(base_model, config)
        self.tasks, self.multitask = list(tasks), multitask or MultiTaskConfig()
        if not self.head_names:
            raise ConfigError(f"{type(base_model).__name__} has no task head: load the backbone with "
                              "AutoModelForSequenceClassification for multi-task training.")
        self.router_names = self._build_routers()
        config = self.slaft_config
        self.candidate = candidate_structure(self.blocks, config)
        self.discrete = pool is not None
        self.pool_structure = pool if pool is not None else self.candidate
        attach(base_model, self.blocks, self.pool_structure, config, gated=not self.discrete)
        count = len(tasks)
        if self.discrete:
            for _, _, module in self.slaft_modules():
                device = next(module.parameters()).device
                module.gate = TaskComponentMask(torch.ones(count, module.width, dtype=torch.bool, device=device))
            self.units = None
        else:
            self.units = build_units(self, config)
            size = self.units.cost.numel()
            private = set(self.multitask.private_sites or ())
            sites = [site for _, site, module in self.slaft_modules() for _ in range(module.gate.num_units)]
            self.exclusive = torch.tensor([site in private for site in sites], dtype=torch.bool)
            self.register_buffer("task_masks", torch.ones(count, size, dtype=torch.bool))
            self.register_buffer("task_importance", torch.zeros(count, size))
            self.register_buffer("task_updates", torch.zeros(count, dtype=torch.long))
            self.register_buffer("task_budgets", torch.full((count,), -1, dtype=torch.long))
            self.register_buffer("pool_budget", torch.tensor(-1, dtype=torch.long))
        self.total_steps = config.total_steps
        self.frozen = False  # decided under DDP: masks final, modules cut down when training ends
        self.decided_at_step: int | None = None
        self.active = 0
        self.loss_sums = torch.zeros(count)  # per-task training loss since the last log (for the logs)
        self.loss_counts = torch.zeros(count)
        self.set_task(0)

    # Plumbing ----------------------------------------------------------------------------------------------------
    def _build_routers(self) -> list[str]:
        base_labels = int(self.base_model.config.num_labels)
        routers = []
        self._head_templates = {}  # the base's own head parts, for tasks added later (not parameters of the model)
        for name in self.head_names:
            module = self.base_model.get_submodule(name)
            self._head_templates[name] = copy.deepcopy(module)
            if not is_label_sized(module, base_labels) and self.multitask.shared_heads:
                module.requires_grad_(True)  # shared by every task
                continue
            copies = {task.name: self._new_head(name, task) for task in self.tasks}
            router = TaskRouter(copies)
            router.requires_grad_(True)
            parent, _, child = name.rpartition(".")
            setattr(self.base_model.get_submodule(parent) if parent else self.base_model, child, router)
            routers.append(name)
        return routers

    def _new_head(self, name: str, task: TaskInfo) -> nn.Module:
        template, base_labels = self._head_templates[name], int(self.base_model.config.num_labels)
        if is_label_sized(template, base_labels):
            return head_for_task(template, base_labels, task.num_labels, self.base_model._init_weights)
        return copy.deepcopy(template)

    def add_task(self, task: TaskInfo) -> None:
        """Add a task to a decided model without changing the others' outputs: the pool, the shared head parts and
        the other tasks' heads are frozen; the new task uses every kept component of the pool and trains its own
        head (train it with a ``MultiTaskDataset`` whose ``task_ids`` name its index)."""
        if not self.discrete:
            raise RuntimeError("Tasks are added to a decided model: train (or discretize) the pool first.")
        if task.name in [t.name for t in self.tasks] or not TASK_NAME.fullmatch(task.name):
            raise ConfigError(f"Cannot add task {task.name!r}: its name is taken or cannot name a file.")
        self.requires_grad_(False)
        for name in self.router_names:
            head = self._new_head(name, task).to(next(self.base_model.parameters()).device)
            self.base_model.get_submodule(name).tasks[task.name] = head.requires_grad_(True)
        for gate in self.gates():
            gate.masks = torch.cat([gate.masks, torch.ones_like(gate.masks[:1])])
        self.tasks.append(task)
        self.loss_sums = torch.cat([self.loss_sums, self.loss_sums.new_zeros(1)])
        self.loss_counts = torch.cat([self.loss_counts, self.loss_counts.new_zeros(1)])

    def task_index(self, task: str | int) -> int:
        if isinstance(task, int):
            return task
        names = [t.name for t in self.tasks]
        if task not in names:
            raise KeyError(f"Unknown task {task!r}; this model has {names}.")
        return names.index(task)

    def gates(self):
        return [module.gate for _, _, module in self.slaft_modules()]

    def set_task(self, task: str | int) -> None:
        """Make ``task`` the one the next forward passes compute: its head and its structure."""
        index = self.task_index(task)
        self.active = index
        for name in self.router_names:
            self.base_model.get_submodule(name).active = self.tasks[index].name
        if self.discrete:
            for gate in self.gates():
                gate.active = index
            return
        start = 0
        row = self.task_masks[index]
        for gate in self.gates():
            gate.mask.copy_(row[start:start + gate.num_units])
            start += gate.num_units

    def structure_parameters(self) -> list[nn.Parameter]:
        return [m.logits for m in self.modules() if isinstance(m, GumbelChoice)]

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
                labels=None, task=None, **kwargs):
        """The active task's forward (``task``: a batch's task ids, all equal, selects it first)."""
        if task is not None:
            ids = torch.unique(task)
            if ids.numel() != 1:
                raise ValueError(f"A batch must hold one task, got task ids {ids.tolist()}; use TaskBatchSampler.")
            self.set_task(int(ids[0]))
        out = self.base_model(**self.model_inputs({"input_ids": input_ids, "attention_mask": attention_mask,
                                                   "token_type_ids": token_type_ids, "position_ids": position_ids,
                                                   "inputs_embeds": inputs_embeds}, kwargs))
        logits, loss = out.logits, None
        if labels is not None:
            loss = self.task_loss(logits, labels)
            if self.training:  # no host sync: the sums stay on the loss's device until a log reads them
                if self.loss_sums.device != loss.device:
                    self.loss_sums, self.loss_counts = self.loss_sums.to(loss.device), self.loss_counts.to(loss.device)
                self.loss_sums[self.active] += loss.detach().float()
                self.loss_counts[self.active] += 1
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def task_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.tasks[self.active].is_regression:
            return F.mse_loss(logits.squeeze(-1).float(), labels.float())
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), labels.view(-1))

    # Search ------------------------------------------------------------------------------------------------------
    def steps(self) -> tuple[int, int, int]:
        return schedule_steps(self.slaft_config, self.total_steps, "slaft.multitask.MultiTaskTrainer")

    @property
    def started(self) -> bool:
        return not self.discrete and int(self.pool_budget) >= 0

    def budgets(self) -> tuple[list[int], int]:
        """(each task's budget, the pool's budget): fixed when pruning starts; before, what they would be now."""
        if self.started:
            return [int(b) for b in self.task_budgets], int(self.pool_budget)
        target = self.slaft_config.resolve_target(self.backbone_params, self.candidate.num_params)
        scope = self.slaft_config.importance_scope
        tasks = [target if target is not None else
                 budget_at_weight(row, self.units, self.slaft_config.sparsity_weight, scope)
                 for row in self.task_importance]
        pool = self.multitask.pool_params or self.multitask.pool_share * sum(tasks)
        return tasks, int(min(round(pool), self.units.total))

    def begin_step(self, step: int) -> None:
        """Temperatures, and while pruning the tasks' masks for optimizer step ``step``."""
        if self.discrete or self.frozen:
            return
        total, start, end = self.steps()
        tau = annealed_temperature(step, end, self.slaft_config.tau_start, self.slaft_config.tau_end)
        for choice in self.modules():
            if isinstance(choice, GumbelChoice):
                choice.tau = tau
        if step < start:
            return
        if not self.started:
            if bool((self.task_updates == 0).any()):
                return  # a task has not shown its gradients yet: keep training densely
            tasks, pool = self.budgets()
            self.task_budgets.copy_(torch.tensor(tasks))
            self.pool_budget.fill_(pool)
        self._allocate(pruned_fraction(step, start, end))

    @torch.no_grad()
    def _allocate(self, fraction: float) -> None:
        full = self.units.total
        tasks, pool = self.budgets()
        targets = [full - fraction * (full - b) for b in tasks]
        masks = select_shared(task_scores(self.task_importance.cpu(), self.units, self.slaft_config.importance_scope),
                              self.units, targets, full - fraction * (full - pool), preferred=self.task_masks.cpu(),
                              exclusive=self.exclusive)
        self.task_masks.copy_(masks)
        self.set_task(self.active)

    def after_backward(self) -> None:
        """Fold the step's gate gradients into the active task's importances (averaged over DDP ranks)."""
        if self.discrete or self.frozen:
            return
        flat = probe_gradients(self.gates())
        if flat is None:
            return
        index, beta = self.active, self.slaft_config.importance_beta
        square = flat.to(self.task_importance) ** 2
        first = int(self.task_updates[index]) == 0
        self.task_importance[index] = square if first else beta * self.task_importance[index] + (1 - beta) * square
        self.task_updates[index] += 1

    def should_decide(self, completed_steps: int) -> bool:
        return not self.discrete and not self.frozen and completed_steps >= self.steps()[2]

    def final_masks(self) -> torch.Tensor:
        """(tasks, units) the decision keeps: the tasks' masks at their full budgets, the units kept so far first
        (once pruning has reached the end of its schedule, the masks as they are). Asking changes nothing."""
        if self.frozen:
            return self.task_masks.cpu().clone()
        tasks, pool = self.budgets()
        scores = task_scores(self.task_importance.cpu(), self.units, self.slaft_config.importance_scope)
        return select_shared(scores, self.units, tasks, pool, preferred=self.task_masks.cpu(), exclusive=self.exclusive)

    @torch.no_grad()
    def freeze(self) -> None:
        """Decide without cutting modules (DDP holds the parameters): the masks stop changing."""
        self.task_masks.copy_(self.final_masks())
        self.set_task(self.active)
        for choice in self.modules():
            if isinstance(choice, GumbelChoice):
                choice.frozen = True
        self.frozen = True

    @torch.no_grad()
    def discretize(self, optimizer=None) -> dict[str, Structure]:
        """The tasks' masks become decisions: the pool keeps the union of their units (trained weights and
        optimizer state kept), each module's gate becomes the tasks' component masks. Returns the structures."""
        if self.discrete:
            return self.task_structures()
        optimizer = getattr(optimizer, "optimizer", optimizer)
        masks = self.final_masks()
        removed, start = self.structure_parameters(), 0
        for layer, site, module in list(self.slaft_modules()):
            gate = module.gate
            units = masks[:, start:start + gate.num_units]  # (tasks, units)
            start += gate.num_units
            components = units.repeat_interleave(gate.block, dim=1)  # (tasks, width)
            union = components.any(0)
            if not union.any():
                removed += list(module.parameters())
                remove_module(self.base_model, self.blocks, layer, site)
                continue
            module.prune_(union, optimizer)  # a bottleneck also fixes its activation to the chosen one
            # the masks are on the CPU, the module wherever the model is
            module.gate = TaskComponentMask(components[:, union].to(next(module.parameters()).device))
        remove_from_optimizer(optimizer, removed)
        for name in SEARCH_BUFFERS:
            delattr(self, name)
        self.units, self.discrete = None, True
        self.pool_structure = self.structure_with(lambda _l, _s, module: torch.ones(module.width, dtype=torch.bool))
        self.set_task(self.active)
        return self.task_structures()

    # Structures --------------------------------------------------------------------------------------------------
    def task_structures(self) -> dict[str, Structure]:
        """Each task's structure (decided, or what the masks would decide now)."""
        if self.discrete:
            return {task.name: self.structure_with(lambda _l, _s, module, i=i: module.gate.masks[i])
                    for i, task in enumerate(self.tasks)}
        masks, out = self.final_masks(), {}
        for i, task in enumerate(self.tasks):
            start, widths = 0, {}
            for layer, site, module in self.slaft_modules():
                gate = module.gate
                widths[id(module)] = masks[i, start:start + gate.num_units].repeat_interleave(gate.block)
                start += gate.num_units
            out[task.name] = self.structure_with(lambda _l, _s, module, w=widths: w[id(module)])
        return out

    def pool_params(self) -> int:
        """Adapter parameters stored for all tasks together (a shared unit once)."""
        if self.discrete:
            return self.pool_structure.num_params
        return self.units.kept_params(self.final_masks().any(0))

    def head_params(self) -> dict[str, int]:
        """Stored head parameters: "shared" (every task's), and each task's own."""
        shared = sum(p.numel() for n, p in self.base_model.named_parameters()
                     if self.is_head(n) and not any(n.startswith(r + ".") for r in self.router_names))
        own = {task.name: sum(p.numel() for r in self.router_names
                              for p in self.base_model.get_submodule(r).tasks[task.name].parameters())
               for task in self.tasks}
        return {"shared": shared, **own}

    def sharing(self) -> torch.Tensor:
        """(tasks, tasks) adapter parameters both tasks use; the diagonal is each task's own structure's size."""
        if self.discrete:
            count = range(len(self.tasks))
            return torch.tensor([[float(self.structure_with(
                lambda _l, _s, module, i=i, j=j: module.gate.masks[i] & module.gate.masks[j]).num_params)
                for j in count] for i in count])
        return sharing_matrix(self.final_masks(), self.units)

    # Save / load / export ----------------------------------------------------------------------------------------
    def pool_state_dict(self) -> dict[str, torch.Tensor]:
        """Pool modules (with their gates' state), shared heads and, while searching, the search's buffers."""
        state = {n: t for n, t in self.base_model.state_dict().items()
                 if CONTAINER in n.split(".") or (self.is_head(n) and not self._in_router(n))}
        if not self.discrete:
            state.update({name: getattr(self, name) for name in SEARCH_BUFFERS})
        return state

    def _in_router(self, name: str) -> bool:
        return any(name.startswith(r + ".") for r in self.router_names)

    def task_head_state_dict(self, task: str) -> dict[str, torch.Tensor]:
        """The task's own head tensors, named as in a single-task model (e.g. ``classifier.weight``)."""
        return {f"{r}.{n}": t for r in self.router_names
                for n, t in self.base_model.get_submodule(r).tasks[task].state_dict().items()}

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """``multitask_config.json``, ``pool.safetensors`` and ``heads/<task>.safetensors``, each atomic."""
        payload = {
            "config": self.slaft_config.to_dict(), "multitask": self.multitask.to_dict(),
            "tasks": [task.to_dict() for task in self.tasks], "phase": "discrete" if self.discrete else "search",
            "pool": self.pool_structure.to_dict(), "candidate": self.candidate.to_dict(),
            "task_structures": {name: s.to_dict() for name, s in self.task_structures().items()},
            "sharing": self.sharing().tolist(),
            "heads": self.head_names, "routers": self.router_names, "decided_at_step": self.decided_at_step,
            "base_fingerprint": self.base_fingerprint(),
        }
        write_multitask(directory, self.pool_state_dict(),
                        {task.name: self.task_head_state_dict(task.name) for task in self.tasks}, payload)

    def load_adapter_weights(self, directory: str | os.PathLike, payload: dict | None = None) -> None:
        payload, pool, heads = read_multitask(directory, [t.name for t in self.tasks], payload)
        expected = set(self.pool_state_dict())
        if set(pool) != expected:
            missing, unexpected = sorted(expected - set(pool))[:5], sorted(set(pool) - expected)[:5]
            raise AdapterLoadError(f"The pool in {directory} does not fit its structure: missing {missing}, "
                                   f"unexpected {unexpected}.")
        for name in SEARCH_BUFFERS if not self.discrete else ():
            getattr(self, name).copy_(pool.pop(name))
        self.base_model.load_state_dict(pool, strict=False)
        for task in self.tasks:
            for router in self.router_names:
                prefix = router + "."
                state = {n[len(prefix):]: t for n, t in heads[task.name].items() if n.startswith(prefix)}
                self.base_model.get_submodule(router).tasks[task.name].load_state_dict(state)
        self.set_task(self.active)

    @classmethod
    def from_pretrained(cls, base_model: nn.Module, directory: str | os.PathLike, *,
                        check_base: bool = True) -> "MultiTaskSlaftModel":
        """Rebuild a saved multi-task model (either phase) into ``base_model`` and load its tensors."""
        payload, _, _ = read_multitask(directory, None)
        try:
            config = SlaftConfig.from_dict(payload["config"])
            tasks = [TaskInfo.from_dict(t) for t in payload["tasks"]]
            multitask = MultiTaskConfig.from_dict(payload.get("multitask", {}))
            pool = Structure.from_dict(payload["pool"]) if payload.get("phase") == "discrete" else None
        except (KeyError, TypeError, ValueError) as err:
            raise AdapterLoadError(f"{directory} holds no valid slaft multi-task config ({err}).") from err
        model = cls(base_model, config, tasks, multitask, pool)
        if check_base and payload.get("base_fingerprint") not in (None, model.base_fingerprint()):
            raise AdapterLoadError(f"The multi-task adapters in {directory} were trained on a different base model "
                                   f"({config.base_model_name_or_path!r}). Load them onto that model.")
        model.load_adapter_weights(directory, payload)
        model.decided_at_step = payload.get("decided_at_step")
        return model

    def export_task(self, task: str, directory: str | os.PathLike, *, extra: dict | None = None) -> Path:
        """One task as a plain single-task slaft adapter (``SlaftModel.from_pretrained`` loads it onto the base model
        with the task's label count): its structure, its components of the pool's weights, its head."""
        if not self.discrete:
            raise RuntimeError("Decide the structures first (discretize, or train to the end).")
        index, info = self.task_index(task), self.tasks[self.task_index(task)]
        names = {id(m): n for n, m in self.base_model.named_modules()}
        tensors = {}
        for _, _, module in self.slaft_modules():
            keep = torch.nonzero(module.gate.masks[index]).flatten()
            if keep.numel() == 0:
                continue
            prefix = names[id(module)]
            sliced = {id(p): (p, dim) for p, dim in module.sliced_parameters()}
            for pname, param in module.named_parameters():
                if pname.startswith("gate."):
                    continue
                value = param.detach()
                if id(param) in sliced:
                    value = value.index_select(sliced[id(param)][1], keep.to(value.device))
                tensors[f"{prefix}.{pname}"] = value
        tensors.update({n: t for n, t in self.pool_state_dict().items() if self.is_head(n)})
        tensors.update(self.task_head_state_dict(info.name))
        config = SlaftConfig.from_dict(self.slaft_config.to_dict())
        payload = {
            "config": config.to_dict(), "structure": self.task_structures()[info.name].to_dict(),
            "candidate": self.candidate.to_dict(), "phase": "discrete", "merged": False,
            "decided_at_step": self.decided_at_step, "heads": self.head_names, "num_labels": info.num_labels,
            "id2label": {str(i): n for i, n in enumerate(info.label_names or ())},
            "base_fingerprint": self.base_fingerprint(), "task": info.name, **(extra or {}),
        }
        return write_single_task(directory, tensors, payload)

