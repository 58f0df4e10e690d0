"""The multi-task sections of BENCHMARKS.md: suites ``mt2`` and ``mt3`` against cpu2's single-task runs, same seeds.

Rows: slaft's multi-task models (one per pool share) and one LoRA q,v shared by every task, then one single-task run
per task of slaft at LoRA's size and of LoRA q,v, each at the seeds the multi-task runs have and at the epochs they
give each task (mt2: three, cpu2's own runs, and for CoLA, which cpu2 trains for six, the 3-epoch runs kept as
``cpu2-cola3ep``; mt3: cpu2's epochs, CoLA's six included), so both sides take the same optimizer steps. A single-task
approach stores the sum of its four runs' parameters. Figures: the sharing matrix and each task's structure (one seed).
"""

from __future__ import annotations

import statistics
from pathlib import Path

from slaft.plots import plot_sharing, plot_structure
from slaft.structure import Structure

from ..harness.multitask import LABELS, LR_FROM, METHODS, SLAFT_VARIANTS, SUITES_MT, TASKS, chosen_rate, searched_grid
from ..harness.records import chosen_lr, epochs_of
from .tables import TASK_TITLES

SINGLE = {"slaft-budget-lora": "slaft single-task (budget = LoRA q,v), one per task",
          "peft-lora-qv": "LoRA r=8 (q,v), one per task"}
SINGLE_TASK_SUITES = ("cpu2", "cpu2-cola3ep")  # cpu2, and its CoLA runs from before CoLA got 6 epochs
GOAL_SHARE = 0.70  # the issue's limit: at most 70% of the single-task runs' stored parameters


def _finals(records: list[dict], *suites: str) -> list[dict]:
    return [r for r in records if r.get("suite") in suites and r.get("stage") == "final" and r.get("status") == "ok"]


def _fmt(values: list[float], scale: float = 100.0) -> str:
    if not values:
        return "–"
    mean = statistics.fmean(values) * scale
    if len(values) < 2:  # one seed has no spread: show none rather than a measured-looking 0.0
        return f"{mean:.1f}"
    return f"{mean:.1f} ± {statistics.stdev(values) * scale:.1f}"


def _suite_records(records: list[dict], name: str) -> list[dict]:
    return [r for r in records if r.get("suite") == name]


def reported_rate(method: str, records: list[dict], name: str = "mt2") -> float | None:
    """The rate whose seeds a method's row shows in suite ``name`` (``records``: those of the suite that searched,
    the ``lr_suite`` where it has one): the one its search chose, or while the search still has rates to run (an edge
    extended it), the best of the rates it has run so far; None (every seed shown) where no search run is recorded
    at all (a pipeline check's records)."""
    suite = SUITES_MT[SUITES_MT[name].lr_suite or name]
    source = LR_FROM.get(method, method)
    chosen = chosen_rate(suite, method, records)
    if chosen is not None:
        return chosen
    ran = tuple(lr for lr in searched_grid(suite, source, records)[0]
                if any(r["method"] == source and int(r["seed"]) == suite.selection_seed and float(r["lr"]) == lr
                       for r in records))
    return chosen_lr(records, source, "+".join(TASKS), ran, suite.selection_seed) if ran else None


def open_searches(records: list[dict], name: str = "mt2") -> list[str]:
    """The methods of suite ``name`` whose rate search (its own, or its ``lr_suite``'s) still has a rate to run
    (their rows show the best rate so far)."""
    searched = SUITES_MT[name].lr_suite or name
    mt = _suite_records(records, searched)
    return [m for m in SUITES_MT[name].methods if m not in LR_FROM and any(r["method"] == m for r in mt)
            and not searched_grid(SUITES_MT[searched], m, mt)[1]]


def rows(records: list[dict], name: str = "mt2") -> tuple[list[dict], list[int]]:
    """One row per approach: per-seed per-task scores, per-seed stored parameters; and the seeds they share."""
    searched = _suite_records(records, SUITES_MT[name].lr_suite or name)
    rates = {m: reported_rate(m, searched, name) for m in METHODS}
    multi = [r for r in _finals(records, name) if rates[r["method"]] in (None, float(r["lr"]))]
    seeds = sorted({int(r["seed"]) for r in multi})
    out = []
    for method in METHODS:
        runs = {int(r["seed"]): r for r in multi if r["method"] == method}
        if runs:
            out.append({"label": LABELS[method], "method": method, "seeds": sorted(runs),
                        "scores": {s: r["scores"] for s, r in runs.items()},
                        "stored": {s: r["stored_params"] for s, r in runs.items()}})
    # Like for like: a single-task run counts when it trained its task for the epochs the multi-task runs gave it.
    epochs = {t: epochs_of(multi[0], t) for t in TASKS} if multi else {}
    single = [r for r in _finals(records, *SINGLE_TASK_SUITES) if epochs.get(r["task"]) == epochs_of(r)]
    for method, label in SINGLE.items():
        by_seed = {}
        for seed in seeds:
            found = {r["task"]: r for r in single if r["method"] == method and int(r["seed"]) == seed}
            if all(task in found for task in TASKS):
                by_seed[seed] = found
        if by_seed:
            out.append({"label": label, "method": method, "seeds": sorted(by_seed),
                        "scores": {s: {t: f[t]["score"] for t in TASKS} for s, f in by_seed.items()},
                        "stored": {s: sum(f[t]["stored_params"] for t in TASKS) for s, f in by_seed.items()}})
    return out, seeds


def _intro(name: str, seeds: list[int]) -> str:
    same_seeds = f"The single-task rows are cpu2's runs of the same seeds ({', '.join(map(str, seeds))}) "
    if SUITES_MT[name].lr_suite:
        return (
            f"Suite `{name}` trains `slaft-multitask` and `LoRA q,v shared` as `{SUITES_MT[name].lr_suite}` does, "
            f"at the rates they chose there, with the two parts of cpu2's single-task recipe that "
            f"`{SUITES_MT[name].lr_suite}` left out: CoLA gets two passes over its examples per epoch (its six "
            "single-task epochs against three for the other tasks), so the multi-task runs take the optimizer steps "
            "of the four single-task runs together, and each task's batches are grouped by length as in every cpu2 "
            "run. " + same_seeds + "at cpu2's own epochs (six on CoLA); their stored parameters are the sum over the "
            "four tasks. Scores: validation, ×100, mean ± sd over seeds.")
    return (
        "One MiniLM serves the four tasks of protocol 2. `slaft-multitask` learns a structure per task over one "
        "shared pool (each task within LoRA r=8 (q,v)'s size, the stored pool within half the sum of the four "
        "budgets, a unit kept by several tasks counted once); `slaft-multitask-pool1` lets the pool hold the whole "
        "sum, so no task has to share a unit; two diagnostics of what costs CoLA its score keep every unit task-"
        "private (`-private`) or give each task its own pooler (`-own-pooler`); `-hold` keeps the units a step's "
        "task does not use as they were through that step (values and Adam's moments); the variants use the rate "
        "`slaft-multitask` chose. `LoRA q,v shared` is one peft LoRA adapter for all tasks. All but `-own-pooler` "
        "share the mean pooler; all train a classifier per task, on batches of one task drawn in proportion to the "
        "tasks' sizes (not grouped by length), three epochs over every training set: the optimizer steps of the "
        "four single-task runs together, but for CoLA's second three epochs (mt3 adds them). "
        "Rates were searched on seed 100 over {1e-3, 3e-3}, and beyond an edge of that grid while the best rate "
        "sat there (as in cpu2); each row shows the seeds at its method's chosen rate. " + same_seeds
        + "at the epochs the multi-task runs give each task (for CoLA, which cpu2 trains for 6, its 3-epoch runs, "
        "suite `cpu2-cola3ep`); their stored parameters are the sum over the four tasks. "
        "Scores: validation, ×100, mean ± sd over seeds.")


def section(records: list[dict], report: Path, figures: Path, name: str = "mt2", draw: bool = True) -> list[str]:
    table, seeds = rows(records, name)
    if not table:
        return []
    reference = next((r for r in table if r["method"] == "slaft-budget-lora"), None)
    ref_stored = statistics.fmean(reference["stored"].values()) if reference else None
    title = {"mt3": "with cpu2's per-task epochs and length grouping"}.get(
        name, "one backbone for CoLA, SST-2, STS-B and BBC News")
    lines = [
        f"## Multi-task (suite `{name}`): {title}",
        "",
        _intro(name, seeds),
        "",
        "| Approach | seeds | " + " | ".join(TASK_TITLES[t] for t in TASKS)
        + " | Mean | Stored params | vs single-task slaft |",
        "|---|---|" + "---|" * len(TASKS) + "---|---|---|",
    ]
    for row in table:
        per_task = [_fmt([row["scores"][s][t] for s in row["seeds"]]) for t in TASKS]
        means = [statistics.fmean(row["scores"][s][t] for t in TASKS) for s in row["seeds"]]
        stored = statistics.fmean(row["stored"].values())
        share = f"{100 * stored / ref_stored:.0f}%" if ref_stored else "–"
        lines.append(f"| {row['label']} | {len(row['seeds'])} | " + " | ".join(per_task)
                     + f" | {_fmt(means)} | {stored:,.0f} | {share} |")
    missing = [LABELS[m] for m in SUITES_MT[name].methods if not any(r["method"] == m for r in table)]
    if missing:
        lines.append(f"\nNo reported seed yet: {', '.join(missing)}.")
    searching = open_searches(records, name)
    if searching:
        lines.append(f"\nRate search still open (a best rate at an edge of the grid asks for the next rate): "
                     f"{', '.join(LABELS[m] for m in searching)}; their rows show the seeds at the best rate so far.")
    lines.append("")
    measured = goals(records, name)
    if measured:
        sd = measured[0]["sd"]
        lines += ["The multi-task goal: a mean no lower than single-task slaft's within the seeds' spread ("
                  + (f"the sd of its four-task mean over seeds: {sd:.1f}" if sd is not None
                     else "one seed: no spread yet")
                  + f"), with at most {100 * GOAL_SHARE:.0f}% of its stored parameters. Paired by seed: the multi-task "
                  "model's mean over the four tasks minus single-task slaft's (x100).", "",
                  "| Approach | Paired by seed | Mean | Stored share | Size | Score |", "|---|---|---|---|---|---|"]
        for goal in measured:
            per_seed = ", ".join(f"seed {s}: {d:+.1f}" for s, d in zip(goal["seeds"], goal["diffs"])) or "—"
            mean = f"{statistics.fmean(goal['diffs']):+.1f}" if goal["diffs"] else "—"
            lines.append(f"| {goal['label']} | {per_seed} | {mean} | {100 * goal['share']:.0f}% | "
                         f"{'met' if goal['share_met'] else 'not met'} | {goal['verdict']} |")
        lines.append("")
    lines += _figures(records, report, figures, name, draw)
    return lines


def goals(records: list[dict], name: str = "mt2") -> list[dict]:
    """Per multi-task slaft row of suite ``name``, the multi-task goal against single-task slaft on the same seeds:
    the paired per-seed differences of the four-task mean (x100), the stored share, and the verdicts."""
    table, _ = rows(records, name)
    reference = next((r for r in table if r["method"] == "slaft-budget-lora"), None)
    out = []
    for multi in [r for r in table if r["method"] in SLAFT_VARIANTS and reference]:
        paired = [s for s in multi["seeds"] if s in reference["seeds"]]
        diffs = [100 * (statistics.fmean(multi["scores"][s][t] for t in TASKS)
                        - statistics.fmean(reference["scores"][s][t] for t in TASKS)) for s in paired]
        spread = [100 * statistics.fmean(reference["scores"][s][t] for t in TASKS) for s in reference["seeds"]]
        sd = statistics.stdev(spread) if len(spread) > 1 else None  # None: one seed, no spread yet
        share = statistics.fmean(multi["stored"].values()) / statistics.fmean(reference["stored"].values())
        verdict = ("not measured yet" if not diffs else "not decided (one seed)" if sd is None
                   else "met" if statistics.fmean(diffs) >= -sd else "not met")
        out.append({"label": multi["label"], "method": multi["method"], "seeds": paired, "diffs": diffs, "sd": sd,
                    "share": share, "share_met": share <= GOAL_SHARE, "verdict": verdict,
                    "spread_text": (f"the single-task mean's sd over seeds is {sd:.1f}" if sd is not None
                                    else "one single-task seed, so no spread yet")})
    return out


def _figures(records: list[dict], report: Path, figures: Path, name: str, draw: bool = True) -> list[str]:
    """The figures' links; the figures themselves are drawn only when ``draw``."""
    import os

    runs = [r for r in _finals(records, name) if r["method"] == "slaft-multitask" and r.get("details")]
    if not runs:
        return []
    run = min(runs, key=lambda r: int(r["seed"]))
    details, tasks = run["details"], [t for t in TASKS if t in run["scores"]]
    candidate = Structure.from_dict(details["candidate"])
    sharing = figures / f"{name}_sharing.png"
    if draw:
        plot_sharing(details["sharing"], tasks, sharing,
                     title=f"adapter parameters kept by both tasks (seed {run['seed']})")
    link = lambda path: Path(os.path.relpath(path, report.parent)).as_posix()  # noqa: E731
    lines = [f"![sharing matrix]({link(sharing)})", ""]
    cells = []
    for task in tasks:
        path = figures / f"{name}_structure_{task}.png"
        if draw:
            plot_structure(Structure.from_dict(details["structures"][task]), candidate, path,
                           title=f"{TASK_TITLES.get(task, task)}, multi-task")
        cells.append(f"![{task}]({link(path)})")
    lines += [" ".join(cells), ""]
    return lines
