"""Turn the robustness suites' records (benchmarks/results/robust-*/) into ROBUSTNESS.md and its figures.

    python -m benchmarks.report.robustness

Three sensitivity analyses, each a mean over the reported seeds and then over tasks (x100): slaft's score and kept
size against the sparsity weight λ (at slaft's default λ, robust-clean's slaft runs) and against a parameter
budget; every method's score against the ratio of label
or token noise in training (ratio 0 is robust-clean); and every method's score drop on perturbed copies of the
validation split, per perturbation kind and rate, against its own clean score on the same run. Everything is
regenerated from the records except the hand-written analysis between the ANALYSIS markers.
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

from matplotlib.figure import Figure

from ..harness.methods import label
from ..harness.records import RESULTS_DIR, read_records, results_path
from ..harness.run import DEFAULT_DATA_DIR
from ..harness.suites import NOISE_RATIOS, PERTURBATION_RATES, ROBUST, ROBUST_METHODS, ROBUST_SLAFT, SUITES
from .tables import TASK_TITLES

REPO = Path(__file__).resolve().parents[2]
FIGURES = Path(__file__).resolve().parents[1] / "figures"
BEGIN = "<!-- ANALYSIS:BEGIN (hand-written; `python -m benchmarks.report.robustness` keeps this block) -->"
END = "<!-- ANALYSIS:END -->"
PLACEHOLDER = "_No hand-written analysis yet: write it from the tables below once the sweeps are recorded._"
NOISE_SWEEPS = {"label_noise": "label", "input_noise": "token"}  # sweep -> noise kind in the records
SIZE_PEER = "peft-lora-qv"  # the budgets are multiples of its size; the λ and budget tables compare with it


def kept_analysis(path: Path, begin: str = BEGIN, placeholder: str = PLACEHOLDER) -> str:
    """The hand-written block between ``begin`` and the END marker of an existing report, or ``placeholder``."""
    if path.is_file():
        text = path.read_text()
        if begin in text and END in text:
            return text.split(begin, 1)[1].split(END, 1)[0].strip("\n")
    return placeholder


def _robust_records(results_dir: Path) -> list[dict]:
    names = [name for name, suite in SUITES.items() if suite.sweep and name != "robust-quick"]
    return [r for r in read_records(results_path(name, results_dir) for name in names) if r.get("status") == "ok"]


def _mean_over_tasks(records: list[dict], value) -> tuple[float | None, float | None, int]:
    """(mean over tasks of the per-task mean of ``value(record)``, mean over tasks of the per-task sample std, the
    smallest number of seeds on a task)."""
    by_task = defaultdict(list)
    for record in records:
        by_task[record["task"]].append(value(record))
    if not by_task:
        return None, None, 0
    means = [statistics.fmean(v) for v in by_task.values()]
    stds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in by_task.values()]
    return statistics.fmean(means), statistics.fmean(stds), min(len(v) for v in by_task.values())


def _cell(mean: float | None, std: float | None, n: int, scale: float = 100.0, signed: bool = False) -> str:
    """mean ± std x``scale``; the number of seeds where under 3, and no spread where there is one seed."""
    if mean is None:
        return "—"
    value = f"{scale * mean:+.1f}" if signed else f"{scale * mean:.1f}"
    return value + (f" ± {scale * std:.1f}" if n > 1 else "") + (f" (n={n})" if n < 3 else "")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def sparsity_section(records: list[dict], figures: Path) -> list[str]:
    out = []
    lora_runs = [r for r in records if r.get("sweep") == "perturbation" and r["method"] == SIZE_PEER]
    lora_scores = {_run_key(r): r["score"] for r in lora_runs}
    lora_size = statistics.fmean(r["kept_params"] for r in lora_runs) if lora_runs else None
    for sweep, knob, key in (("sparsity_weight", "λ", "sparsity_weight"), ("target_params", "budget", "target_params")):
        points = [r for r in records if r.get("sweep") == sweep]
        if sweep == "sparsity_weight":  # slaft's default λ has no suite of its own: robust-clean's slaft runs
            points += [r for r in records if r["suite"] == "robust-clean" and r["method"] == ROBUST_SLAFT]
        if not points:
            continue
        tasks = sorted({r["task"] for r in points})
        values = sorted({r[key] for r in points if r[key] is not None})
        rows = []
        for value in values:
            at = [r for r in points if r[key] == value]
            row = [f"{value:g}" if knob == "λ" else f"{value:,.0f}"]
            for task in tasks:
                mean, std, n = _mean_over_tasks([r for r in at if r["task"] == task], lambda r: r["score"])
                row.append(_cell(mean, std, n))
            size, _, _ = _mean_over_tasks(at, lambda r: r["kept_params"])
            sites = [r["kept_sites"] for r in at if r.get("kept_sites") is not None]
            row += [_cell(*_mean_over_tasks(at, lambda r: r["score"])), f"{size:,.0f}",
                    f"{statistics.fmean(sites):.1f}" if sites else "—", _against_lora(at, lora_scores)]
            rows.append(row)
        header = [knob, *[TASK_TITLES.get(t, t) for t in tasks], "mean over tasks", "kept adapter params",
                  "kept sites", f"vs {label(SIZE_PEER)}, run by run"]
        name = f"robust_{sweep}.png"
        _knob_plot(points, key, tasks, figures / name, knob, lora_scores, lora_size)
        out += [f"### slaft against its {knob}", "", _table(header, rows), "",
                f"The last column: slaft's score minus {label(SIZE_PEER)}'s in robust-clean on the same task and seed "
                f"(x100), mean ± std over those pairs, and in how many of them slaft scored higher. In the figure the "
                f"dashed lines are {label(SIZE_PEER)}'s clean score on each task and its size.", "",
                f"![{knob} sweep](benchmarks/figures/{name})", ""]
    return out


def _against_lora(points: list[dict], lora_scores: dict[tuple[str, int], float]) -> str:
    """slaft's score at one point of a sweep minus LoRA q,v's clean score, run by run (same task and seed)."""
    ours = {_run_key(r): r["score"] for r in points}
    return _paired_cell({ROBUST_SLAFT: ours, SIZE_PEER: lora_scores}, SIZE_PEER)


def _knob_plot(points: list[dict], key: str, tasks: list[str], path: Path, knob: str,
               lora_scores: dict[tuple[str, int], float], lora_size: float | None) -> None:
    """Score and kept size against the knob, one line per task; LoRA q,v's clean score on the task as a dashed line
    of the same colour, and its size as a dashed line."""
    fig = Figure(figsize=(10, 4))
    score_ax, size_ax = fig.subplots(1, 2)
    grid = sorted({r[key] for r in points if r[key] is not None})
    for task in tasks:
        values = sorted({r[key] for r in points if r["task"] == task and r[key] is not None})
        scores = [100 * statistics.fmean(r["score"] for r in points if r["task"] == task and r[key] == v)
                  for v in values]
        sizes = [statistics.fmean(r["kept_params"] for r in points if r["task"] == task and r[key] == v)
                 for v in values]
        line, = score_ax.plot(values, scores, marker="o", label=TASK_TITLES.get(task, task))
        size_ax.plot(values, sizes, marker="o", label=TASK_TITLES.get(task, task))
        lora = [score for (lora_task, _), score in lora_scores.items() if lora_task == task]
        if lora:
            score_ax.axhline(100 * statistics.fmean(lora), color=line.get_color(), linestyle="--", linewidth=1,
                             label=f"{label(SIZE_PEER)}, {TASK_TITLES.get(task, task)}")
    if lora_size is not None:
        size_ax.axhline(lora_size, color="grey", linestyle="--", linewidth=1, label=label(SIZE_PEER))
    for ax, ylabel in ((score_ax, "validation score x100"), (size_ax, "kept adapter parameters")):
        # the grids are geometric; λ's starts at 0, which a log axis cannot show
        ax.set_xscale("symlog", linthresh=0.25) if knob == "λ" else ax.set_xscale("log")
        ax.set_xticks(grid, [f"{v:g}" if knob == "λ" else f"{v:,.0f}" for v in grid], fontsize=7)
        ax.minorticks_off()
        ax.set_xlabel(knob)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def _noise_change_cell(changes: dict[tuple[str, int], float], tasks: list[str]) -> tuple[str, float | None]:
    """The run-by-run change (noise-trained minus the same seed's clean score), mean over seeds then over tasks, and
    the mean alone, which is None unless every task has a run (a mean over some tasks is not one over all)."""
    rows = [{"task": task, "change": change} for (task, _), change in changes.items()]
    mean, std, n = _mean_over_tasks(rows, lambda r: r["change"])
    if mean is None:
        return "—", None
    have = {r["task"] for r in rows}
    if have != set(tasks):
        titles = ", ".join(TASK_TITLES.get(t, t) for t in sorted(have))
        return f"{100 * mean:+.1f} ({titles} only)", None
    return _cell(mean, std, n, signed=True), mean


def _scores_at(points: list[dict], task: str, method: str, ratio: float) -> tuple[float | None, float | None, int]:
    """(mean, std, seeds) of one method's scores on one task at one noise ratio."""
    return _mean_over_tasks([r for r in points if r["task"] == task and r["method"] == method
                             and r["noise_ratio"] == ratio], lambda r: r["score"])


def noise_section(records: list[dict], figures: Path) -> list[str]:
    """Per noise kind: each method's score per task at every ratio, and its change against the same seed's clean
    run (ratio 0 is robust-clean), mean over tasks only where every task has runs."""
    out = []
    clean = [r for r in records if r.get("sweep") == "perturbation"]
    for sweep, kind in NOISE_SWEEPS.items():
        noisy = [r for r in records if r.get("sweep") == sweep]
        if not noisy:
            continue
        points = clean + noisy
        ratios = sorted({r["noise_ratio"] for r in points})
        tasks = sorted({r["task"] for r in clean} or {r["task"] for r in noisy})
        methods = [m for m in ROBUST_METHODS if any(r["method"] == m for r in points)]
        methods += sorted({r["method"] for r in points} - set(methods))
        changes = [_noise_changes(records, sweep, ratio) for ratio in ratios[1:]]  # per ratio: method -> run -> change
        score_rows = [[TASK_TITLES.get(task, task), label(method),
                       *[_cell(*_scores_at(points, task, method, ratio)) for ratio in ratios]]
                      for task in tasks for method in methods]
        change_rows, changes_by_method = [], {}
        for method in methods:
            cells = [_noise_change_cell(at_ratio.get(method, {}), tasks) for at_ratio in changes]
            change_rows.append([label(method), *[cell for cell, _ in cells]])
            changes_by_method[method] = [mean for _, mean in cells]
        name = f"robust_{sweep}.png"
        _noise_plot(points, tasks, methods, ratios, changes_by_method, kind, figures / name)
        what = ("a ratio of training labels replaced by another class; on STS-B, Gaussian noise of that ratio of the "
                "targets' standard deviation on every target" if kind == "label" else
                "each training token replaced by a random one with that probability (never at evaluation)")
        out += [f"### {kind.capitalize()} noise in training", "",
                f"Noise: {what}. Validation score x100, mean ± std over seeds; 0% is robust-clean.", "",
                _table(["task", "method", *[f"{ratio:.0%}" for ratio in ratios]], score_rows), "",
                "Change against the same seed's clean run (x100), mean over seeds, then over tasks; where some task "
                "has no run at a ratio yet, the mean over the tasks that have one, named.", "",
                _table(["method", *[f"{ratio:.0%}" for ratio in ratios[1:]]], change_rows), "",
                "Per task (the same changes, mean over seeds):", "",
                _table(["task", "method", *[f"{ratio:.0%}" for ratio in ratios[1:]]],
                       _per_task_change_rows(changes, tasks, methods)), "",
                f"![{kind} noise](benchmarks/figures/{name})", ""]
    return out


def _noise_plot(points: list[dict], tasks: list[str], methods: list[str], ratios: list[float],
                changes: dict[str, list[float | None]], kind: str, path: Path) -> None:
    """One panel per task (score against ratio, std over seeds as bars), then the change against the clean run
    averaged over tasks, drawn only at ratios every task has."""
    fig = Figure(figsize=(3.6 * (len(tasks) + 1), 3.8))
    axes = fig.subplots(1, len(tasks) + 1, squeeze=False)[0]
    for ax, task in zip(axes, tasks):
        for method in methods:
            at = [(100 * ratio, *_scores_at(points, task, method, ratio)[:2]) for ratio in ratios]
            at = [(x, 100 * mean, 100 * std) for x, mean, std in at if mean is not None]
            ax.errorbar([x for x, _, _ in at], [y for _, y, _ in at], yerr=[e for _, _, e in at], marker="o",
                        capsize=3, label=label(method))
        ax.set_title(TASK_TITLES.get(task, task), fontsize=9)
        ax.set_ylabel("validation score x100")
    change_ax = axes[-1]
    for method in methods:
        xs = [0.0] + [100 * r for r, c in zip(ratios[1:], changes[method]) if c is not None]
        ys = [0.0] + [100 * c for c in changes[method] if c is not None]
        change_ax.plot(xs, ys, marker="o", label=label(method))
    change_ax.set_title("change against the clean run, mean over tasks", fontsize=9)
    change_ax.set_ylabel("score change x100")
    for ax in axes:
        ax.set_xlabel(f"{kind} noise in training (%)")
        ax.set_xticks([100 * r for r in ratios])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def perturbation_section(records: list[dict], figures: Path) -> list[str]:
    clean = [r for r in records if r.get("sweep") == "perturbation" and r.get("perturbed")]
    if not clean:
        return []
    methods = sorted({r["method"] for r in clean})
    kinds = list(dict.fromkeys(p["perturbation"] for r in clean for p in r["perturbed"]))
    rates = sorted({p["perturbation_rate"] for r in clean for p in r["perturbed"]})

    def drop(method: str, kind: str, rate: float) -> float | None:
        runs = [r for r in clean if r["method"] == method]
        changes = [{**r, "change": p["score"] - r["score"]} for r in runs for p in r["perturbed"]
                   if p["perturbation"] == kind and p["perturbation_rate"] == rate]
        return _mean_over_tasks(changes, lambda r: r["change"])[0]

    tasks = sorted({r["task"] for r in clean})
    clean_rows = []
    for method in methods:
        runs = [r for r in clean if r["method"] == method]
        cells = [_cell(*_mean_over_tasks([r for r in runs if r["task"] == task], lambda r: r["score"]))
                 for task in tasks]
        size = statistics.fmean(r["kept_params"] for r in runs)
        clean_rows.append([label(method), *cells, _cell(*_mean_over_tasks(runs, lambda r: r["score"])), f"{size:,.0f}"])
    out = ["### Perturbed evaluation", "",
           "The clean validation scores (x100, mean ± std over seeds) the changes below start from:", "",
           _table(["method", *[TASK_TITLES.get(t, t) for t in tasks], "mean over tasks", "adapter params"],
                  clean_rows), "",
           "Change of the validation score (x100) on a perturbed copy against the same run's clean score, mean over "
           "seeds and tasks; each column is one method, each table one rate.", ""]
    fig = Figure(figsize=(4 * len(rates), 4))
    axes = fig.subplots(1, len(rates), squeeze=False)[0]
    for ax, rate in zip(axes, rates):
        rows = []
        for kind in kinds:
            rows.append([kind, *[_signed(drop(m, kind, rate)) for m in methods]])
        means = [[drop(m, k, rate) for k in kinds] for m in methods]
        rows.append(["**mean**", *[_signed(statistics.fmean([d for d in ds if d is not None]) if any(
            d is not None for d in ds) else None) for ds in means]])
        out += [f"Rate {rate:.0%}:", "", _table(["perturbation", *[label(m) for m in methods]], rows), ""]
        width = 0.8 / len(methods)
        for i, (method, ds) in enumerate(zip(methods, means)):
            ax.bar([k + i * width for k in range(len(kinds))], [100 * (d or 0.0) for d in ds], width,
                   label=label(method))
        ax.set_xticks([k + 0.4 - width / 2 for k in range(len(kinds))], kinds, rotation=60, fontsize=7)
        ax.set_title(f"rate {rate:.0%}", fontsize=9)
        ax.set_ylabel("score change x100")
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    figures.mkdir(parents=True, exist_ok=True)
    fig.savefig(figures / "robust_perturbation.png", dpi=120)
    return out + ["![perturbations](benchmarks/figures/robust_perturbation.png)", ""] + per_task_perturbation_section(
        records)


def _run_key(record: dict) -> tuple[str, int]:
    return record["task"], record["seed"]


def _perturbation_drops(records: list[dict], rate: float) -> dict[str, dict[tuple[str, int], float]]:
    """method -> (task, seed) -> that run's perturbed score minus its clean score, mean over the kinds at ``rate``."""
    out: dict[str, dict[tuple[str, int], float]] = defaultdict(dict)
    for record in records:
        if record.get("sweep") != "perturbation":
            continue
        changes = [p["score"] - record["score"] for p in record.get("perturbed") or []
                   if p["perturbation_rate"] == rate]
        if changes:
            out[record["method"]][_run_key(record)] = statistics.fmean(changes)
    return out


def _noise_changes(records: list[dict], sweep: str, ratio: float) -> dict[str, dict[tuple[str, int], float]]:
    """method -> (task, seed) -> the score trained at ``ratio`` of noise minus the same seed's clean score."""
    clean = {(r["method"], *_run_key(r)): r["score"] for r in records if r.get("sweep") == "perturbation"}
    out: dict[str, dict[tuple[str, int], float]] = defaultdict(dict)
    for record in records:
        key = (record["method"], *_run_key(record))
        if record.get("sweep") == sweep and record["noise_ratio"] == ratio and key in clean:
            out[record["method"]][_run_key(record)] = record["score"] - clean[key]
    return out


def _paired_cell(changes: dict[str, dict[tuple[str, int], float]], peer: str) -> str:
    """slaft's change minus the peer's on the runs both have (same task and seed): mean ± std, and on how many of
    them slaft lost less."""
    ours, theirs = changes.get(ROBUST_SLAFT, {}), changes.get(peer, {})
    shared = sorted(set(ours) & set(theirs))
    if not shared:
        return "—"
    gaps = [100 * (ours[k] - theirs[k]) for k in shared]
    spread = statistics.stdev(gaps) if len(gaps) > 1 else 0.0
    return f"{statistics.fmean(gaps):+.1f} ± {spread:.1f} ({sum(g > 0 for g in gaps)}/{len(gaps)})"


def paired_section(records: list[dict]) -> list[str]:
    """How much less (positive) or more (negative) slaft loses than each peer, run by run."""
    peers = [m for m in ROBUST_METHODS if m != ROBUST_SLAFT]
    rows = []
    for rate in PERTURBATION_RATES:
        drops = _perturbation_drops(records, rate)
        rows.append([f"perturbed at {rate:.0%} (mean over kinds)", *[_paired_cell(drops, p) for p in peers]])
    for sweep, kind in NOISE_SWEEPS.items():
        for ratio in NOISE_RATIOS:
            changes = _noise_changes(records, sweep, ratio)
            rows.append([f"{kind} noise {ratio:.0%} in training", *[_paired_cell(changes, p) for p in peers]])
    rows = [row for row in rows if any(cell != "—" for cell in row[1:])]
    if not rows:
        return []
    return ["### slaft against each peer, run by run", "",
            "slaft's change (perturbed or noise-trained score minus the clean score of the same run or seed) minus the "
            "peer's, on the same task and seed, x100: mean ± std over those pairs, and in how many of them slaft lost "
            "less. Positive: slaft is the more robust.", "",
            _table(["condition", *[f"vs {label(p)}" for p in peers]], rows), ""]


def _per_task_change_rows(by_column: list[dict[str, dict[tuple[str, int], float]]], tasks: list[str],
                          methods: list[str]) -> list[list[str]]:
    """One row per task and method, one cell per column: the mean over seeds of that column's run-by-run changes
    (method -> (task, seed) -> change), with the number of seeds where under 3."""
    rows = []
    for task in tasks:
        for method in methods:
            cells = []
            for changes in by_column:
                values = [v for (t, _), v in changes.get(method, {}).items() if t == task]
                cells.append(_signed(statistics.fmean(values)) + (f" (n={len(values)})" if len(values) < 3 else "")
                             if values else "—")
            rows.append([TASK_TITLES.get(task, task), label(method), *cells])
    return rows


def per_task_perturbation_section(records: list[dict]) -> list[str]:
    """Each method's drop on each task, mean over kinds and seeds: the tasks differ far more than the methods."""
    tasks = sorted({r["task"] for r in records if r.get("sweep") == "perturbation" and r.get("perturbed")})
    if not tasks:
        return []
    rows = _per_task_change_rows([_perturbation_drops(records, rate) for rate in PERTURBATION_RATES], tasks,
                                 list(ROBUST_METHODS))
    return ["Per task (mean over the kinds and seeds):", "",
            _table(["task", "method", *[f"{rate:.0%}" for rate in PERTURBATION_RATES]], rows), ""]


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:+.1f}"


def examples_section(data_dir: Path | None, rate: float = 0.1, count: int = 2, pool: int = 40) -> list[str]:
    """Per kind, the first ``count`` of the first ``pool`` SST-2 validation sentences that the perturbation changed,
    next to their originals (needs the data)."""
    if data_dir is None or not (data_dir / "sst2").is_dir():
        return []
    from slaft.data import load_task
    from slaft.loading import load_model_and_tokenizer
    from slaft.robustness.perturb import KINDS, perturb_texts

    texts = load_task("sst2", data_dir=str(data_dir)).splits["validation"]["sentence"][:pool]
    model, tokenizer = load_model_and_tokenizer("minilm", 2)
    embeddings = model.get_input_embeddings().weight
    rows = []
    for kind in KINDS:
        changed = [(o, c) for o, c in zip(texts, perturb_texts(texts, kind, rate, seed=1, tokenizer=tokenizer,
                                                               embeddings=embeddings)) if o != c]
        rows += [[kind, o.replace("|", "/"), c.replace("|", "/")] for o, c in changed[:count]]
    return [f"### What the perturbations do (SST-2 validation, rate {rate:.0%}, seed 1)", "",
            f"For each kind, the first {count} of the first {pool} sentences it changed (at this rate a short "
            "sentence is often left as it was).", "", _table(["kind", "original", "perturbed"], rows), ""]


def render(results_dir: Path, out: Path, figures: Path = FIGURES, data_dir: Path | None = None) -> str:
    records = _robust_records(results_dir)
    suites = sorted({r["suite"] for r in records})
    lines = [
        "# Robustness and sensitivity: slaft, LoRA r=8 (q,v) and Houlsby under noise, perturbation and its own knob",
        "",
        "Generated by `python -m benchmarks.report.robustness` from `benchmarks/results/robust-*/`, which "
        "`python -m benchmarks.harness --suite robust-…` writes (see `benchmarks/README.md`). Each method trains at "
        "the learning rate it chose in protocol 2 (`cpu2`), with protocol 2's recipe, on "
        f"{', '.join(TASK_TITLES.get(t, t) for t in ROBUST['tasks'])}, seeds "
        f"{'-'.join(map(str, (ROBUST['seeds'][0], ROBUST['seeds'][-1])))} (CoLA is left out: a perturbation of its "
        "words can change the grammaticality its label states). A clean score here is not the same seed's score "
        "in BENCHMARKS.md: cpu2 scores the validation split after every epoch, and each evaluation's DataLoader "
        "draws its seed from the global random generator, so from the second epoch on its runs follow another "
        "random stream (dropout, gate noise) than these, which score once at the end. "
        f"Suites recorded: {', '.join(suites) if suites else 'none yet'}.",
        "",
        "## Analysis",
        "",
        BEGIN,
        kept_analysis(out, BEGIN, PLACEHOLDER),
        END,
        "",
    ]
    body = (sparsity_section(records, figures) + noise_section(records, figures)
            + perturbation_section(records, figures) + paired_section(records))
    lines += body or ["_No robustness records yet._", ""]
    lines += examples_section(data_dir)
    text = "\n".join(lines).rstrip() + "\n"
    out.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report.robustness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--out", type=Path, default=REPO / "ROBUSTNESS.md")
    parser.add_argument("--figures-dir", type=Path, default=FIGURES)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="GLUE jsonl folders, for the perturbed examples (skipped when absent)")
    args = parser.parse_args(argv)
    render(args.results_dir, args.out, args.figures_dir, args.data_dir)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
