"""Markdown tables of a suite summary: GLUE scores, test scores, costs, paired differences, ablations, step times."""

from __future__ import annotations

from slaft.data import GLUE_TASKS

from ..harness.methods import METHODS, REFERENCE, label
from .summarize import SuiteSummary

TASK_TITLES = {"cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC", "stsb": "STS-B", "rte": "RTE", "wnli": "WNLI",
               "mnli": "MNLI", "qnli": "QNLI",
               "bbcnews": "BBC News"}
FLOOR_LABEL = "Best constant prediction"
METRIC_TITLES = {"matthews_correlation": "MCC", "accuracy": "acc", "f1": "F1", "pearson": "Pearson",
                 "spearmanr": "Spearman"}


def metric_of(task: str) -> str:
    if task == "bbcnews":
        return "acc"
    return METRIC_TITLES.get(GLUE_TASKS[task].main_metric, "") if task in GLUE_TASKS else ""


def _title(task: str) -> str:
    return f"{TASK_TITLES.get(task, task)} ({metric_of(task)})"


def _record_library(record: dict) -> str:
    """The record's library and version, the version taken from the code that ran (``versions``) where the record
    has it: older records' ``library`` field read slaft's version from a stale editable install's metadata."""
    name = record["library"].partition(" ")[0]
    ran = (record.get("versions") or {}).get(name)
    return f"{name} {ran}" if ran else record["library"]


def _library(summary: SuiteSummary, method: str) -> str:
    libraries = {_record_library(r) for r in summary.records if r["method"] == method and r.get("library")}
    return ", ".join(sorted(libraries)) or (METHODS[method].library if method in METHODS else "?")


def _count(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    return f"{value / 1e3:.1f}k" if value >= 1e3 else f"{value:.0f}"


def _bytes(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value / 2**20:.2f} MB" if value >= 2**20 else f"{value / 2**10:.0f} kB"


def _ratio(value: float | None) -> str:
    return f"{value:.2f}x" if value else "—"


def _mean_std(mean: float | None, std: float | None, n: int, expected: int) -> str:
    if mean is None:
        return "—"
    text = f"{100 * mean:.1f}" + (f" ± {100 * std:.1f}" if std is not None else "")
    return text + (f" (n={n})" if n != expected else "")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def glue_table(summary: SuiteSummary, seeds: int) -> str:
    head = ["Method", "Library", *[_title(t) for t in summary.tasks], "Avg", "Adapter params", "Stored params",
            "Trainable params"]
    lines = [_row(head), _row(["---"] * len(head))]
    for method in summary.methods:
        cells = []
        for task in summary.tasks:
            cell = summary.cell(method, task)
            cells.append(_mean_std(cell.mean("score"), cell.std("score"), len(cell.runs), seeds) if cell else "—")
        average = summary.average(method)
        lines.append(_row([label(method), _library(summary, method), *cells,
                           f"**{100 * average:.1f}**" if average is not None else "—",
                           _count(summary.across_tasks(method, "adapter_params")),
                           _count(summary.across_tasks(method, "stored_params")),
                           _count(summary.across_tasks(method, "trainable_params"))]))
    if summary.floors and all(t in summary.floors for t in summary.tasks):
        scores = [summary.floors[t]["score"] for t in summary.tasks]
        lines.append(_row([f"*{FLOOR_LABEL}*", "—", *[f"*{100 * v:.1f}*" for v in scores],
                           f"*{100 * sum(scores) / len(scores):.1f}*", "0", "0", "0"]))
    return "\n".join(lines)


def test_table(summary: SuiteSummary, seeds: int) -> str | None:
    tasks = [t for t in summary.tasks if any(r.get("test_score") is not None for r in summary.records
                                              if r["task"] == t)]
    if not tasks:
        return None
    head = ["Method", *[f"{_title(t)} test" for t in tasks]]
    lines = [_row(head), _row(["---"] * len(head))]
    for method in summary.methods:
        cells = []
        for task in tasks:
            cell = summary.cell(method, task)
            cells.append(_mean_std(cell.mean("test_score"), cell.std("test_score"), len(cell.values("test_score")),
                                   seeds) if cell else "—")
        lines.append(_row([label(method), *cells]))
    if all(summary.floors.get(t, {}).get("test_score") is not None for t in tasks):
        lines.append(_row([f"*{FLOOR_LABEL}*", *[f"*{100 * summary.floors[t]['test_score']:.1f}*" for t in tasks]]))
    return "\n".join(lines)


def cost_table(summary: SuiteSummary) -> str:
    """Times, memory and latency for the methods with solo runs; file size and merging alone for the rest (a row of
    dashes per method without costs would double the section)."""
    shown = [m for m in summary.methods if any(summary.cell(m, t) for t in summary.tasks)]
    with_solo_runs = set(summary.costed_methods)
    costed = [m for m in shown if m in with_solo_runs]
    head = ["Method", "Trainable", "Stored", "Adapter file", "Train time / run", "Step (ms)", "Step vs LoRA",
            "Search step vs LoRA", "Peak mem (MB)", "Mem vs LoRA", "Train Δmem (MB)", "Latency vs base",
            "Latency vs LoRA", "Merged"]
    lines = [_row(head), _row(["---"] * len(head))] if costed else []
    for m in costed:
        step = summary.across_tasks(m, "step_seconds")
        train = summary.across_tasks(m, "train_seconds")
        lines.append(_row([
            label(m), _count(summary.across_tasks(m, "trainable_params")),
            _count(summary.across_tasks(m, "stored_params")), _bytes(summary.across_tasks(m, "adapter_file_bytes")),
            f"{train:.0f} s" if train else "—", f"{1000 * step:.0f}" if step else "—",
            "1.00x (ref)" if m == REFERENCE else _ratio(summary.ratio_vs_reference(m, "step_seconds")),
            _ratio(summary.ratio_vs_reference(m, "search_step_seconds", against="step_seconds")),
            f"{v:.0f}" if (v := summary.across_tasks(m, "peak_memory_mb")) is not None else "—",
            "1.00x (ref)" if m == REFERENCE else _ratio(summary.ratio_vs_reference(m, "peak_memory_mb")),
            f"{v:.0f}" if (v := summary.across_tasks(m, "train_memory_mb")) is not None else "—",
            _ratio(summary.across_tasks(m, "latency_ratio_vs_base")),
            "1.00x (ref)" if m == REFERENCE else _ratio(summary.ratio_vs_reference(m, "latency_ratio_vs_base")),
            _merged(summary, m),
        ]))
    rest = [m for m in shown if m not in costed]
    if rest:
        lines += ["", "Without a solo run (parameters: the score table above):", "",
                  _row(["Method", "Adapter file", "Merged"]), _row(["---"] * 3),
                  *(_row([label(m), _bytes(summary.across_tasks(m, "adapter_file_bytes")), _merged(summary, m)])
                    for m in rest)]
    return "\n".join(lines)


def _merged(summary: SuiteSummary, method: str) -> str:
    """How many of a method's final runs exported a merged model: all, none or k/n."""
    runs = [r for t in summary.tasks if (c := summary.cell(method, t)) for r in c.runs]
    merged = sum(bool(r.get("merged")) for r in runs)
    return "all" if merged == len(runs) else "none" if merged == 0 else f"{merged}/{len(runs)}"


def _by_seed(summary: SuiteSummary, method: str, task: str) -> dict[int, float]:
    cell = summary.cell(method, task)
    return {int(r["seed"]): float(r["score"]) for r in cell.runs} if cell else {}


def paired_differences(summary: SuiteSummary, methods: list[str], reference: str = REFERENCE) -> str | None:
    """Per task, each method's score minus the reference's (LoRA q,v's) on the same seeds: mean ± std over the shared
    seeds, the per-seed differences, and how many seeds the method won."""
    import statistics

    rows = []
    for method in methods:
        diffs_all = []
        for task in summary.tasks:
            mine, ref = _by_seed(summary, method, task), _by_seed(summary, reference, task)
            shared = sorted(set(mine) & set(ref))
            if not shared:
                continue
            diffs = [mine[s] - ref[s] for s in shared]
            diffs_all.append(statistics.fmean(diffs))
            spread = f" ± {100 * statistics.stdev(diffs):.1f}" if len(diffs) > 1 else ""
            mean = f"{100 * statistics.fmean(diffs):+.1f}{spread}"
            rows.append(_row([label(method), TASK_TITLES.get(task, task), mean,
                              " ".join(f"{100 * d:+.1f}" for d in diffs), f"{sum(d > 0 for d in diffs)}/{len(diffs)}"]))
        if len(diffs_all) == len(summary.tasks) and diffs_all:
            rows.append(_row([f"**{label(method)}**", "**all tasks**", f"**{100 * statistics.fmean(diffs_all):+.1f}**",
                              "", ""]))
    if not rows:
        return None
    head = ["Method", "Task", f"Δ vs {label(reference)} (x100, mean ± std)", "Per seed", "Seeds won"]
    return "\n".join([_row(head), _row(["---"] * len(head)), *rows])


def ablation_table(summary: SuiteSummary, reference: str, variants: list[str]) -> str | None:
    """Each ablation variant against the design it changes one thing of, task by task: the variant's mean over its
    seeds and, in brackets, its paired difference from the reference on the seeds both have (a variant run on three
    seeds is not compared with the reference's five-seed mean)."""
    import statistics

    present = [v for v in variants if any(summary.cell(v, t) for t in summary.tasks)]
    if not present or not any(summary.cell(reference, t) for t in summary.tasks):
        return None
    head = ["Variant", "What changes", *[TASK_TITLES.get(t, t) for t in summary.tasks], "Avg", "Δ avg (paired)",
            "Adapter params"]
    lines = [_row(head), _row(["---"] * len(head))]
    for method in [reference, *present]:
        cells, deltas = [], []
        for task in summary.tasks:
            cell = summary.cell(method, task)
            text = _mean_std(cell.mean("score"), cell.std("score"), len(cell.runs), len(cell.runs)) if cell else "—"
            mine, ref = _by_seed(summary, method, task), _by_seed(summary, reference, task)
            shared = sorted(set(mine) & set(ref))
            if method != reference and shared:
                delta = statistics.fmean(mine[s] - ref[s] for s in shared)
                deltas.append(delta)
                text += f" ({100 * delta:+.1f})"
            cells.append(text)
        average = summary.average(method)
        if method == reference:
            delta_avg = "ref"
        else:
            delta_avg = f"{100 * statistics.fmean(deltas):+.1f}" if len(deltas) == len(summary.tasks) else "—"
        what = METHODS[method].description if method in METHODS else ""
        lines.append(_row([label(method), what, *cells, f"{100 * average:.1f}" if average is not None else "—",
                           delta_avg, _count(summary.across_tasks(method, "adapter_params"))]))
    return "\n".join(lines)


def steptime_table(records: list[dict]) -> str | None:
    """Median optimizer-step time on one fixed batch (benchmarks/harness/steptime.py), against LoRA q,v's step on
    the same batch shape measured in the same session (the same code revision and day: the machine's speed changes
    from day to day by a third): per shape, each (method, phase)'s latest measurement that has such a reference."""
    def session(r: dict) -> tuple:
        return tuple(r.get("batch_shape") or ()), r.get("code_revision"), str(r.get("finished_at", ""))[:10]

    ordered = sorted((r for r in records if r.get("suite") == "steptime" and r.get("status") == "ok"),
                     key=lambda r: r.get("finished_at", ""))
    references = {session(r): r for r in ordered if r["method"] == REFERENCE}  # the latest of each session
    latest: dict[tuple, dict] = {}
    for r in ordered:
        if session(r) in references:
            latest[(session(r)[0], r["method"], r["phase"])] = r
    head = ["Batch", "Method", "Phase", "Step (ms)", f"vs {label(REFERENCE)}", "Code", "Measured"]
    lines = []
    for shape in sorted({key[0] for key in latest}, key=lambda s: tuple(-n for n in s)):  # longest first
        for (s, method, phase), r in latest.items():
            if s == shape:
                reference = references[session(r)]
                lines.append(_row([" × ".join(map(str, shape)), label(method), phase,
                                   f"{1000 * r['median_step_seconds']:.0f}",
                                   f"{r['median_step_seconds'] / reference['median_step_seconds']:.2f}x",
                                   str(r.get("code_revision", ""))[:7], session(r)[2]]))
    return "\n".join([_row(head), _row(["---"] * len(head)), *lines]) if lines else None
