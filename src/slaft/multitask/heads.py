"""Per-task heads inside one base model: the head parts whose shape depends on the label count become a router.

A sequence-classification model's head has parts every task can share (BERT's pooler) and parts sized by the number
of labels (BERT's ``classifier``, Llama's ``score``, RoBERTa's ``classifier`` with its ``out_proj``). Each of the
latter is replaced in place by a ``TaskRouter`` that holds one copy per task and runs the active task's, so the
base model's own forward (pooling, dropout, last-token selection) is used unchanged, and a task's head exports as the
single-task model's head under the same names.
"""

from __future__ import annotations

import copy

from torch import nn


class TaskRouter(nn.Module):
    """One module per task at one place of the model; ``active`` names the task whose module runs."""

    def __init__(self, modules: dict[str, nn.Module]) -> None:
        super().__init__()
        self.tasks = nn.ModuleDict(modules)
        self.active: str | None = None

    def forward(self, *args, **kwargs):
        if self.active is None:
            raise RuntimeError("No task is active: call model.set_task(name), or pass task= to the forward.")
        return self.tasks[self.active](*args, **kwargs)


def _label_sized_linears(module: nn.Module, num_labels: int) -> list[str]:
    return [name for name, sub in module.named_modules()
            if isinstance(sub, nn.Linear) and sub.out_features == num_labels]


def is_label_sized(module: nn.Module, num_labels: int) -> bool:
    """True for a head module whose shape depends on the label count (it holds a Linear with num_labels outputs)."""
    return bool(_label_sized_linears(module, num_labels))


def head_for_task(template: nn.Module, base_num_labels: int, num_labels: int, init) -> nn.Module:
    """A copy of a label-sized head ``template`` with every ``base_num_labels``-output linear replaced by a fresh
    ``num_labels``-output one, initialised by ``init`` (the base model's own ``_init_weights``)."""
    head = copy.deepcopy(template)
    for name in _label_sized_linears(template, base_num_labels):
        old = head.get_submodule(name) if name else head
        new = nn.Linear(old.in_features, num_labels, bias=old.bias is not None).to(old.weight.device)
        init(new)
        if not name:
            return new
        parent, _, child = name.rpartition(".")
        setattr(head.get_submodule(parent) if parent else head, child, new)
    return head
