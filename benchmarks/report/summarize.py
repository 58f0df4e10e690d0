"""From raw run records to the numbers the report shows: chosen learning rates, per-task means and stds over the
final seeds, per-method averages, and ratios against the reference method measured in the same suite.

The final stage of a (method, task) is every successful run at the learning rate chosen on the first seed, one
per seed; the first seed's run is the search run at that rate (it is not trained twice).

Scores and sizes come from every final run. Costs (times, memory, latency) come from solo runs only, those that had
the machine to themselves (`parallel_jobs` 1 or absent): runs that shared the cores with other runs
(`harness --jobs N`) ran at other thread counts and speeds. Costs are averaged over the same tasks for every method:
the tasks on which every method with solo runs has one (`SuiteSummary.cost_tasks`); a method without any shows none.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from ..harness.methods import METHODS, REFERENCE
from ..harness.methods.plain_methods import UNTUNED
from ..harness.records import chosen_lr
from ..harness.suites import SUITES


# Measurements that depend on what else ran on the machine at the same time.
COST_KEYS = frozenset({"train_seconds", "step_seconds", "search_step_seconds", "train_cpu_seconds", "peak_memory_mb",
                       "train_memory_mb",
                       "latency_ms", "base_latency_ms", "latency_ratio_vs_base", "wall_seconds"})


def is_solo(record: dict) -> bool:
    return int(record.get("parallel_jobs") or 1) == 1


@dataclass
class Cell:
    """One (method, task): the final-stage runs and their statistics."""

    method: str
    task: str
    lr: float | None
    runs: list[dict] = field(default_factory=list)

    @property
    def solo_runs(self) -> list[dict]:
        return [run for run in self.runs if is_solo(run)]

    def values(self, key: str) -> list[float]:
        out = []
        for run in (self.solo_runs if key in COST_KEYS else self.runs):
            value = run.get(key)
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                out.append(float(value))
        return out

    def mean(self, key: str) -> float | None:
        values = self.values(key)
        return statistics.fmean(values) if values else None

    def std(self, key: str) -> float | None:
        values = self.values(key)
        return statistics.stdev(values) if len(values) > 1 else None

    def median(self, key: str) -> float | None:
        values = self.values(key)
        return statistics.median(values) if values else None


@dataclass
class SuiteSummary:
    suite: str
    tasks: list[str]
    methods: list[str]
    cells: dict[tuple[str, str], Cell]
    records: list[dict]
    # The constant predictor's {"score", "test_score"} per task (benchmarks/baselines.py), where the data was found.
    floors: dict[str, dict[str, float | None]] = field(default_factory=dict)
    all_records: list[dict] = field(default_factory=list)  # every suite's records (for cross-suite tables)
    step_times: list[dict] = field(default_factory=list)  # every step-time measurement, each session's kept

    def cell(self, method: str, task: str) -> Cell | None:
        cell = self.cells.get((method, task))
        return cell if cell and cell.runs else None

    def average(self, method: str, key: str = "score") -> float | None:
        """Mean over tasks of the per-task means; None unless every task has runs."""
        means = [c.mean(key) if (c := self.cell(method, t)) else None for t in self.tasks]
        return statistics.fmean(means) if means and all(m is not None for m in means) else None

    @property
    def costed_methods(self) -> list[str]:
        """The methods with at least one solo run: only they have costs to show."""
        return [m for m in self.methods if any((c := self.cell(m, t)) and c.solo_runs for t in self.tasks)]

    @property
    def cost_tasks(self) -> list[str]:
        """The tasks on which every method with solo runs has one: costs are compared over these alone. A method
        with no solo run at all shows no costs and does not empty the comparison of the others."""
        costed = self.costed_methods
        return [t for t in self.tasks if costed and all((c := self.cell(m, t)) and c.solo_runs for m in costed)]

    def _tasks_for(self, key: str) -> list[str]:
        return self.cost_tasks if key in COST_KEYS else self.tasks

    def across_tasks(self, method: str, key: str, how=statistics.fmean) -> float | None:
        values = [v for t in self._tasks_for(key) if (c := self.cell(method, t)) and (v := c.mean(key)) is not None]
        return how(values) if values else None

    def ratio_vs_reference(self, method: str, key: str, against: str | None = None) -> float | None:
        """Geometric mean over tasks of method/reference (the method's ``key`` over the reference's ``against``,
        by default the same key), each task's means measured in this suite."""
        ratios = []
        for task in self._tasks_for(key):
            mine, ref = self.cell(method, task), self.cell(REFERENCE, task)
            if mine and ref and (a := mine.mean(key)) and (b := ref.mean(against or key)):
                ratios.append(a / b)
        return math.exp(statistics.fmean(math.log(r) for r in ratios)) if ratios else None

    @property
    def failures(self) -> list[dict]:
        return [r for r in self.records if r.get("status") != "ok"]


def chosen_rate(suite: str, method: str, task: str, records: list[dict]) -> float | None:
    """The learning rate a method's reported runs use: as the harness chose it (extended grids and reused rates
    included), or for a retired method the best of the rates it tried on the picking seed."""
    known = SUITES.get(suite)
    if method == UNTUNED:
        return 0.0  # nothing trains: its one run per task has no rate
    if known and method in METHODS:
        from ..harness.run import lr_grid

        grid, complete = lr_grid(known, method, task, records)
        if not complete:
            return None
        return grid[0] if method in known.lr_from else chosen_lr(records, method, task, grid, known.picking_seed)
    seed = known.picking_seed if known else min(int(r["seed"]) for r in records)
    tried = tuple(sorted({float(r["lr"]) for r in records if r["method"] == method and r["task"] == task
                          and int(r["seed"]) == seed}))
    return chosen_lr(records, method, task, tried, seed) if tried else None


def summarize(suite: str, records: list[dict]) -> SuiteSummary:
    records = [r for r in records if r["suite"] == suite]
    known = SUITES.get(suite)
    tasks = list(known.tasks) if known else sorted({r["task"] for r in records})
    tasks = [t for t in tasks if any(r["task"] == t for r in records)]
    present = {r["method"] for r in records}
    methods = [m for m in METHODS if m in present] + sorted(present - set(METHODS))
    cells = {}
    for method in methods:
        seeds = set(known.seeds_for(method)) if known else {int(r["seed"]) for r in records}
        for task in tasks:
            lr = chosen_rate(suite, method, task, records)
            runs = [] if lr is None else sorted(
                (r for r in records if r["method"] == method and r["task"] == task and r.get("status") == "ok"
                 and float(r["lr"]) == lr and int(r["seed"]) in seeds), key=lambda r: int(r["seed"]))
            cells[(method, task)] = Cell(method, task, lr, runs)
    # a method shows once it has reported runs: one whose records are all searches (say one a suite dropped after its
    # search) has nothing to report
    methods = [m for m in methods if any(cells[(m, t)].runs for t in tasks)]
    return SuiteSummary(suite, tasks, methods, cells, records)
