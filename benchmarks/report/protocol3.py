"""Protocol 3 (issue 41): which new tasks the pilot keeps, and slaft against the hand-chosen structures, paired by
seed, with one verdict line per suite.

- ``pilot3`` and ``llm-pilot`` (the encoder's and the decoder's): a task is kept when LoRA r=8 (q,v)'s mean over the
  pilot's seeds is at least 5 points above the best constant prediction (the untuned model, where the pilot scores
  it, is shown beside it and decides nothing).
- ``pareto`` (the size axis): slaft at each of its sizes against the best peer at or below that size, per task and on
  the mean over tasks. A peer is at or below a size when its adapter parameters (stored parameters minus the task
  head) on that task are at most slaft's budget there (its ``target_params``; in λ mode, what it kept). The best
  such peer is the one with the highest mean over the reported seeds on that task; on the mean, the one with the
  highest mean over tasks among the peers at or below slaft's size on every task. The best peer is picked on the
  reported seeds themselves, so the comparison leans towards the peers.
- ``llm`` (the decoder): slaft against each of its peers, per task and on the mean.
- ``design3`` (and ``design3-s<seed>``): how slaft's design was chosen, on selection seeds only.

A paired difference holds when its mean is positive and more than half of its seeds agree, does not hold when both
point the other way, and is open otherwise (``headline.verdict``).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace

from ..harness.methods import label
from ..harness.methods.plain_methods import UNTUNED
from ..harness.methods.slaft_methods import SIZE_AXIS
from ..harness.run import planned_count
from ..harness.suites import LLM_METHODS, PARETO_LAMBDA, PARETO_PEERS, PARETO_SLAFT_BUDGETS, SUITES
from .headline import verdict
from .summarize import SuiteSummary, summarize
from .tables import TASK_TITLES, _count, _row


SUITE_NAMES = ("pilot3", "llm-pilot", "pareto", "llm")
PILOT_SUITES = ("pilot3", "llm-pilot")
PARETO_SLAFT = (*PARETO_SLAFT_BUDGETS, PARETO_LAMBDA)  # the size axis: slaft's budgets, then its λ default
LLM_SLAFT, LLM_PEERS = LLM_METHODS[0], LLM_METHODS[1:]
PILOT_MARGIN = 0.05  # a pilot task is kept when LoRA (q,v) is this far above the best constant prediction


def pilot_table(summary: SuiteSummary) -> str | None:
    """Per task: the pilot method's score on each seed, its mean, the best constant prediction and whether the task
    is kept (needs the GLUE data for the constant prediction)."""
    rows, deciding = [], SUITES[summary.suite].methods
    for task in summary.tasks:
        for method in summary.methods:
            scores, floor = _scores(summary, method, task), summary.floors.get(task, {}).get("score")
            if not scores or floor is None:
                continue
            mean = statistics.fmean(scores.values())
            rows.append(_row([TASK_TITLES.get(task, task), label(method),
                              " ".join(f"{100 * v:.1f}" for v in scores.values()), f"{100 * mean:.1f}",
                              f"{100 * floor:.1f}", "—" if method not in deciding
                              else "kept" if mean >= floor + PILOT_MARGIN else "dropped"]))
    head = ["Task", "Method", "Per seed", "Mean", "Best constant prediction",
            f"Kept (≥ {100 * PILOT_MARGIN:.0f} points above it)"]
    return "\n".join([_row(head), _row(["---"] * len(head)), *rows]) if rows else None


@dataclass
class Paired:
    """slaft's score minus a peer's, seed by seed (x1, not x100)."""

    peer: str
    diffs: dict[int, float]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.diffs.values())

    @property
    def won(self) -> int:
        return sum(d > 0 for d in self.diffs.values())

    @property
    def verdict(self) -> str:
        return verdict(self.mean, self.won, len(self.diffs))

    def text(self, name_peer: bool = True) -> str:
        out = f"{100 * self.mean:+.1f} ({self.won}/{len(self.diffs)})"
        return f"{out} vs {label(self.peer)}" if name_peer else out


def _scores(summary: SuiteSummary, method: str, task: str) -> dict[int, float]:
    cell = summary.cell(method, task)
    return {int(r["seed"]): float(r["score"]) for r in cell.runs} if cell else {}


def size_of(summary: SuiteSummary, method: str, task: str) -> float | None:
    """A method's size on a task: slaft's budget where it was given one, else its mean adapter parameters."""
    cell = summary.cell(method, task)
    if cell is None:
        return None
    budgets = [(r.get("details") or {}).get("slaft_target_params") for r in cell.runs]
    if all(budgets):
        return statistics.fmean(float(b) for b in budgets)
    return cell.mean("adapter_params")


def _paired(summary: SuiteSummary, method: str, peer: str, tasks: list[str]) -> Paired | None:
    """Per seed that both have on every task, the mean over ``tasks`` of the method's score minus the peer's."""
    mine = [_scores(summary, method, t) for t in tasks]
    theirs = [_scores(summary, peer, t) for t in tasks]
    seeds = set.intersection(*(set(m) & set(p) for m, p in zip(mine, theirs, strict=True))) if tasks else set()
    if not seeds:
        return None
    return Paired(peer, {s: statistics.fmean(m[s] - p[s] for m, p in zip(mine, theirs, strict=True))
                         for s in sorted(seeds)})


def peers_at_or_below(summary: SuiteSummary, method: str, peers: tuple[str, ...], tasks: list[str]) -> list[str]:
    """The peers whose size is at most the method's on every one of ``tasks``."""
    sizes = [size_of(summary, method, t) for t in tasks]
    if not tasks or any(s is None for s in sizes):
        return []
    return [p for p in peers
            if all((own := size_of(summary, p, t)) is not None and own <= size for t, size in zip(tasks, sizes,
                                                                                                    strict=True))]


def against_best(summary: SuiteSummary, method: str, peers: tuple[str, ...], task: str | None) -> Paired | None:
    """The method against the best peer at or below its size, on one task or (``task`` None) on the mean over
    tasks; None when it has no such peer or no shared seed."""
    tasks = list(summary.tasks) if task is None else [task]
    if task is None and any(summary.cell(method, t) is None for t in tasks):
        return None
    eligible = peers_at_or_below(summary, method, peers, tasks)
    means = [(mean, p) for p in eligible
             if (mean := (summary.average(p) if task is None else summary.cell(p, task).mean("score"))) is not None]
    if not means:
        return None
    return _paired(summary, method, max(means)[1], tasks)


def size_axis_table(summary: SuiteSummary, methods: tuple[str, ...], peers: tuple[str, ...],
                    with_mean: bool = True) -> str | None:
    """Rows: slaft's sizes; columns: each task and (``with_mean``) the mean; cells: slaft minus the best peer at or
    below its size (x100, mean over the shared seeds), seeds won, and that peer."""
    head = ["slaft", "Budget", *[TASK_TITLES.get(t, t) for t in summary.tasks], *(["Mean over tasks"] * with_mean)]
    rows = []
    for method in methods:
        cells = [against_best(summary, method, peers, t) for t in [*summary.tasks, *([None] * with_mean)]]
        if not any(cells):
            continue
        sizes = [s for t in summary.tasks if (s := size_of(summary, method, t)) is not None]
        rows.append(_row([label(method), _count(statistics.fmean(sizes)) if sizes else "—",
                          *[c.text() if c else "—" for c in cells]]))
    return "\n".join([_row(head), _row(["---"] * len(head)), *rows]) if rows else None


def size_axis_claim(summary: SuiteSummary, methods: tuple[str, ...], peers: tuple[str, ...]) -> str | None:
    """One line: does slaft score above the best peer at or below its size, at every size, on the mean over tasks?"""
    results = [(m, p) for m in methods if (p := against_best(summary, m, peers, None))]
    if not results:
        return None
    verdicts = [p.verdict for _, p in results]
    overall = ("Holds" if all(v == "Holds" for v in verdicts) and len(results) == len(methods)
               else "Does not hold" if "Does not hold" in verdicts else "Open")
    return (f"**{overall}:** on the mean over tasks, slaft scores above the best hand-chosen structure at or below "
            f"its size at every size (suite `{summary.suite}`; budget as a share of LoRA r=8 (q,v)'s size: paired "
            "difference, seeds won): " + "; ".join(f"{share(m)}: {p.text()}" for m, p in results) + ".")


def share(method: str) -> str:
    """A size-axis method's budget as a share of LoRA r=8 (q,v)'s size ("1/8", "2x"), else its label."""
    size = method.removeprefix("slaft-budget-").split("-")[0] if method.startswith("slaft-budget-") else None
    return next((text for name, text, _ in SIZE_AXIS if name == size), label(method))


def peer_table(summary: SuiteSummary, method: str, peers: tuple[str, ...], with_mean: bool = True) -> str | None:
    """slaft against each peer, per task and (``with_mean``) on the mean (x100, seeds won), with the peer's adapter
    size."""
    head = ["Peer", "Peer adapter params", *[TASK_TITLES.get(t, t) for t in summary.tasks],
            *(["Mean over tasks"] * with_mean)]
    rows = []
    for peer in peers:
        cells = [_paired(summary, method, peer, [t]) for t in summary.tasks]
        if not any(cells):
            continue
        cells += [_paired(summary, method, peer, list(summary.tasks))] * with_mean
        rows.append(_row([label(peer), _count(summary.across_tasks(peer, "adapter_params")),
                          *[c.text(name_peer=False) if c else "—" for c in cells]]))
    if not rows:
        return None
    return "\n".join([f"{label(method)} ({_count(summary.across_tasks(method, 'adapter_params'))} adapter "
                      "parameters) minus each peer:", "", _row(head), _row(["---"] * len(head)), *rows])


def peer_claim(summary: SuiteSummary, method: str, peers: tuple[str, ...], what: str) -> str | None:
    """One line: does ``method`` score above every peer on the mean over tasks?"""
    results = [p for peer in peers if (p := _paired(summary, method, peer, list(summary.tasks)))]
    if not results:
        return None
    verdicts = [p.verdict for p in results]
    overall = ("Holds" if all(v == "Holds" for v in verdicts) and len(results) == len(peers)
               else "Does not hold" if "Does not hold" in verdicts else "Open")
    return (f"**{overall}:** {what}, {label(method)} scores above every peer on the mean over tasks (suite "
            f"`{summary.suite}`, paired, seeds won): " + "; ".join(p.text() for p in results) + ".")


UNSTABLE_DROP = 0.05  # a reported seed this far below the median of its method's seeds on a task is listed


def _rate(lr: float) -> str:
    return f"{lr:.0e}".replace("e-0", "e-")


def unstable_table(summary: SuiteSummary) -> str | None:
    """The reported seeds more than ``UNSTABLE_DROP`` below the median of their method's seeds on a task, each with
    the method's other seeds and its selection-seed search at the chosen rate and the rates above it (x100): a drop
    beside a search whose next rate up fails says the chosen rate sits at the edge of where the method trains."""
    rows = []
    for task in summary.tasks:
        for method in summary.methods:
            cell = summary.cell(method, task)
            if cell is None or len(cell.runs) < 3:
                continue
            scores = {int(r["seed"]): float(r["score"]) for r in cell.runs}
            median = statistics.median(scores.values())
            search = {float(r["lr"]): float(r["score"]) for r in summary.records
                      if r["method"] == method and r["task"] == task and r.get("stage") == "lr_search"
                      and r.get("status") == "ok"}
            shown = sorted(lr for lr in search if cell.lr is not None and lr >= cell.lr)
            for seed, score in sorted(scores.items()):
                if score < median - UNSTABLE_DROP:
                    others = " ".join(f"{100 * v:.1f}" for s, v in sorted(scores.items()) if s != seed)
                    rows.append(_row([TASK_TITLES.get(task, task), label(method), str(seed), _rate(cell.lr),
                                      f"{100 * score:.1f}", others,
                                      "; ".join(f"{_rate(lr)}: {100 * search[lr]:.1f}" for lr in shown) or "—"]))
    head = ["Task", "Method", "Seed", "Rate", "Score", "Its other seeds", "Selection seed's search, this rate and up"]
    return "\n".join([_row(head), _row(["---"] * len(head)), *rows]) if rows else None


def complete(suite: str, records: list[dict], tasks: tuple[str, ...] | None = None) -> bool:
    """Whether every run the suite plans (on ``tasks``, default all of its tasks) has succeeded: until then the
    report shows none of it. Runs of methods the suite does not plan (pareto holds the seed-200 searches of slaft's
    earlier design) count for nothing."""
    known = SUITES[suite] if tasks is None else replace(SUITES[suite], tasks=tasks)
    planned = {*known.methods, UNTUNED}
    own = [r for r in records if r["suite"] == suite and r["method"] in planned and r["task"] in known.tasks]
    return bool(own) and sum(r.get("status") == "ok" for r in own) >= planned_count(known, own)


def complete_tasks(suite: str, records: list[dict]) -> list[str]:
    """The tasks (in the suite's order) on which every run the suite plans has succeeded: their numbers are final
    while the suite runs on; its mean over tasks and its verdict wait for the rest."""
    return [task for task in SUITES[suite].tasks if complete(suite, records, (task,))]


def claims(records: list[dict], summaries: dict[str, SuiteSummary] | None = None) -> list[str]:
    """The size axis's and the decoder's verdict lines, for those of the two suites that are complete."""
    summaries = summaries or {}
    lines = []
    if complete("pareto", records):
        pareto = summaries.get("pareto") or summarize("pareto", records)
        lines.append(size_axis_claim(pareto, PARETO_SLAFT_BUDGETS, PARETO_PEERS))
    if complete("llm", records):
        llm = summaries.get("llm") or summarize("llm", records)
        lines.append(peer_claim(llm, LLM_SLAFT, LLM_PEERS, "on the decoder (SmolLM2-135M)"))
    return [line for line in lines if line]


BASE_LABEL = "base: rank units of two (the design before)"
DESIGN_SUITES = ("design3", *sorted(s for s in SUITES if s.startswith("design3-s")))  # PROTOCOL3.md once all complete


def design_table(records: list[dict], base_suite: str = "pareto", design_suite: str = "design3") -> str | None:
    """slaft's design choice on selection seeds only: per size (columns) and variant (rows, the base first, as the
    base suite runs it), the mean over the selection seeds of each seed's best validation score over the design
    suite's rates (each seed its own rate search, counted once complete), the number of seeds, and the paired
    difference from the base on the seeds both have (x100). Seed 200's runs are the base suite's and
    ``design_suite``'s; other seeds' are in the suites ``design_suite``-s<seed>."""
    known = SUITES[design_suite]
    grid = known.grid("slaft")
    variants = ["", *dict.fromkeys(m.split("-lora-only-", 1)[1] for m in known.methods or ())]
    sizes = list(dict.fromkeys(m.split("-")[2] for m in known.methods or ()))
    suites = {base_suite, design_suite, *(s for s in SUITES if s.startswith(f"{design_suite}-s"))}
    selection = {SUITES[s].picking_seed for s in suites if s != base_suite} | {known.picking_seed}
    lines = []
    for task in known.tasks:
        scores: dict[tuple[str, str], dict[int, dict[float, float]]] = {}  # (size, variant) -> seed -> rate -> score
        for r in records:
            if (r["suite"] in suites and r["task"] == task and r.get("status") == "ok" and float(r["lr"]) in grid
                    and int(r["seed"]) in selection and r["method"].startswith("slaft-budget-")):
                size, _, variant = r["method"][len("slaft-budget-"):].partition("-lora-only")
                key, seed = (size, variant.lstrip("-")), int(r["seed"])
                if size in sizes and key[1] in variants:
                    scores.setdefault(key, {}).setdefault(seed, {})[float(r["lr"])] = float(r["score"])
        best = {key: {seed: max(by_rate.values()) for seed, by_rate in seeds.items() if len(by_rate) == len(grid)}
                for key, seeds in scores.items()}  # a seed counts once its rate search is complete
        for variant in variants:
            cells = []
            for size in sizes:
                mine, base = best.get((size, variant), {}), best.get((size, ""), {})
                if not mine:
                    cells.append("—")
                    continue
                shared = sorted(set(mine) & set(base))
                delta = (f" ({100 * statistics.fmean(mine[s] - base[s] for s in shared):+.1f})"
                         if variant and shared else "")
                cells.append(f"{100 * statistics.fmean(mine.values()):.1f}, n={len(mine)}{delta}")
            if any(c != "—" for c in cells):
                lines.append(_row([TASK_TITLES.get(task, task), variant or BASE_LABEL, *cells]))
    if not lines:
        return None
    titles = {name: f"{fraction:g}x" if fraction >= 1 else label for name, label, fraction in SIZE_AXIS}
    head = ["Task", "Variant", *[titles.get(size, size) for size in sizes]]
    return "\n".join([_row(head), _row(["---"] * len(head)), *lines])
