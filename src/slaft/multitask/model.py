"""MultiTaskSlaftModel: one frozen backbone, one pool of candidate modules, one learned structure per task.

The search is slaft's one search (``slaft.search.StructureSearch``) with a row per task: per task a mask over the
pool's units, their importances and a budget, and a budget for the pool (``MultiTaskConfig.pool_share``). What this
model owns is the task axis's plumbing: routing each batch to its task (``set_task`` puts the task's mask into the
gates and selects its head; batches hold one task each, ``TaskBatchSampler``), each task's head, and, once decided,
each task's component masks.

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

from ..allocation import sharing_matrix
from ..backbone import FrozenBackbone
from ..card import write_card
from ..config import ConfigError, SlaftConfig
from ..inject import attach, candidate_structure
from ..io import AdapterLoadError, write_adapter
from ..search import StructureSearch
from ..structure import Structure
from ..version import __version__
from .config import MultiTaskConfig, TaskInfo
from .heads import TaskRouter, head_for_task, is_label_sized

TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # task names name directories (tasks/<task>) and log keys


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

    adapter_kind = "multi-task"

    def __init__(self, base_model: nn.Module, config: SlaftConfig, tasks: list[TaskInfo],
                 multitask: MultiTaskConfig | None = None, pool: Structure | None = None) -> None:
        names = [task.name for task in tasks]
        if not tasks or len(set(names)) != len(names):
            raise ConfigError(f"A multi-task model needs tasks with distinct names, got {names}.")
        bad = [name for name in names if not TASK_NAME.fullmatch(name)]
        if bad:
            raise ConfigError(f"Task names {bad} cannot name files: use letters, digits, '_', '-' and '.'.")
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
        else:
            self.search = StructureSearch(self, config, num_tasks=count, pool_share=self.multitask.pool_share,
                                          pool_params=self.multitask.pool_params,
                                          exclusive_sites=tuple(self.multitask.private_sites or ()))
        self.hold_idle_units = self.multitask.hold_idle_units
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
        if self.search is not None:
            self.search.set_task(index)
            return
        for gate in self.gates():
            gate.active = index

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

    def training_log(self) -> dict[str, float]:
        """What ``SlaftCallback`` adds to the Trainer's logs: each task's mean training loss since the last log
        (``loss_<task>``) and the pool's size."""
        stats = {f"loss_{task.name}": round(float(self.loss_sums[i] / self.loss_counts[i]), 4)
                 for i, task in enumerate(self.tasks) if self.loss_counts[i] > 0}
        self.loss_sums.zero_()
        self.loss_counts.zero_()
        stats["slaft/pool_params"] = float(self.pool_params())
        return stats

    # The decision ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def discretize(self, optimizer=None) -> dict[str, Structure]:
        """The tasks' masks become decisions (``StructureSearch.decide``): the pool keeps the union of their units,
        each module's gate becomes the tasks' component masks. Returns the structures."""
        if self.discrete:
            return self.task_structures()
        kept = self.search.decide(optimizer)
        self.search, self.discrete = None, True
        for layer, site, module in self.slaft_modules():  # the masks are on the CPU, the module wherever the model is
            module.gate = TaskComponentMask(kept[(layer, site)].to(next(module.parameters()).device))
        self.pool_structure = self.structure_with(lambda _l, _s, module: torch.ones(module.width, dtype=torch.bool))
        self.set_task(self.active)
        return self.task_structures()

    # Structures --------------------------------------------------------------------------------------------------
    def task_structures(self) -> dict[str, Structure]:
        """Each task's structure (decided, or what the masks would decide now)."""
        if self.discrete:
            return {task.name: self.structure_with(lambda _l, _s, module, i=i: module.gate.masks[i])
                    for i, task in enumerate(self.tasks)}
        masks = self.search.module_masks()
        return {task.name: self.structure_with(lambda layer, site, _, i=i: masks[(layer, site)][i])
                for i, task in enumerate(self.tasks)}

    def pool_params(self) -> int:
        """Adapter parameters stored for all tasks together (a shared unit once)."""
        if self.discrete:
            return self.pool_structure.num_params
        return self.search.units.kept_params(self.search.final_masks().any(0))

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
        return sharing_matrix(self.search.final_masks(), self.search.units)

    # Save / load / export ----------------------------------------------------------------------------------------
    def _in_router(self, name: str) -> bool:
        return any(name.startswith(r + ".") for r in self.router_names)

    def task_head_state_dict(self, task: str) -> dict[str, torch.Tensor]:
        """The task's own head tensors, named as in a single-task model (e.g. ``classifier.weight``)."""
        return {f"{r}.{n}": t for r in self.router_names
                for n, t in self.base_model.get_submodule(r).tasks[task].state_dict().items()}

    def payload(self) -> dict:
        return {"structure": self.pool_structure.to_dict(), "multitask": self.multitask.to_dict(),
                "tasks": [task.to_dict() for task in self.tasks], "routers": self.router_names,
                "task_structures": {name: s.to_dict() for name, s in self.task_structures().items()},
                "sharing": self.sharing().tolist()}

    @classmethod
    def arguments_from_payload(cls, payload: dict) -> dict:
        if "tasks" not in payload:
            raise AdapterLoadError("it holds a single-task adapter: load it with slaft.SlaftModel")
        return {"tasks": [TaskInfo.from_dict(t) for t in payload["tasks"]],
                "multitask": MultiTaskConfig.from_dict(payload.get("multitask", {})),
                "pool": Structure.from_dict(payload["structure"]) if payload.get("phase") == "discrete" else None}

    def load_adapter_weights(self, directory: str | os.PathLike, payload: dict | None = None) -> None:
        super().load_adapter_weights(directory, payload)
        self.set_task(self.active)

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
        tensors.update({n: t for n, t in self.adapter_state_dict().items()
                        if self.is_head(n) and not self._in_router(n)})
        tensors.update(self.task_head_state_dict(info.name))
        config = SlaftConfig.from_dict(self.slaft_config.to_dict())
        payload = {
            "config": config.to_dict(), "structure": self.task_structures()[info.name].to_dict(),
            "candidate": self.candidate.to_dict(), "phase": "discrete", "merged": False,
            "decided_at_step": self.decided_at_step, "heads": self.head_names, "num_labels": info.num_labels,
            "id2label": {str(i): n for i, n in enumerate(info.label_names or ())},
            "base_fingerprint": self.base_fingerprint(), "task": info.name, **(extra or {}),
        }
        payload = {"slaft_version": __version__, "base_model_class": type(self.base_model).__name__, **payload}
        write_adapter(directory, tensors, payload)
        write_card(directory, payload)
        return Path(directory)

