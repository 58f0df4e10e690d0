"""Turn the records in benchmarks/results/<suite>/ into BENCHMARKS.md and its figures under benchmarks/figures/.

    python -m benchmarks.report                      # every suite with results, the real ones first
    python -m benchmarks.report --suites quick       # only some suites

Everything in BENCHMARKS.md is regenerated from the records except the hand-written analysis between the
ANALYSIS markers, which is carried over from the existing file.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

from ..harness.methods import METHODS, REFERENCE, label
from ..harness.records import RESULTS_DIR, epochs_of, read_log, read_records, stores_in
from ..harness.run import DEFAULT_DATA_DIR, planned_count
from ..harness.suites import (CANDIDATE_SPACE_VARIANTS, PROTOCOL2_ABLATIONS, PROTOCOL2_EQUAL_SIZE,
                              PROTOCOL2_LAMBDA_ABLATIONS, PROTOCOL2_QUARTER_ABLATIONS, PROTOCOL2_QUARTER_SPACE,
                              PROTOCOL2_SLAFT, SUITES)
from .analysis import generated_analysis
from .baselines import constant_scores
from .figures import pareto_plot, ratio_plot
from .multitask import section as multitask_section
from .summarize import SuiteSummary, is_solo, summarize
from .tables import (
    PLATEAU_GAIN,
    TASK_TITLES,
    ablation_table,
    cost_table,
    curve_table,
    glue_table,
    lr_table,
    metric_of,
    paired_differences,
    pilot_table,
    plateau_table,
    slaft_table,
    steptime_table,
    still_rising,
    test_table,
    validation_curves,
)

# The learned structure against the hand-chosen one of the same size: the equal-size runs, and slaft at a quarter of
# LoRA q,v's size against LoRA r=2 (q,v), a quarter of it too.
SAME_SIZE_PAIRS = {"slaft-budget-quarter-lora-only": "peft-lora-qv-r2", "slaft-budget-quarter": "peft-lora-qv-r2",
                   **PROTOCOL2_EQUAL_SIZE}

REPO = Path(__file__).resolve().parents[2]
FIGURES = Path(__file__).resolve().parents[1] / "figures"
SUITE_ORDER = ("cpu2", "epochs2", "cpu2-cola3ep", "design2", "pilot-mean", "pilot-cls", "dev", "gpu", "cpu", "quick",
               "smoke")
# protocol 2 and its set-up; `cpu` on request
DEFAULT_SUITES = ("cpu2", "epochs2", "cpu2-cola3ep", "design2", "pilot-mean", "pilot-cls", "dev")
# they chose tasks, epochs, head and design: scores only
SETUP_SUITES = ("epochs2", "cpu2-cola3ep", "design2", "pilot-mean", "pilot-cls", "dev")
MULTITASK_SUITES = ("mt2", "mt3", "mt-quick")  # their own section (report/multitask.py), not a per-task suite table
CHECK_SUITES = ("quick", "smoke")  # pipeline checks: their scores are noise
BEGIN = "<!-- ANALYSIS:BEGIN (hand-written; `python -m benchmarks.report` keeps this block) -->"
END = "<!-- ANALYSIS:END -->"
PLACEHOLDER = "_No hand-written analysis yet. Write it here, from the tables and the generated findings below._"


def kept_analysis(path: Path, begin: str = BEGIN, placeholder: str = PLACEHOLDER) -> str:
    """The hand-written block between ``begin`` and the END marker of an existing report, or ``placeholder``."""
    if path.is_file():
        text = path.read_text()
        if begin in text and END in text:
            return text.split(begin, 1)[1].split(END, 1)[0].strip("\n")
    return placeholder


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
        missing = [f"{TASK_TITLES.get(t, t)} {n}" for t in suite.tasks
                   if (n := sum(1 for m in methods if suite.runs_on(m, t)
                                and (not (c := summary.cell(m, t)) or len(c.runs) < len(suite.seeds_for(m)))))]
        lines.append(f"- Completeness: {len(ok)} of the suite's {planned} planned runs are recorded. "
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
        more = "; ".join(f"{prefix}*: {list(seeds)}" for prefix, seeds in suite.more_seeds.items() if prefix in methods)
        borrowed = sorted({source for method, source in suite.lr_from.items() if method in methods})
        lines.append(f"- Reported seeds {list(suite.seeds)}" + (f" ({more})" if more else "") + "; learning rate "
                     f"chosen per method and task on selection seed {suite.selection_seed}, which is not reported"
                     + (", the grid extended while the best rate sat at an edge" if suite.extend_grids else "")
                     + (f"; the ablation rows reuse the rate of {', '.join(borrowed)}" if borrowed else "") + ".")
    elif suite:
        lines.append(f"- Seeds {list(suite.seeds)}; learning rate chosen per method and task on seed "
                     f"{suite.seeds[0]} (best validation score), then every seed at that rate.")
    return lines


def _uncosted(summary: SuiteSummary) -> str:
    costed = set(summary.costed_methods)
    missing = [METHODS[m].label for m in summary.methods if m not in costed
               and any(summary.cell(m, t) for t in summary.tasks)]
    return (f"no solo run yet, so no costs: {', '.join(missing)}" if missing else "every method has solo runs")


def _solo_share(summary: SuiteSummary) -> str:
    runs = [r for c in summary.cells.values() for r in c.runs]
    solo = [r for r in runs if is_solo(r)]
    return f"{len(solo)} of the {len(runs)} final runs" if runs else "no final runs yet"


def _link(path: Path, out: Path) -> str:
    return Path(os.path.relpath(path, out.parent)).as_posix()


def suite_section(summary: SuiteSummary, report: Path, figures: Path) -> list[str]:
    suite = SUITES.get(summary.suite)
    seeds = len(suite.seeds) if suite else max(len(c.runs) for c in summary.cells.values())
    out = [f"## Suite `{summary.suite}`", ""]
    if suite:
        out += [suite.description, ""]
    if summary.suite in CHECK_SUITES:
        out += [f"> The {summary.suite} suite checks that the harness works end to end on a few steps of tiny "
                "subsamples. Its scores, timings and ratios are noise and say nothing about the methods; its "
                "parameter counts and file sizes are real.", ""]
    out += ["### Environment and protocol", "", *environment(summary), *recipe(summary), ""]
    if summary.suite.startswith("pilot"):
        table = pilot_table(summary)
        if table:
            out += ["### Which tasks separate methods", "",
                    "Mean ± std over the seeds run (x100). A task is kept when the better of the two is at least 5 "
                    "points above the best constant prediction.", "", table, ""]
    if summary.suite in SETUP_SUITES:
        out += ["### Validation scores", "", "Mean ± sample std over the seeds run, x100.", "",
                glue_table(summary, seeds), ""]
        curves = curve_table(summary)
        if curves and any(len(c) > 3 for m in summary.methods for t in summary.tasks
                          for c in validation_curves(summary, m, t)):
            out += ["### Validation after every epoch", "", "Mean over the seeds run (x100), epoch by epoch.", "",
                    curves, ""]
        slaft = slaft_table(summary)
        return out + (["### Structures slaft found", "", slaft, ""] if slaft else [])
    out += ["### GLUE validation scores", "",
            "Mean ± sample std over the final seeds, x100. Avg is the mean of the task means. Stored = parameters in "
            "the exported adapter file(s), head included; adapter = stored minus the task head (pooler and "
            "classifier), which every method trains and stores alike; trainable = parameters with gradients at the "
            "start of training. All three are means over tasks. The last row, in italics, is the best constant "
            "predictor: always the same class, the best such class for the metric on that split (for a regression "
            "task a constant, whose correlation is taken as 0); a method at that level has learned nothing the "
            "metric can see.", "", glue_table(summary, seeds), ""]
    stem = f"{summary.suite}"
    metrics = {t: metric_of(t) for t in summary.tasks}
    pareto = pareto_plot(summary, figures / f"{stem}_pareto.png", metrics)
    ratios = ratio_plot(summary, figures / f"{stem}_ratios.png")
    test = test_table(summary, seeds)
    if test:
        out += ["### Labelled test splits", "", test, ""]
    out += ["### Score against stored parameters", "", f"![Pareto plot]({_link(pareto, report)})", ""]
    out += ["### Costs", "",
            f"Means over tasks of the per-task means; ratios are geometric means over tasks of method / "
            f"{METHODS[REFERENCE].label} measured in this suite. Times, memory and latency come only from solo "
            f"runs, those that had the machine to themselves (`harness --jobs 1`; {_solo_share(summary)}), and "
            "are averaged over the tasks on which every method with solo runs has one: "
            f"{', '.join(TASK_TITLES.get(t, t) for t in summary.cost_tasks) or 'none yet'}; "
            f"{_uncosted(summary)}. Latency: median of "
            "interleaved forward passes of the exported model (merged where its library can merge) and of the "
            "plain base model on the same batch in the same process.", "", cost_table(summary), "",
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
    step = steptime_table(summary.step_times) if suite and suite.protocol == 2 else None
    if step:
        out += ["### Step time on one batch", "",
                "`python -m benchmarks.harness.steptime`: median over 12 optimizer steps (forward, backward, AdamW) "
                "on one fixed batch (batch size × tokens; 32 × 128 is a batch of full-length sequences, a shorter one "
                "is nearer SST-2's and CoLA's, whose sentences are short), each method alone on the machine, its "
                "latest measurement per batch shape against LoRA q,v's step measured in the same session (code "
                "revision and day: the machine's speed varies from day to day by up to a third); slaft's search "
                "step runs the whole candidate space with its gates, its decided step the structure it kept.", "",
                step, ""]
    slaft = slaft_table(summary)
    if slaft:
        out += ["### Structures slaft found", "", slaft, ""]
    grids = {m: suite.grid(METHODS[m].family) for m in summary.methods if suite and m in METHODS}
    out += ["### Learning rates", "", lr_table(summary, grids), ""]
    plateau = plateau_table(summary)
    if plateau:
        rising = still_rising(summary)
        out += ["### Did validation plateau?", "",
                "Validation score after the last epoch minus after the one before, mean over the final seeds (x100; "
                f"↑: more than {100 * PLATEAU_GAIN:g} point, still rising). The linear schedule's last epoch runs at "
                "the smallest rates, so a rise there says the run was short for that method. "
                + (f"Still rising for some method: {', '.join(TASK_TITLES.get(t, t) for t in rising)}."
                   if rising else "Every method plateaued on every task."), "", plateau, ""]
    out += ["### Findings computed from the numbers", "", *[f"- {line}" for line in generated_analysis(summary)], ""]
    if summary.failures:
        out += ["### Failed runs", ""]
        counts = Counter((r["method"], r["task"], r.get("error", "?")) for r in summary.failures)
        out += [f"- {m} on {t}: {e} ({n}x)" for (m, t, e), n in counts.items()] + [""]
    return out


def render(suites: list[str] | None, results_dir: Path, out: Path, figures: Path = FIGURES,
           data_dir: Path | None = DEFAULT_DATA_DIR) -> str:
    """Write the report; with the GLUE data at ``data_dir`` its tables also show each task's constant predictor."""
    records = read_records(stores_in(results_dir))
    present = _unique(r["suite"] for r in records)
    order = [s for s in SUITE_ORDER if s in present] + [s for s in present if s not in SUITE_ORDER]
    chosen = [s for s in order if (s in suites if suites else s in DEFAULT_SUITES) and s not in MULTITASK_SUITES]
    if not chosen:
        raise SystemExit(f"no results for suites {suites or 'any'} in {results_dir}; run the harness first")
    lines = [
        "# Benchmarks: slaft against peft, AdapterHub, BitFit, head-only and full fine-tuning on GLUE",
        "",
        "Generated by `python -m benchmarks.report` from the JSON Lines records in `benchmarks/results/`, which "
        "`python -m benchmarks.harness` writes (see `benchmarks/README.md`). Do not edit by hand except between "
        "the ANALYSIS markers.",
        "",
        "Every method trains through its own library (slaft, peft, AdapterHub `adapters`; BitFit, head-only and "
        "full fine-tuning on plain transformers) with the Hugging Face Trainer and one shared recipe per suite: "
        "the same epochs, sequence length, batch size, warm-up and linear schedule; only the learning rate is "
        "searched, per method and task. slaft trains in one Trainer run with the same epochs and schedule: its "
        "structure search, the decision and the training of the decided structure all happen inside it (slaft "
        "0.2). The task head (pooler and classifier) trains for every method, through each library's own "
        "mechanism (peft `modules_to_save`, AdapterHub after `train_adapter`, slaft's `modules_to_save`), and is "
        "stored with every adapter. Protocol 2 (suites `cpu2` and `pilot-*`) is described in "
        "`benchmarks/README.md`; the protocol-1 records of slaft 0.1 (`results/cpu/`) are kept and render "
        "with `python -m benchmarks.report --suites cpu`.",
        "",
        "## Analysis",
        "",
        BEGIN,
        kept_analysis(out),
        END,
        "",
    ]
    step_times = read_log([results_dir / "steptime"])  # every session's measurements, not only the latest
    for suite in chosen:
        summary = summarize(suite, records)
        summary.all_records = records
        summary.step_times = step_times
        if data_dir is not None and data_dir.is_dir():
            summary.floors = constant_scores(summary.tasks, data_dir)
        lines += suite_section(summary, out, figures)
    for name in ("mt2", "mt3"):
        if name in present and (not suites or name in suites):
            lines += multitask_section(records, out, figures, name)
    text = "\n".join(lines).rstrip() + "\n"
    out.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suites", nargs="+", help="suites to include (default: every suite with results)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--figures-dir", type=Path, default=FIGURES)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="GLUE jsonl folders, for each task's constant-predictor row (skipped when absent)")
    args = parser.parse_args(argv)
    render(args.suites, args.results_dir, args.out, args.figures_dir, args.data_dir)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
