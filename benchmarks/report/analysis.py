"""Sentences generated from the numbers: where slaft wins, where it loses, and what the measurements say about why.

Every statement is computed from the summary, so re-rendering after more runs keeps the text true; a hand-written
analysis can sit beside it in BENCHMARKS.md (render.py keeps that block).
"""

from __future__ import annotations

import statistics
from collections import Counter

from ..harness.methods import METHODS, REFERENCE, label
from ..harness.suites import CANDIDATE_SPACE_VARIANTS, SUITES
from .summarize import SuiteSummary

# slaft's reported variants: its default space's runs first, then those of the earlier space with bottleneck adapters
# (slaft-search: protocol 1's)
SLAFT = (*CANDIDATE_SPACE_VARIANTS, "slaft", "slaft-budget-lora", "slaft-budget-quarter", "slaft-search")


def _pts(value: float) -> str:
    return f"{100 * value:+.1f}"


def _params(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.1f}k"


def _head_to_head(summary: SuiteSummary, mine: str, other: str) -> tuple[list[str], list[str], list[str]]:
    """Tasks where ``mine`` beats ``other`` by more than the larger seed std, loses by more, or ties."""
    wins, losses, ties = [], [], []
    for task in summary.tasks:
        a, b = summary.cell(mine, task), summary.cell(other, task)
        if not a or not b:
            continue
        delta = a.mean("score") - b.mean("score")
        noise = max(a.std("score") or 0.0, b.std("score") or 0.0)
        text = f"{task} ({_pts(delta)})"
        (wins if delta > noise else losses if delta < -noise else ties).append(text)
    return wins, losses, ties


def _goal(summary: SuiteSummary) -> list[str]:
    """The method issue's goal: the best slaft variant at no more stored adapter parameters than LoRA q,v scores at
    least LoRA q,v's mean, and at least every peer's mean whatever their size. The variants are slaft's reported ones
    (``SLAFT``: its default space's and the earlier space's), not every ablation (the best of many would flatter by
    chance)."""
    ref_size = summary.across_tasks(REFERENCE, "adapter_params")
    ref_avg = summary.average(REFERENCE)
    if ref_size is None or ref_avg is None:
        return []
    small = [(avg, m) for m in SLAFT if (avg := summary.average(m)) is not None
             and (size := summary.across_tasks(m, "adapter_params")) is not None and size <= 1.02 * ref_size]
    if not small:
        return []
    best_avg, best = max(small)
    peers = [(a, m) for m in summary.methods if m not in SLAFT and not m.startswith("slaft")
             and (a := summary.average(m)) is not None]
    top_avg, top = max(peers) if peers else (None, None)
    known = SUITES.get(summary.suite)
    unmeasured = [m for m in (known.methods if known and known.methods else ()) if not m.startswith("slaft")
                  and summary.average(m) is None  # peers of the suite without a score on every task yet
                  and all(known.runs_on(m, t) for t in known.tasks)]  # (a diagnostic on some tasks never has one)
    ahead = best_avg >= ref_avg and (top_avg is None or best_avg >= top_avg)
    verdict = "not met" if not ahead else "met so far" if unmeasured else "met"
    return [f"Goal ({verdict}): the best slaft variant at no more adapter parameters than {label(REFERENCE)} is "
            f"{label(best)} at {100 * best_avg:.1f}, against {100 * ref_avg:.1f} for {label(REFERENCE)} "
            f"({_pts(best_avg - ref_avg)})" + (f" and {100 * top_avg:.1f} for the best peer measured on every task, "
                                                f"{label(top)} ({_pts(best_avg - top_avg)})." if top else ".")
            + (f" Not yet measured on every task: {', '.join(label(m) for m in unmeasured)}." if unmeasured else "")]


def _ranking(summary: SuiteSummary) -> list[str]:
    ranked = sorted(((avg, m) for m in summary.methods if (avg := summary.average(m)) is not None), reverse=True)
    if not ranked:
        return ["No method has final runs on every task yet, so there is no GLUE average to rank."]
    position = {m: i + 1 for i, (_, m) in enumerate(ranked)}
    slaft = [f"{label(m)} {100 * summary.average(m):.1f} (#{position[m]})" for m in SLAFT if m in position]
    best_avg, best = ranked[0]
    lines = [f"Best GLUE average among the {len(ranked)} methods with every task done: {label(best)} at "
             f"{100 * best_avg:.1f}; slaft: {', '.join(slaft) if slaft else 'no complete row yet'}."]
    return lines


def _matched_budget(summary: SuiteSummary) -> list[str]:
    lines = []
    for mine in SLAFT:
        if not any(summary.cell(mine, t) for t in summary.tasks) or not summary.cell(REFERENCE, summary.tasks[0]):
            continue
        wins, losses, ties = _head_to_head(summary, mine, REFERENCE)
        size = summary.across_tasks(mine, "stored_params")
        ref_size = summary.across_tasks(REFERENCE, "stored_params")
        lines.append(
            f"{label(mine)} ({_params(size)} stored vs {_params(ref_size)} for {label(REFERENCE)}): "
            f"better on {', '.join(wins) or 'no task'}; worse on {', '.join(losses) or 'no task'}; "
            f"within one seed std on {', '.join(ties) or 'no task'} (points x100, slaft minus LoRA)."
        )
    return lines


def _per_task_leaders(summary: SuiteSummary) -> list[str]:
    lines = []
    for task in summary.tasks:
        cells = [(c.mean("score"), m) for m in summary.methods if (c := summary.cell(m, task))]
        if not cells:
            continue
        best_score, best = max(cells)
        slaft = [(s, m) for s, m in cells if m in SLAFT]
        if not slaft:
            continue
        slaft_score, slaft_best = max(slaft)
        if best in SLAFT:
            lines.append(f"{task}: {label(best)} has the best score of all methods ({100 * best_score:.1f}).")
        else:
            lines.append(f"{task}: best is {label(best)} ({100 * best_score:.1f}); the best slaft run, "
                         f"{label(slaft_best)}, is {100 * (best_score - slaft_score):.1f} points behind it.")
    return lines


def _pareto(summary: SuiteSummary) -> list[str]:
    from .figures import pareto_front

    points = [(p, 100 * a, m) for m in summary.methods
              if (a := summary.average(m)) is not None and (p := summary.across_tasks(m, "stored_params"))]
    if len(points) < 2:
        return []
    front = [m for _, _, m in pareto_front(points)]
    on = [m for m in SLAFT if m in front]
    return [f"On the Pareto front of GLUE average against stored parameters: {', '.join(map(label, front))}. "
            + (f"slaft is on it with {', '.join(map(label, on))}." if on else
               "No slaft run is on it: for every slaft variant some method is both smaller and better.")]


def _costs(summary: SuiteSummary) -> list[str]:
    lines = []
    ref = label(REFERENCE)
    for mine in SLAFT:
        step = summary.ratio_vs_reference(mine, "step_seconds")
        if step is None:
            continue
        phases = [r.get("step_seconds_by_phase", {}) for t in summary.cost_tasks if (c := summary.cell(mine, t))
                  for r in c.solo_runs]
        ref_steps = [r["step_seconds"] for t in summary.cost_tasks if (c := summary.cell(REFERENCE, t))
                     for r in c.solo_runs]
        search = [p["search"] for p in phases if p.get("search")]
        finetune = [p["finetune"] for p in phases if p.get("finetune")]
        trainable = summary.ratio_vs_reference(mine, "trainable_params")
        memory = summary.ratio_vs_reference(mine, "peak_memory_mb")
        increment = summary.ratio_vs_reference(mine, "train_memory_mb")
        text = f"{label(mine)} trains at {step:.2f}x {ref}'s median step time"
        if search and finetune and ref_steps:
            base = statistics.median(ref_steps)
            text += (f" (search phase {statistics.median(search) / base:.2f}x, fine-tune phase "
                     f"{statistics.median(finetune) / base:.2f}x, medians over the solo runs)")
        text += (f" and {memory:.2f}x its peak memory ({increment:.2f}x its training increment over the loaded "
                 f"model)" if memory and increment else "")
        text += (f": the search trains the whole candidate space, {trainable:.0f}x LoRA's trainable parameters, "
                 "before discretizing shrinks it." if trainable else ".")
        lines.append(text)
    return lines


def _latency(summary: SuiteSummary) -> list[str]:
    lines = []
    for mine in SLAFT:
        runs = [r for t in summary.tasks if (c := summary.cell(mine, t)) for r in c.runs]
        if not runs:
            continue
        merged = sum(bool(r.get("merged")) for r in runs)
        ratio = summary.across_tasks(mine, "latency_ratio_vs_base")
        if ratio is None:
            continue
        kept = Counter(site for r in runs for site in r.get("details", {}).get("slaft_sites", []))
        lines.append(
            f"{label(mine)} serves at {ratio:.2f}x the base model's latency: {merged} of {len(runs)} exports folded "
            f"completely into the base weights; the others keep nonlinear or parallel bottlenecks as modules. "
            f"Sites kept, counted over runs: {', '.join(f'{s} {n}' for s, n in kept.most_common()) or 'none'}."
        )
    unmerged = [m for m in summary.methods if m not in SLAFT and summary.cell(m, summary.tasks[0])
                and not any(r.get("merged") for r in summary.cell(m, summary.tasks[0]).runs)]
    ratios = ", ".join(f"{label(m)} {r:.2f}x" for m in unmerged
                       if (r := summary.across_tasks(m, "latency_ratio_vs_base")) is not None)
    if ratios:
        lines.append(f"Peers that cannot merge pay at inference: {ratios} the base model's latency.")
    return lines


def _at_the_floor(summary: SuiteSummary, margin: float = 0.01) -> list[str]:
    """Per task, the methods whose mean is no more than ``margin`` above the best constant predictor's score."""
    parts = []
    for task in summary.tasks:
        floor = summary.floors.get(task, {}).get("score")
        means = [c.mean("score") for m in summary.methods if (c := summary.cell(m, task))]
        if floor is None or not means:
            continue
        low = sum(mean <= floor + margin for mean in means)
        parts.append(f"{task} {low} of {len(means)} (constant: {100 * floor:.1f})")
    if not parts:
        return []
    return [f"Methods whose mean is at most {100 * margin:.0f} point above the best constant predictor (one class "
            f"for every input; 0 for correlations), i.e. that learned next to nothing the metric can see: "
            f"{', '.join(parts)}. "
            "Differences between methods on a task where most of them sit there are noise, not ranking."]


def _baselines(summary: SuiteSummary) -> list[str]:
    out = []
    full, head = summary.average("full-ft"), summary.average("head-only")
    peft_best = max(((a, m) for m in summary.methods if m not in ("full-ft",) and (a := summary.average(m))),
                    default=None)
    if full is not None and peft_best:
        out.append(f"Full fine-tuning averages {100 * full:.1f}; the best parameter-efficient method, "
                   f"{label(peft_best[1])}, averages {100 * peft_best[0]:.1f} ({_pts(peft_best[0] - full)}).")
    if head is not None:
        out.append(f"The linear probe (head only) averages {100 * head:.1f}: the floor any adapter must clear.")
    return out


def _grid_edges(summary: SuiteSummary) -> list[str]:
    """Rates chosen at the top of their grid: the search may have stopped short of the best rate."""
    suite = SUITES.get(summary.suite)
    if suite is None:
        return []
    top, searched = [], 0
    for (method, task), cell in summary.cells.items():
        if cell.lr is None or method not in METHODS:
            continue
        grid = suite.grid(METHODS[method].family)
        if len(grid) < 2:
            continue
        searched += 1
        scores = {float(r["lr"]): r.get("score") for r in summary.records
                  if r["method"] == method and r["task"] == task and int(r["seed"]) == suite.seeds[0]}
        if cell.lr == max(grid) and len(set(scores.values())) > 1:
            top.append(f"{label(method)} on {task}")
    if not top:
        return []
    return [f"{len(top)} of {searched} searched (method, task) pairs chose the largest rate of their grid, so a "
            f"larger one might have done better: {', '.join(top)}."]


def generated_analysis(summary: SuiteSummary) -> list[str]:
    """Bullet points, each a sentence or two computed from ``summary``."""
    parts = [_goal, _ranking, _matched_budget, _per_task_leaders, _at_the_floor, _pareto, _costs, _latency, _baselines,
             _grid_edges]
    return [line for part in parts for line in part(summary)]
