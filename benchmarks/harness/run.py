"""Run a suite: a learning-rate search on the first seed, then every seed at the chosen rate; resumable.

    python -m benchmarks.harness --suite quick
    python -m benchmarks.harness --suite cpu2 --tasks stsb             # a part of the cpu2 suite
    python -m benchmarks.harness --suite cpu2 --methods slaft peft-lora-qv --seeds 1 --plan

Each run executes in its own worker process (benchmarks/worker.py), so its peak memory is its own, and its record
is appended to benchmarks/results/<suite>/<method>.jsonl as soon as it finishes. Runs whose key (suite, method,
task, seed, lr) is already recorded are skipped, so a suite interrupted at any point resumes where it stopped.
Failed runs are recorded too (status "failed"), and retried only with --retry-failed.

All learning-rate searches of the selection run first, then every final seed at its chosen rate. `--jobs N` runs N
workers at once, each with cores/N torch threads: more runs an hour on a small machine, but the runs share it, so
their timings are not comparable with runs that had the machine to themselves. Records say which they were
(`parallel_jobs`), and the report takes its time, memory and latency figures from solo runs only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .methods import METHODS, REFERENCE
from .methods.plain_methods import UNTUNED
from .records import RESULTS_DIR, append_record, chosen_lr, read_records, results_path, run_key
from .suites import SUITES, Suite

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = Path(os.environ.get("SLAFT_GLUE_DIR", REPO.parent / "shared" / "data" / "glue"))


@dataclass(frozen=True)
class RunSpec:
    suite: str
    method: str
    task: str
    seed: int
    lr: float
    stage: str

    @property
    def key(self):
        return (self.suite, self.method, self.task, self.seed, float(self.lr))

    def describe(self) -> str:
        return f"{self.method:22s} {self.task:5s} seed {self.seed} lr {self.lr:g} ({self.stage})"


def _ordered_methods(suite: Suite, names: list[str] | None) -> list[str]:
    chosen = list(names or suite.methods or METHODS)
    unknown = [n for n in chosen if n not in METHODS]
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}; known: {', '.join(METHODS)}")
    # The reference runs first on each task, so ratios are available as early as possible.
    return sorted(chosen, key=lambda n: n != REFERENCE)


def _extended(grid: tuple[float, ...], best: float) -> tuple[float, ...] | None:
    """The grid with one more rate beyond the edge ``best`` sits at (same log step), or None if it is inside."""
    rates = sorted(grid)
    if len(rates) < 2 or rates[0] < best < rates[-1]:
        return None
    if best == rates[-1]:
        return (*grid, rates[-1] * rates[-1] / rates[-2])
    return (rates[0] * rates[0] / rates[1], *grid)


def lr_grid(suite: Suite, method: str, task: str, records: list[dict]) -> tuple[tuple[float, ...], bool]:
    """(the rates to search for this method and task, whether the search is complete). With ``extend_grids`` a
    rate is added beyond an edge while the best rate of the completed grid sits at that edge. A method in
    ``suite.lr_from`` searches nothing: it takes the rate its reference method chose."""
    if method in suite.lr_from:
        reference = suite.lr_from[method]
        grid, complete = lr_grid(suite, reference, task, records)
        lr = chosen_lr(records, reference, task, grid, suite.picking_seed) if complete else None
        return ((lr,), True) if lr is not None else ((), False)
    return searched_grid(tuple(float(lr) for lr in suite.grid(METHODS[method].family)), records, method, task,
                         suite.picking_seed, suite.max_extensions if suite.extend_grids else 0)


def searched_grid(base: tuple[float, ...], records: list[dict], method: str, task: str, seed: int,
                  max_extensions: int) -> tuple[tuple[float, ...], bool]:
    """(the rates to search, whether the search is complete): ``base``, and while the best rate of the completed
    grid sits at an edge, one more rate beyond it (at most ``max_extensions`` more)."""
    grid = base
    while True:
        best = chosen_lr(records, method, task, grid, seed)
        if best is None:
            return grid, False
        wider = _extended(grid, best) if len(grid) < len(base) + max_extensions else None
        if wider is None:
            return grid, True
        grid = wider


def final_lr(suite: Suite, method: str, task: str, records: list[dict]) -> float | None:
    """The rate a method's reported seeds train at on a task, once its search is complete (else None)."""
    grid, complete = lr_grid(suite, method, task, records)
    if not complete:
        return None
    return grid[0] if method in suite.lr_from else chosen_lr(records, method, task, grid, suite.picking_seed)


def borrowed_lr(suite: Suite, method: str, task: str, results_dir: Path) -> float | None:
    """A suite with ``lr_suite`` searches nothing: each method trains at the rate it chose there."""
    source = SUITES[suite.lr_suite]
    return final_lr(source, method, task, read_records([results_path(source.name, results_dir)]))


def search_specs(suite: Suite, method: str, task: str, records: list[dict] | None = None) -> list[RunSpec]:
    if method in suite.lr_from or suite.lr_suite:
        return []  # it reuses another method's or suite's rate: nothing to search
    grid, _ = lr_grid(suite, method, task, records or [])
    stage = "lr_search" if len(grid) > 1 or suite.selection_seed is not None else "final"
    return [RunSpec(suite.name, method, task, suite.picking_seed, float(lr), stage) for lr in grid]


def final_specs(suite: Suite, method: str, task: str, lr: float, seeds: list[int]) -> list[RunSpec]:
    """The reported runs; with protocol 1 the picking seed's search run at the chosen rate is one of them."""
    return [RunSpec(suite.name, method, task, seed, lr, "final") for seed in seeds
            if not (seed == suite.picking_seed and suite.selection_seed is None and suite.lr_suite is None)]


def planned_count(suite: Suite, records: list[dict]) -> int:
    """How many runs the suite takes in all, given its records: every method's search on every task (grids as far
    as the records have extended them) and its reported seeds, and the untuned model once per task where the suite
    scores it."""
    untuned = len(suite.tasks) if suite.untuned_baseline else 0
    return untuned + sum(len(search_specs(suite, method, task, records))
                         + len(final_specs(suite, method, task, 0.0, list(suite.seeds_for(method))))
                         for method in (suite.methods or METHODS) for task in suite.tasks
                         if suite.runs_on(method, task))


def execute(spec: RunSpec, data_dir: Path, results: Path, timeout: int, jobs: int = 1,
            worker: str = "benchmarks.harness.worker") -> dict:
    """Run one spec in a worker process and append its record (a failure record if it failed). With ``jobs`` > 1
    the worker is one of that many running at once and gets its share of the cores as torch threads."""
    logs = results.parent / "logs" / spec.suite
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{spec.method}.{spec.task}.seed{spec.seed}.lr{spec.lr:g}.log"
    with tempfile.TemporaryDirectory(prefix="slaft-bench-spec-") as tmp:
        spec_path, record_path = Path(tmp) / "spec.json", Path(tmp) / "record.json"
        spec_path.write_text(json.dumps({**spec.__dict__, "data_dir": str(data_dir)}))
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
        if jobs > 1:
            threads = str(max(1, (os.cpu_count() or 1) // jobs))
            env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        start = time.perf_counter()
        error = None
        with open(log_path, "w") as log:
            try:
                command = [sys.executable, "-m", worker, str(spec_path), str(record_path)]
                proc = subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, timeout=timeout,
                                      env=env)
                if proc.returncode != 0:
                    error = f"worker exited with {proc.returncode}"
            except subprocess.TimeoutExpired:
                error = f"timed out after {timeout} s"
        if error is None and record_path.is_file():
            record = json.loads(record_path.read_text())
        else:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
            record = {**spec.__dict__, "status": "failed", "score": None, "error": error or "no record written",
                      "log_tail": tail, "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        record["wall_seconds"] = round(time.perf_counter() - start, 1)
        record["parallel_jobs"] = jobs  # 1: the run had the machine to itself, so its timings count
    append_record(results, record)
    return record


def add_machine_jobs_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--machine-jobs", type=int, default=None,
                        help="runs on this machine at once, other harness processes' included (default: --jobs); "
                        "each run gets cores/N threads and records parallel_jobs=N")


def check_jobs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.machine_jobs is not None and args.machine_jobs < args.jobs:
        parser.error(f"--machine-jobs ({args.machine_jobs}) counts this harness's own --jobs ({args.jobs}) too: "
                     "it cannot be smaller")


class Runner:
    """Executes specs (``jobs`` at a time), skipping keys already recorded, and reports progress."""

    def __init__(self, suite: Suite, results: Path, data_dir: Path, *, retry_failed: bool, plan_only: bool,
                 jobs: int = 1, machine_jobs: int | None = None, worker: str = "benchmarks.harness.worker") -> None:
        self.suite, self.results, self.data_dir, self.worker = suite, results, data_dir, worker
        self.retry_failed, self.plan_only, self.jobs = retry_failed, plan_only, jobs
        # Runs on the machine at once, other harness processes included: sets threads and `parallel_jobs`.
        self.machine_jobs = max(jobs, machine_jobs or jobs)
        self.records = read_records([results])
        self.done = {run_key(r): r for r in self.records}
        self.planned = self.ran = self.waiting = 0
        self.started = time.perf_counter()
        self._lock = threading.Lock()

    def skip(self, spec: RunSpec) -> bool:
        previous = self.done.get(spec.key)
        return previous is not None and (previous.get("status") == "ok" or not self.retry_failed)

    def run(self, specs: list[RunSpec]) -> None:
        todo = [spec for spec in specs if not self.skip(spec)]
        self.planned += len(todo)
        if self.plan_only:
            for spec in todo:
                print(f"would run  {spec.describe()}")
            return
        if self.jobs == 1:
            for spec in todo:
                self._run_one(spec)
            return
        with ThreadPoolExecutor(self.jobs) as pool:
            list(pool.map(self._run_one, todo))

    def _run_one(self, spec: RunSpec) -> None:
        record = execute(spec, self.data_dir, self.results, self.suite.run_timeout_s, self.machine_jobs, self.worker)
        with self._lock:
            self.ran += 1
            self.records = [r for r in self.records if run_key(r) != spec.key] + [record]
            self.done[spec.key] = record
            elapsed = time.perf_counter() - self.started
            outcome = (f"{record['metric']} {record['score']:.4f}" if record["status"] == "ok"
                       else f"FAILED: {record['error']}")
            print(f"[{self.ran:4d} | {elapsed / 60:6.1f} min] {spec.describe()}: {outcome} "
                  f"({record['wall_seconds']:.0f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.harness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", required=True, choices=sorted(SUITES))
    parser.add_argument("--methods", nargs="+", help="subset of methods (default: the suite's)")
    parser.add_argument("--tasks", nargs="+", help="subset of the suite's tasks")
    parser.add_argument("--seeds", nargs="+", type=int, help="subset of the suite's seeds for the final stage")
    parser.add_argument("--stage", choices=("all", "lr_search", "final"), default="all")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help=f"GLUE jsonl folders (default {DEFAULT_DATA_DIR}, or $SLAFT_GLUE_DIR)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--retry-failed", action="store_true", help="run again keys whose record is a failure")
    parser.add_argument("--plan", action="store_true", help="list the runs still to do, run nothing")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs at once, sharing the cores (default 1: timings only count from solo runs)")
    add_machine_jobs_option(parser)
    args = parser.parse_args(argv)
    check_jobs(parser, args)

    suite = SUITES[args.suite]
    tasks = args.tasks or list(suite.tasks)
    if not args.data_dir.is_dir():
        raise SystemExit(f"GLUE data not found at {args.data_dir}; pass --data-dir or set SLAFT_GLUE_DIR")
    results = results_path(suite.name, args.results_dir)
    runner = Runner(suite, results, args.data_dir, retry_failed=args.retry_failed, plan_only=args.plan,
                    jobs=args.jobs, machine_jobs=args.machine_jobs)
    print(f"suite {suite.name}: {suite.description}\nresults -> {results}", flush=True)
    methods = _ordered_methods(suite, args.methods)
    untuned = suite.untuned_baseline and (args.methods is None or UNTUNED in methods)
    methods = [m for m in methods if m != UNTUNED]
    if args.stage != "final":
        while True:  # grids grow while a best rate sits at an edge: search until every grid is complete
            todo = [spec for task in tasks for method in methods if suite.runs_on(method, task)
                    for spec in search_specs(suite, method, task, runner.records) if not runner.skip(spec)]
            runner.run(todo)
            if not todo or args.plan:
                break
    if args.stage != "lr_search":
        finals = []
        for task in tasks:
            for method in methods:
                if not suite.runs_on(method, task):
                    continue
                reported = [s for s in (args.seeds or suite.seeds_for(method))]
                lr = (borrowed_lr(suite, method, task, args.results_dir) if suite.lr_suite else
                      final_lr(suite, method, task, runner.records))
                if lr is not None:
                    finals += final_specs(suite, method, task, lr, reported)
                    continue
                later = len(final_specs(suite, method, task, 0.0, reported))
                if args.plan:
                    runner.waiting += later
                else:
                    where = f"in suite {suite.lr_suite}" if suite.lr_suite else "(search incomplete or failed)"
                    print(f"no learning rate chosen for {method} on {task} {where}; its {later} seed(s) wait",
                          flush=True)
        if untuned:  # the untuned model's score: one run per task, no rate, no seed of its own (nothing trains)
            finals += [RunSpec(suite.name, UNTUNED, task, suite.seeds[0], 0.0, "final") for task in tasks]
        runner.run(finals)
    if args.plan:
        print(f"{runner.planned} run(s) to run now, then {runner.waiting} final run(s) once their learning-rate "
              "search is complete", flush=True)
    else:
        print(f"{runner.ran} run(s) ran in {(time.perf_counter() - runner.started) / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
