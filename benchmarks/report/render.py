"""Turn the records in benchmarks/results/<suite>/ into BENCHMARKS.md (protocol 2 and the multi-task suites),
PROTOCOL3.md (the size axis, the new tasks and the decoder), their figures under benchmarks/figures/, and the results
block of README.md (headline.py).

    python -m benchmarks.report                      # BENCHMARKS.md, PROTOCOL3.md, README's block
    python -m benchmarks.report --suites quick       # only some suites, into BENCHMARKS.md (or --out)

Everything in BENCHMARKS.md is generated from the records; its summary states only what they carry. The suites
that chose protocol 2 (pilots, design runs, epochs) and protocol 1 are in archive/benchmarks-history/.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

from ..harness.methods import METHODS, REFERENCE, label
from ..harness.methods.plain_methods import UNTUNED
from ..harness.records import RESULTS_DIR, epochs_of, read_log, read_records, stores_in
from ..harness.run import DEFAULT_DATA_DIR, planned_count
from ..harness.suites import (CANDIDATE_SPACE_VARIANTS, PARETO_PEERS, PROTOCOL2_ABLATIONS, PROTOCOL2_LAMBDA_ABLATIONS,
                              PROTOCOL2_QUARTER_ABLATIONS, PROTOCOL2_QUARTER_SPACE, PROTOCOL2_SLAFT, SUITES)
from . import headline, protocol3
from .baselines import constant_scores
from .figures import pareto_plot, ratio_plot
from .multitask import section as multitask_section
from .summarize import SuiteSummary, is_solo, summarize
from .tables import (TASK_TITLES, ablation_table, cost_table, glue_table, metric_of, paired_differences,
                     steptime_table, test_table)

# The learned structure against the hand-chosen one of the same size: slaft's default space at a quarter of LoRA
# q,v's size against LoRA r=2 (q,v), a quarter of it too. (The earlier space's equal-size pairs, slaft +FFN adapters
# at a quarter and at LoRA-all's size, are in the archived report.)
SAME_SIZE_PAIRS = {"slaft-budget-quarter-lora-only": "peft-lora-qv-r2"}

REPO = Path(__file__).resolve().parents[2]
FIGURES = Path(__file__).resolve().parents[1] / "figures"
SUITE_ORDER = ("cpu2", "cpu2-cola3ep", "gpu", "quick", "smoke")
DEFAULT_SUITES = ("cpu2",)  # protocol 2; cpu2-cola3ep's runs appear in mt2's section
MULTITASK_SUITES = ("mt2", "mt3", "mt-quick")  # their own section (report/multitask.py), not a per-task suite table
PROTOCOL3_SUITES = protocol3.SUITE_NAMES  # in PROTOCOL3.md once complete; until then partial, and no claim
CHECK_SUITES = ("quick", "smoke")  # pipeline checks: their scores are noise
ARCHIVE = "archive/benchmarks-history/"


def _unique(values) -> list:
    seen = []
    for value in values:
        if value is not None and value not in seen:
            seen.append(value)
    return seen


def environment(summary: SuiteSummary) -> list[str]:
    ok = [r for r in summary.records if r.get("status") == "ok"]
    lines = [f"- Device: {'; '.join(_unique(r.get('device') for r in ok)) or 'n/a'}"]
    for versions in _unique(r.get("versions") for r in ok):
        lines.append("- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v))
    suite = SUITES.get(summary.suite)
    if suite:
        methods = list(suite.methods or METHODS)
        planned = planned_count(suite, summary.records)
        own = [r for r in ok if r["method"] in {*methods, UNTUNED}]  # pareto also holds slaft's earlier design
        missing = [f"{TASK_TITLES.get(t, t)} {n}" for t in suite.tasks
                   if (n := sum(1 for m in methods if suite.runs_on(m, t)
                                and (not (c := summary.cell(m, t)) or len(c.runs) < len(suite.seeds_for(m)))))]
        lines.append(f"- Completeness: {len(own)} of the suite's {planned} planned runs are recorded"
                     + (f" (and {len(ok) - len(own)} of methods it does not plan). " if len(own) < len(ok) else ". ")
                     + (f"(Method, task) pairs still short of their seeds: {', '.join(missing)} "
                        "methods per task; `python -m benchmarks.harness --suite "
                        f"{summary.suite}` runs the rest, skipping what is recorded."
                        if missing else "Every (method, task) pair has all its seeds."))
    hours = sum(r.get("wall_seconds", 0) for r in summary.records) / 3600
    lines.append(f"- Runs: {len(ok)} succeeded, {len(summary.failures)} failed; {hours:.2f} h of wall time in all "
                 "(each run a fresh process: imports, training, evaluation, export, latency)")
    return lines


def recipe(summary: SuiteSummary) -> list[str]:
    suite = SUITES.get(summary.suite)
    ok = [r for r in summary.records if r.get("status") == "ok"]
    per_task = ("epochs", "epochs_by_task", "max_train_samples")  # shown per task below
    recipes = _unique(tuple(sorted((k, str(v)) for k, v in r.get("recipe", {}).items() if k not in per_task))
                      for r in ok)
    lines = []
    for rec in recipes:
        lines.append("- Shared recipe: " + ", ".join(f"{k}={v}" for k, v in rec))
    epochs = {t: _unique(epochs_of(r) for r in ok if r["task"] == t) for t in summary.tasks}
    lines.append("- Epochs per task: " + ", ".join(
        f"{TASK_TITLES.get(t, t)} {'/'.join(f'{e:g}' for e in es)}" for t, es in epochs.items() if es))
    sizes = {t: _unique(r["train_examples"] for r in ok if r["task"] == t) for t in summary.tasks}
    evals = {t: _unique((r["validation_examples"], r["test_examples"]) for r in ok if r["task"] == t)
             for t in summary.tasks}
    lines.append("- Train examples per task: " + ", ".join(
        f"{TASK_TITLES.get(t, t)} {'/'.join(map(str, s))}" for t, s in sizes.items() if s))
    lines.append("- Validation / labelled test examples: " + ", ".join(
        f"{TASK_TITLES.get(t, t)} {e[0][0]} / {e[0][1] or '—'}" for t, e in evals.items() if e))
    if suite and suite.selection_seed is not None:
        methods = set(suite.methods or METHODS)
        grouped: dict[tuple, list[str]] = {}  # the same extra seeds for several method prefixes: said once
        for prefix, seeds in suite.more_seeds.items():
            if prefix in methods:
                grouped.setdefault(tuple(seeds), []).append(f"{prefix}*")
        more = "; ".join(f"{list(seeds)} for {', '.join(prefixes)}" for seeds, prefixes in grouped.items())
        borrowed = sorted({source for method, source in suite.lr_from.items() if method in methods})
        lines.append(f"- Reported seeds {list(suite.seeds)}" + (f" ({more})" if more else "") + "; learning rate "
                     f"chosen per method and task on selection seed {suite.selection_seed}, which is not reported"
                     + (", the grid extended while the best rate sat at an edge" if suite.extend_grids else "")
                     + (f"; the ablation rows reuse the rate of {', '.join(borrowed)}" if borrowed else "") + ".")
    elif suite and all(len(grid) == 1 for grid in suite.lr_grids.values()):
        lines.append(f"- Seeds {list(suite.seeds)}, each at the suite's one learning rate (no search).")
    elif suite:
        lines.append(f"- Seeds {list(suite.seeds)}; learning rate chosen per method and task on seed "
                     f"{suite.seeds[0]} (best validation score), then every seed at that rate.")
    return lines


def _uncosted(summary: SuiteSummary) -> str:
    costed = set(summary.costed_methods)
    missing = [m for m in summary.methods if m not in costed and any(summary.cell(m, t) for t in summary.tasks)]
    return (f"{len(missing)} of the {len(summary.methods)} methods have no solo run, so no costs (the second table)"
            if missing else "every method has solo runs")


def _solo_share(summary: SuiteSummary) -> str:
    runs = [r for c in summary.cells.values() for r in c.runs]
    solo = [r for r in runs if is_solo(r)]
    return f"{len(solo)} of the {len(runs)} final runs" if runs else "no final runs yet"


def _link(path: Path, out: Path) -> str:
    return Path(os.path.relpath(path, out.parent)).as_posix()


def suite_section(summary: SuiteSummary, report: Path, figures: Path, draw: bool = True) -> list[str]:
    suite = SUITES.get(summary.suite)
    seeds = len(suite.seeds) if suite else max(len(c.runs) for c in summary.cells.values())
    out = [f"## Suite `{summary.suite}`", ""]
    if suite:
        out += [suite.description, ""]
    if summary.suite in CHECK_SUITES:
        out += [f"> The {summary.suite} suite checks that the harness works end to end on a few steps of tiny "
                "subsamples. Its scores, timings and ratios are noise and say nothing about the methods; its "
                "parameter counts and file sizes are real.", ""]
    if summary.suite in protocol3.PILOT_SUITES:
        pilot = protocol3.pilot_table(summary)
        return [*out, pilot or "(needs the GLUE data for the constant predictions)", ""]
    out += ["### GLUE validation scores", "", glue_table(summary, seeds), "",
            "Mean ± sample std over the final seeds (n where a cell has another count), x100; Avg: the mean of the "
            "task means. Parameters, means over tasks: stored = in the exported file(s), task head (pooler and "
            "classifier) included; adapter = stored minus that head; trainable = with gradients at the start. "
            "Italics: the best constant prediction (one class for every input; 0 for a correlation).", ""]
    stem = f"{summary.suite}"
    metrics = {t: metric_of(t) for t in summary.tasks}
    pareto = figures / f"{stem}_pareto.png"
    ratios = figures / f"{stem}_ratios.png"
    protocol3_suite = summary.suite in ("pareto", "llm")  # the size axis: adapter parameters, not the head's
    solo = any(is_solo(r) for c in summary.cells.values() for r in c.runs)
    if draw:
        pareto_plot(summary, pareto, metrics, key="adapter_params" if protocol3_suite else "stored_params")
        if solo:
            ratio_plot(summary, ratios)
    test = test_table(summary, seeds)
    if test:
        out += ["### Labelled test splits", "", test, ""]
    out += [f"### Score against {'adapter' if protocol3_suite else 'stored'} parameters", "",
            *(["Adapter parameters: stored minus the task head, which every method of the suite shares ("
               "the table above gives both).", ""] if protocol3_suite else []),
            f"![Pareto plot]({_link(pareto, report)})", ""]
    if not solo:
        out += ["### Costs", "",
                "No final run of this suite had the machine to itself (they ran two at a time, `parallel_jobs` 2, "
                "for their scores), so it reports no time, memory or latency; protocol 2's costs are in "
                "BENCHMARKS.md.", ""]
    else:
        out += ["### Costs", "",
                f"Means over tasks; ratios: geometric means over tasks of method / {METHODS[REFERENCE].label}. Times, "
                f"memory and latency come only from solo runs, alone on the machine (`harness --jobs 1`; "
                f"{_solo_share(summary)}), over the tasks where every method with solo runs has one: "
                f"{', '.join(TASK_TITLES.get(t, t) for t in summary.cost_tasks) or 'none yet'}; {_uncosted(summary)}. "
                "Latency: median of interleaved forward passes of the exported model (merged where its library can "
                "merge) and of the base model on the same batch.", "", cost_table(summary), "",
                f"![Cost ratios]({_link(ratios, report)})", ""]
    if suite and suite.protocol == 2:
        paired = paired_differences(summary, [m for m in (*CANDIDATE_SPACE_VARIANTS, *PROTOCOL2_SLAFT)
                                              if m in summary.methods])
        if paired:
            out += ["### slaft against LoRA r=8 (q,v), seed by seed", "",
                    "Each slaft variant's score minus LoRA q,v's on the same seed and task (x100).", "", paired, ""]
        for method, peer in SAME_SIZE_PAIRS.items():
            same_size = paired_differences(summary, [method], peer) if method in summary.methods else None
            if same_size:
                out += [f"### {label(method)} against {label(peer)}, seed by seed", "",
                        f"The learned structure at the size of another hand-chosen one: {label(method)}'s score minus "
                        f"{label(peer)}'s on the same seed and task (x100).", "", same_size, ""]
        ablation = ablation_table(summary, "slaft-budget-lora", list(PROTOCOL2_ABLATIONS))
        if ablation:
            out += ["### Ablation", "",
                    ("One change each against slaft at LoRA q,v's size, at its rate (x100): each cell is the "
                     "variant's mean over its seeds and, in brackets, its paired difference from slaft at LoRA q,v's "
                     "size on the same seeds."), "", ablation, ""]
        in_lambda_mode = ablation_table(summary, "slaft", list(PROTOCOL2_LAMBDA_ABLATIONS))
        if in_lambda_mode:
            out += ["### Ablation in λ mode", "",
                    "One change each against slaft's λ default (the sparsity weight, not a budget, sets the size), "
                    "at its rate (x100), as above.", "", in_lambda_mode, ""]
        quarter = ablation_table(summary, "slaft-budget-quarter",
                                 [*PROTOCOL2_QUARTER_SPACE, *PROTOCOL2_QUARTER_ABLATIONS])
        if quarter:
            out += ["### Ablation at a quarter of the size", "",
                    ("One change each against slaft at a quarter of LoRA q,v's size, at its rate (x100), as above."),
                    "", quarter, ""]
    size_axis = summary.suite == "pareto" and protocol3.size_axis_table(summary, protocol3.PARETO_SLAFT, PARETO_PEERS)
    if size_axis:
        out += ["### slaft against the best hand-chosen structure at or below its size, seed by seed", "",
                "Each cell: slaft's score minus the best peer's whose adapter is at most slaft's budget on that task "
                "(x100, mean over the shared seeds), the seeds slaft won, and that peer (the best by its mean over "
                "the reported seeds, which leans towards the peers). Mean over tasks: against the one peer with the "
                "best mean over tasks among those at or below slaft's size on every task.", "", size_axis, ""]
    against_peers = summary.suite == "llm" and protocol3.peer_table(summary, protocol3.LLM_SLAFT, protocol3.LLM_PEERS)
    if against_peers:
        out += ["### slaft against each peer, seed by seed", "", "x100, mean over the shared seeds (seeds won).", "",
                against_peers, ""]
    out += unstable_section(summary) if summary.suite in ("pareto", "llm") else []
    step = steptime_table(summary.step_times) if suite and suite.protocol == 2 else None
    if step:
        out += ["### Step time on one batch", "",
                "`python -m benchmarks.harness.steptime`: median of 12 optimizer steps (forward, backward, AdamW) "
                "on one fixed batch (batch size × tokens), each method alone on the machine; its latest measurement "
                "per shape against LoRA q,v's step in the same session (code revision and day: the machine's speed "
                "varies from day to day). slaft's search step runs the whole candidate space, its decided step the "
                "structure it kept.", "",
                step, ""]
    out += ["### Environment and protocol", "", *environment(summary), *recipe(summary), ""]
    if summary.failures:
        out += ["### Failed runs", ""]
        counts = Counter((r["method"], r["task"], r.get("error", "?")) for r in summary.failures)
        out += [f"- {m} on {t}: {e} ({n}x)" for (m, t, e), n in counts.items()] + [""]
    return out


def _summaries(chosen: list[str], records: list[dict], results_dir: Path,
               data_dir: Path | None) -> dict[str, SuiteSummary]:
    step_times = read_log([results_dir / "steptime"])  # every session's measurements, not only the latest
    out = {}
    for name in chosen:
        summary = summarize(name, records)
        summary.all_records = records
        summary.step_times = step_times
        if data_dir is not None and data_dir.is_dir():
            cap = SUITES[name].max_eval_samples if name in SUITES else None
            summary.floors = constant_scores(summary.tasks, data_dir, cap)
        out[name] = summary
    return out


def render(suites: list[str] | None, results_dir: Path, out: Path, figures: Path = FIGURES,
           data_dir: Path | None = DEFAULT_DATA_DIR, draw: bool = True, write: bool = True) -> str:
    """BENCHMARKS.md, or the named ``suites`` (written to ``out`` when ``write``; figures drawn when ``draw``); with
    the GLUE data at ``data_dir`` its tables also show each task's constant predictor. Protocol 3's suites go to
    PROTOCOL3.md (``render_protocol3``); its verdict lines join the summary here."""
    records = read_records(stores_in(results_dir))
    present = _unique(r["suite"] for r in records)
    order = [s for s in (*SUITE_ORDER, *PROTOCOL3_SUITES) if s in present]
    order += [s for s in present if s not in order]
    chosen = [s for s in order if (s in suites if suites else s in DEFAULT_SUITES) and s not in MULTITASK_SUITES]
    if not chosen:
        raise SystemExit(f"no results for suites {suites or 'any'} in {results_dir}; run the harness first")
    summaries = _summaries(chosen, records, results_dir, data_dir)
    lines = [
        "# Benchmarks: slaft against peft, AdapterHub, BitFit and full fine-tuning",
        "",
        "Generated by `python -m benchmarks.report` from the records in `benchmarks/results/` (harness, protocols "
        "and commands: `benchmarks/README.md`); do not edit by hand. Robustness sweeps: `ROBUSTNESS.md`; the size "
        f"axis, MNLI, QNLI and the decoder (protocol 3): `PROTOCOL3.md`. Protocol 1, the pilot and design suites and "
        f"the previous report are in `{ARCHIVE}`.",
        "",
    ]
    if "cpu2" in summaries:
        lines += ["## Summary", "",
                  "Each claim with its verdict on the records: a paired claim holds when its mean difference and most "
                  "shared seeds favour it, does not hold when both go against it, and is open otherwise.", "",
                  *[f"- {line}" for line in [*headline.claims(summaries["cpu2"], records),
                                             *protocol3.claims(records)]], ""]
    for suite in chosen:
        lines += suite_section(summaries[suite], out, figures, draw)
    for name in ("mt2", "mt3"):
        if name in present and (not suites or name in suites):
            lines += multitask_section(records, out, figures, name, draw=draw)
    return _finish(lines, out, write)


def render_protocol3(results_dir: Path, out: Path, figures: Path = FIGURES, data_dir: Path | None = DEFAULT_DATA_DIR,
                     draw: bool = True, write: bool = True) -> str:
    """PROTOCOL3.md: protocol 3's verdicts and each of its suites once complete; a partial suite is named as running,
    the same line whatever records it has yet (appended runs leave the file as it is)."""
    records = read_records(stores_in(results_dir))
    complete = [s for s in PROTOCOL3_SUITES if protocol3.complete(s, records)]
    running = [s for s in (*PROTOCOL3_SUITES, *protocol3.DESIGN_SUITES) if not protocol3.complete(s, records)]
    summaries = _summaries(complete, records, results_dir, data_dir)
    lines = ["# Protocol 3: slaft across sizes, on MNLI and QNLI, and on a decoder", "",
             "Generated by `python -m benchmarks.report` from the records in `benchmarks/results/` (protocol and "
             "commands: `benchmarks/README.md`, issue 41); do not edit by hand. Protocol 2: `BENCHMARKS.md`.", ""]
    verdicts = protocol3.claims(records, summaries)
    if verdicts:
        lines += ["## Summary", "", *[f"- {line}" for line in verdicts], ""]
    if running:
        lines += [f"Still running: {', '.join(f'`{s}`' for s in running)}. Their records are partial, so this report "
                  "shows none of them and draws no conclusion from them.", ""]
    for suite in complete:
        lines += suite_section(summaries[suite], out, figures, draw)
    for suite in [s for s in ("pareto", "llm") if s in running]:
        lines += partial_section(suite, records, results_dir, data_dir)
    design = all(protocol3.complete(s, records) for s in protocol3.DESIGN_SUITES) and protocol3.design_table(records)
    if design:
        lines += [f"## How slaft's design was chosen (suites {', '.join(f'`{s}`' for s in protocol3.DESIGN_SUITES)}: "
                  "selection seeds only)", "",
                  "At 1/8 and 1/4 of LoRA r=8 (q,v)'s size, the small end of the size axis (protocol 2 had slaft "
                  "at 1/4 behind LoRA r=2 (q,v) on SST-2 and STS-B), five variants of slaft's design on STS-B's "
                  "selection seed 200, and rank-one units at every size; the "
                  "two that led at 1/8 again on selection seeds 201 and 202. Variants: `lr3`, the decided structure "
                  "at three times the search's rate; `rank1`, rank components pruned one at a time; `short`, the "
                  "structure decided at 30% of the steps instead of 50%; and pairs of these.", "",
                  "Columns: slaft's budget as a share of LoRA r=8 (q,v)'s size. Each cell: the mean over the "
                  "selection seeds of each seed's best validation score over its rates (1e-3 and 3e-3), the number "
                  "of seeds, and in brackets the difference from the base, paired by seed (x100). The base prunes "
                  "rank components two at a time, as slaft did until this choice (its runs at 1/2, 1 and 2x are "
                  "pareto's seed-200 searches). rank1 is the library's default since, and the size axis and the "
                  "decoder run it. No seed here is reported.", "", design, ""]
    return _finish(lines, out, write)


def partial_section(suite: str, records: list[dict], results_dir: Path, data_dir: Path | None) -> list[str]:
    """A running suite's tasks on which every run it plans is in: their scores and slaft's paired differences are
    final; the mean over tasks and the verdict wait for the other tasks. Nothing before the first such task."""
    done = protocol3.complete_tasks(suite, records)
    if not done:
        return []
    summary = _summaries([suite], [r for r in records if r["task"] in done], results_dir, data_dir)[suite]
    titles = ", ".join(TASK_TITLES.get(t, t) for t in done)
    out = [f"## `{suite}` so far: {titles}", "",
           f"`{suite}` is still running, but every run it plans on {titles} is in, so the numbers below are final; "
           "the mean over all tasks, the figures and the verdict wait for the other tasks.", "",
           "### GLUE validation scores", "", glue_table(summary, len(SUITES[suite].seeds)), "",
           "Mean ± sample std over the final seeds, x100 (Avg: over the tasks shown); adapter parameters: stored "
           "minus the task head, which every method shares.", ""]
    if suite == "pareto":
        table = protocol3.size_axis_table(summary, protocol3.PARETO_SLAFT, PARETO_PEERS, with_mean=False)
        text = ("Each cell: slaft's score minus the best peer's whose adapter is at most slaft's budget on that task "
                "(x100, mean over the shared seeds), the seeds slaft won, and that peer.")
    else:
        table = protocol3.peer_table(summary, protocol3.LLM_SLAFT, protocol3.LLM_PEERS, with_mean=False)
        text = "x100, mean over the shared seeds (seeds won)."
    return out + (["### slaft against the hand-chosen structures, seed by seed", "", text, "", table, ""]
                  if table else []) + unstable_section(summary)


def unstable_section(summary) -> list[str]:
    """Protocol 3's reported seeds that fell far below their method's other seeds, beside its rate search."""
    table = protocol3.unstable_table(summary)
    return ["### Reported seeds far below their method's others", "",
            f"Each reported seed more than {100 * protocol3.UNSTABLE_DROP:.0f} points below the median of its "
            "method's seeds on the task (x100), beside the method's search on the selection seed at the rate it "
            "chose and the rates above. Every method keeps the rate its search chose, however close that is to a "
            "rate at which it fails to train; nothing is rerun after the fact.", "", table, ""] if table else []


def _finish(lines: list[str], out: Path, write: bool) -> str:
    text = "\n".join(lines).rstrip() + "\n"
    if write:
        out.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suites", nargs="+",
                        help="suites to include (default: cpu2 and the multi-task suites; protocol 3's suites go "
                             "to PROTOCOL3.md)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--protocol3-out", type=Path, default=REPO / "PROTOCOL3.md",
                        help="where protocol 3's report goes (written without --suites)")
    parser.add_argument("--figures-dir", type=Path, default=FIGURES)
    parser.add_argument("--readme", type=Path, default=REPO / "README.md",
                        help="README whose BENCHMARK-SUMMARY block is rewritten (left alone without the markers)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="GLUE jsonl folders, for each task's constant-predictor row (skipped when absent)")
    args = parser.parse_args(argv)
    render(args.suites, args.results_dir, args.out, args.figures_dir, args.data_dir)
    print(f"wrote {args.out}")
    if not args.suites:
        render_protocol3(args.results_dir, args.protocol3_out, args.figures_dir, args.data_dir)
        print(f"wrote {args.protocol3_out}")
    if not args.suites and headline.update_readme(args.readme, args.results_dir):
        print(f"wrote {args.readme}'s benchmark summary")
    return 0


if __name__ == "__main__":
    sys.exit(main())
