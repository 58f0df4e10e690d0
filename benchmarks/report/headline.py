"""The headline of protocol 2, computed from the cpu2 and mt3 records: the summary lines on top of BENCHMARKS.md and
the README's results block (one table and a one-line verdict between the BENCHMARK-SUMMARY markers).

    python -m benchmarks.report.headline      # only the README block (python -m benchmarks.report runs it too)

Each line states a comparison and whether it holds on the records: a paired difference holds when its mean is
positive and more than half of the shared seeds agree, does not hold when both point the other way, and is open
otherwise.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from ..harness.methods import REFERENCE, label
from ..harness.records import RESULTS_DIR, read_records, stores_in
from ..harness.suites import PROTOCOL2_PEERS
from .multitask import GOAL_SHARE, goals
from .summarize import SuiteSummary, summarize
from .tables import TASK_TITLES, _count, _library, _title

REPO = Path(__file__).resolve().parents[2]
START = "<!-- BENCHMARK-SUMMARY:start -->"
END = "<!-- BENCHMARK-SUMMARY:end -->"
SUITE = "cpu2"
MULTITASK = "mt3"
# slaft's default candidate space (LoRA on every linear): at LoRA r=8 (q,v)'s size, in λ mode, at a quarter of it
AT_LORA, IN_LAMBDA, AT_QUARTER = "slaft-budget-lora-lora-only", "slaft-lora-only", "slaft-budget-quarter-lora-only"
SLAFT_ROWS = (AT_LORA, IN_LAMBDA, AT_QUARTER)
QUARTER_PEER = "peft-lora-qv-r2"  # the hand-chosen structure at a quarter of LoRA r=8 (q,v)'s size


def paired(summary: SuiteSummary, method: str, reference: str) -> tuple[float, int, int] | None:
    """(mean over tasks of the per-task mean paired difference x100, seeds won, seeds compared): a seed counts when
    both methods have every task on it, and is won when the method's mean over tasks is higher."""
    per_task, by_seed = [], {}
    for task in summary.tasks:
        mine, ref = summary.cell(method, task), summary.cell(reference, task)
        if not mine or not ref:
            return None
        a = {int(r["seed"]): float(r["score"]) for r in mine.runs}
        b = {int(r["seed"]): float(r["score"]) for r in ref.runs}
        shared = sorted(set(a) & set(b))
        if not shared:
            return None
        per_task.append(statistics.fmean(a[s] - b[s] for s in shared))
        for s in shared:
            by_seed.setdefault(s, []).append(a[s] - b[s])
    seeds = [diffs for diffs in by_seed.values() if len(diffs) == len(summary.tasks)]
    return 100 * statistics.fmean(per_task), sum(statistics.fmean(d) > 0 for d in seeds), len(seeds)


def verdict(delta: float, won: int, seeds: int) -> str:
    if delta > 0 and 2 * won > seeds:
        return "Holds"
    if delta < 0 and 2 * won < seeds:
        return "Does not hold"
    return "Open"


def _avg(summary: SuiteSummary, method: str) -> str:
    return f"{100 * summary.average(method):.1f}"


def _pair_claim(summary: SuiteSummary, method: str, reference: str, what: str) -> str | None:
    result = paired(summary, method, reference)
    if result is None or summary.average(method) is None or summary.average(reference) is None:
        return None
    delta, won, seeds = result
    return (f"**{verdict(delta, won, seeds)}:** {what}: {_avg(summary, method)} against {_avg(summary, reference)} "
            f"({_count(summary.across_tasks(method, 'adapter_params'))} against "
            f"{_count(summary.across_tasks(reference, 'adapter_params'))} adapter parameters), paired {delta:+.1f}, "
            f"higher on {won} of {seeds} seeds.")


def _best_peer(summary: SuiteSummary) -> tuple[float, str] | None:
    peers = [(avg, m) for m in PROTOCOL2_PEERS if (avg := summary.average(m)) is not None]
    return max(peers) if peers else None


def _task_leaders(summary: SuiteSummary) -> dict[str, str]:
    leaders = {}
    for task in summary.tasks:
        cells = [(c.mean("score"), m) for m in (*SLAFT_ROWS, *PROTOCOL2_PEERS) if (c := summary.cell(m, task))]
        if cells:
            leaders[task] = max(cells)[1]
    return leaders


def claims(summary: SuiteSummary, records: list[dict]) -> list[str]:
    """One line per claim of the headline, each with its verdict on the records."""
    lines = [_pair_claim(summary, AT_LORA, REFERENCE, f"{label(AT_LORA)} scores above {label(REFERENCE)} at its size")]
    best = _best_peer(summary)
    if best and summary.average(AT_LORA) is not None:
        ahead = summary.average(AT_LORA) > best[0]
        lines.append(f"**{'Holds' if ahead else 'Does not hold'}:** {label(AT_LORA)} has a higher mean than every "
                     f"peer whatever its size: {_avg(summary, AT_LORA)} against {100 * best[0]:.1f} for the best "
                     f"peer, {label(best[1])}.")
    leaders = _task_leaders(summary)
    if leaders:
        led = [t for t, m in leaders.items() if m in SLAFT_ROWS]
        lines.append(f"**{'Holds' if led else 'Does not hold'}:** slaft leads a single task: the best mean per task is "
                     + ", ".join(f"{TASK_TITLES.get(t, t)} {label(m)} "
                                 f"({100 * summary.cell(m, t).mean('score'):.1f})" for t, m in leaders.items()) + ".")
    lines.append(_pair_claim(summary, AT_QUARTER, QUARTER_PEER,
                             f"{label(AT_QUARTER)} scores above {label(QUARTER_PEER)}, the hand-chosen structure of "
                             "its size"))
    lines.append(_pair_claim(summary, IN_LAMBDA, REFERENCE,
                             f"{label(IN_LAMBDA)}, with no budget named, scores above {label(REFERENCE)}"))
    for goal in goals(records, MULTITASK):
        if goal["diffs"]:
            met = goal["share_met"] and goal["verdict"] == "met"
            lines.append(f"**{'Holds' if met else 'Does not hold'}:** one multi-task slaft model for four tasks "
                         f"(suite `{MULTITASK}`, {goal['label']}) matches single-task slaft within the seeds' spread with "
                         f"at most {100 * GOAL_SHARE:.0f}% of its stored parameters: it stores "
                         f"{100 * goal['share']:.0f}% ({'met' if goal['share_met'] else 'not met'}) and scores "
                         f"{statistics.fmean(goal['diffs']):+.1f} paired ({goal['spread_text']}; "
                         f"{goal['verdict']}).")
    return [line for line in lines if line]


def table(summary: SuiteSummary) -> str:
    head = ["method", "library", "adapter params", *[_title(t) for t in summary.tasks], "mean", "seeds"]
    rows = ["| " + " | ".join(head) + " |", "| " + " | ".join(["---"] * len(head)) + " |"]
    for method in (*SLAFT_ROWS, *PROTOCOL2_PEERS):
        cells = [summary.cell(method, t) for t in summary.tasks]
        if not any(cells):
            continue
        average = summary.average(method)
        rows.append("| " + " | ".join([
            label(method), _library(summary, method), _count(summary.across_tasks(method, "adapter_params")),
            *[f"{100 * c.mean('score'):.1f}" if c else "—" for c in cells],
            f"**{100 * average:.1f}**" if average is not None else "—",
            str(min(len(c.runs) for c in cells if c))]) + " |")
    return "\n".join(rows)


def block(records: list[dict], suite: str = SUITE) -> str:
    """The README's results block: protocol 2's table and a one-line verdict, from the records."""
    summary = summarize(suite, records)
    lines = [f"Validation scores x100, means over the seeds, suite `{suite}` (protocol 2, MiniLM-L6; "
             "[BENCHMARKS.md](BENCHMARKS.md) has the spreads, costs, ablations and the multi-task suites):", "",
             table(summary), ""]
    at_lora, quarter = paired(summary, AT_LORA, REFERENCE), paired(summary, AT_QUARTER, QUARTER_PEER)
    best = _best_peer(summary)
    if at_lora and quarter and best and summary.average(AT_LORA) is not None:
        leaders = _task_leaders(summary)
        led = [TASK_TITLES.get(t, t) for t, m in leaders.items() if m in SLAFT_ROWS]
        top = summary.average(AT_LORA) > best[0]
        lines.append(
            f"**Verdict:** at LoRA r=8 (q,v)'s size slaft scores {_avg(summary, AT_LORA)}, paired {at_lora[0]:+.1f} "
            f"against LoRA r=8 (q,v) ({at_lora[1]} of {at_lora[2]} seeds), "
            + (f"above every peer (best: {label(best[1])}, {100 * best[0]:.1f})" if top
               else f"below {label(best[1])} ({100 * best[0]:.1f})")
            + (f", leading {', '.join(led)}" if led else ", though it leads no single task")
            + f"; at a quarter of that size it is {quarter[0]:+.1f} against {label(QUARTER_PEER)} "
            f"({quarter[1]} of {quarter[2]} seeds).")
    from . import protocol3  # it builds on this module's verdict rule

    protocol3_lines = protocol3.claims(records)
    for line in protocol3_lines:  # a paragraph each
        lines += ["", line]
    return "\n".join(lines)


def current_block(text: str) -> str | None:
    """The text between the markers of a README, or None without them."""
    if START not in text or END not in text:
        return None
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n")


def update_readme(readme: Path, results_dir: Path = RESULTS_DIR, suite: str = SUITE) -> bool:
    """Rewrite the block between the markers of ``readme``; False (nothing written) when it has none."""
    if not readme.is_file():
        return False
    text = readme.read_text()
    if current_block(text) is None:
        return False
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{block(read_records(stores_in(results_dir)), suite)}\n{END}{tail}"
    if new != text:
        readme.write_text(new)
    return True


def main() -> int:
    readme = REPO / "README.md"
    if not update_readme(readme):
        print(f"{readme} has no {START} ... {END} block: nothing written", file=sys.stderr)
        return 1
    print(f"wrote the benchmark summary of {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
