"""What a multi-task run adds to ``SlaftConfig``: the tasks' shared pool budget, head sharing and task sampling."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Optional

from ..config import ConfigError, closest, list_entries
from ..sites import SITE_NAMES, is_known_site

SAMPLINGS = ("proportional", "temperature", "uniform")


@dataclass(frozen=True)
class TaskInfo:
    """One task of a multi-task model: its name and label space."""

    name: str
    num_labels: int
    label_names: Optional[tuple[str, ...]] = None

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "num_labels": self.num_labels,
                "label_names": list(self.label_names) if self.label_names else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TaskInfo":
        names = data.get("label_names")
        return cls(str(data["name"]), int(data["num_labels"]), tuple(names) if names else None)


@dataclass
class MultiTaskConfig:
    """How several tasks share one pool of candidate modules and how training draws their batches."""

    pool_share: float = field(default=0.5, metadata={
        "help": "The stored pool (the union of every task's kept units, a shared unit counted once) may hold this "
                "fraction of the sum of the tasks' own budgets: below 1, tasks must share units."})
    pool_params: Optional[float] = field(default=None, metadata={
        "help": "The pool's budget as a parameter count (overrides --pool-share)."})
    private_sites: Optional[list[str]] = field(default=None, metadata={
        "help": "Task-private sites: a unit there is kept by one task at most (its own module); the other sites' "
                "units are shared by every task that keeps them."})
    shared_heads: bool = field(default=True, metadata={
        "help": "Head parts whose shape does not depend on the label count (BERT's pooler) are shared by the "
                "tasks; the label-sized parts are always one per task. --no-shared-heads gives each task all of "
                "its head."})
    hold_idle_units: bool = field(default=False, metadata={
        "help": "On each optimizer step, trained entries whose gradient is exactly zero (the units, heads and biases "
                "the step's task does not use) keep their values and their optimizer state, as if the step had not "
                "happened for them: a task's own units then move on its batches only, as in single-task training, "
                "instead of drifting on Adam's momentum through the other tasks' steps."})
    sampling: str = field(default="proportional", metadata={
        "help": "Which task each batch comes from: proportional (every example once per epoch), temperature "
                "(probability ∝ size^(1/T)) or uniform."})
    sampling_temperature: float = field(default=2.0, metadata={"help": "T of temperature sampling (1 = proportional)."})
    task_passes: Optional[list[str]] = field(default=None, metadata={
        "help": "Passes per epoch over a task's training examples as NAME=PASSES entries, space- or "
                "comma-separated, a task named as in --tasks (others: 1), e.g. cola=2 to give CoLA twice the epochs "
                "of the other tasks, as its single-task recipe might."})

    def __post_init__(self) -> None:
        if not 0 < self.pool_share <= 16 or not math.isfinite(self.pool_share):
            raise ConfigError(f"pool_share must be in (0, 16], got {self.pool_share}.")
        if self.pool_params is not None and not (self.pool_params >= 1 and math.isfinite(self.pool_params)):
            raise ConfigError(f"pool_params must be a parameter count >= 1, got {self.pool_params}.")
        if self.private_sites is not None:
            self.private_sites = tuple(self.private_sites)
            for site in self.private_sites:
                if not is_known_site(site):
                    raise ConfigError(f"Unknown private site {site!r}.{closest(site, SITE_NAMES)} Known sites: "
                                      f"{SITE_NAMES}, or lora:<path of a linear in the block>.")
        if self.sampling not in SAMPLINGS:
            raise ConfigError(f"Unknown sampling {self.sampling!r}.{closest(self.sampling, SAMPLINGS)} "
                              f"Known: {SAMPLINGS}.")
        if not 0 < self.sampling_temperature <= 100 or not math.isfinite(self.sampling_temperature):
            raise ConfigError(f"sampling_temperature must be in (0, 100], got {self.sampling_temperature}.")
        if self.task_passes is not None:
            self.task_passes = tuple(self.task_passes)
            self.passes_by_task()

    def passes_by_task(self) -> dict[str, float]:
        """{name: passes} from ``task_passes`` (entries space- or comma-separated, as ``--tasks``); a clear error for
        a malformed entry."""
        passes = {}
        for name, sep, value in list_entries(self.task_passes):
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if not sep or not name or not 0 < number <= 100:
                raise ConfigError(f"task_passes entry {name + sep + value!r} is not NAME=PASSES with PASSES in "
                                  "(0, 100]; e.g. --task-passes cola=2 mrpc=0.5.")
            if name in passes:
                raise ConfigError(f"task_passes names task {name!r} twice.")
            passes[name] = number
        return passes

    def passes_for(self, tasks: list[str]) -> list[float]:
        """Each task's passes per epoch, in the order of ``tasks``. A name matches a task as written or, for a known
        task, by any of its aliases ("SST-2" for sst2), as in ``--tasks``; an error for a name that is no task of the
        run, or for two names of one task."""
        from ..data import canonical_task_name  # data pulls in datasets: only when a run resolves its tasks

        by_task: dict[str, float] = {}
        unknown = []
        for name, number in self.passes_by_task().items():
            task = name if name in tasks else canonical_task_name(name)
            if task not in tasks:
                unknown.append(name)
            elif task in by_task:
                raise ConfigError(f"task_passes names task {task!r} twice (as {name!r} and another alias).")
            else:
                by_task[task] = number
        if unknown:
            raise ConfigError(f"task_passes names {sorted(unknown)}, which are not tasks of this run "
                              f"({', '.join(tasks)}).")
        return [by_task.get(task, 1.0) for task in tasks]

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MultiTaskConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
