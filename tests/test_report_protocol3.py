"""Protocol 3's report parts (benchmarks/report/protocol3.py): the pilot's kept tasks, slaft against the best peer at
or below each of its sizes, and the decoder's slaft against each peer, all paired by seed."""

from __future__ import annotations

from benchmarks.report import protocol3
from benchmarks.report.summarize import Cell, SuiteSummary

EIGHTH, QUARTER = "slaft-budget-eighth-lora-only", "slaft-budget-quarter-lora-only"
R1, R2, IA3 = "peft-lora-qv-r1", "peft-lora-qv-r2", "peft-ia3"
SIZES = {R1: 9216, R2: 18432, IA3: 13824}
BUDGETS = {EIGHTH: 9216, QUARTER: 18432}


def _summary(scores: dict[tuple[str, str], list[float]], suite: str = "pareto", floors=None) -> SuiteSummary:
    """A summary whose cells hold the given scores on seeds 11, 12, 13, ..."""
    cells, records = {}, []
    for (method, task), values in scores.items():
        runs = []
        for seed, score in enumerate(values, start=11):
            size = BUDGETS.get(method, SIZES.get(method, 1000))
            run = {"suite": suite, "method": method, "task": task, "seed": seed, "score": score, "status": "ok",
                   "adapter_params": size - 500 if method in BUDGETS else size,  # slaft keeps a little under
                   "details": {"slaft_target_params": size} if method in BUDGETS else {}}
            runs.append(run)
        cells[(method, task)] = Cell(method, task, 1e-3, runs)
        records += runs
    tasks = list(dict.fromkeys(task for _, task in scores))
    methods = list(dict.fromkeys(method for method, _ in scores))
    return SuiteSummary(suite, tasks, methods, cells, records, floors=floors or {})


def test_slaft_meets_the_best_peer_at_or_below_its_budget_not_a_better_larger_one():
    summary = _summary({(EIGHTH, "stsb"): [0.80, 0.82, 0.81], (R1, "stsb"): [0.81, 0.81, 0.80],
                        (IA3, "stsb"): [0.90, 0.90, 0.90], (QUARTER, "stsb"): [0.85, 0.86, 0.85],
                        (R2, "stsb"): [0.84, 0.85, 0.86]})
    eighth = protocol3.against_best(summary, EIGHTH, (R1, R2, IA3), "stsb")
    assert eighth.peer == R1  # (IA)³ scores higher but is larger than 1/8's budget, even though slaft kept less
    assert [round(d, 4) for d in eighth.diffs.values()] == [-0.01, 0.01, 0.01]
    assert eighth.won == 2 and eighth.verdict == "Holds"
    quarter = protocol3.against_best(summary, QUARTER, (R1, R2, IA3), "stsb")
    assert quarter.peer == IA3 and quarter.won == 0 and quarter.verdict == "Does not hold"
    assert protocol3.against_best(summary, EIGHTH, (R2, IA3), "stsb") is None  # no peer that small


def test_the_mean_over_tasks_pairs_one_peer_at_or_below_the_size_on_every_task():
    scores = {(QUARTER, "stsb"): [0.85, 0.85, 0.85], (QUARTER, "cola"): [0.40, 0.40, 0.40],
              (R2, "stsb"): [0.86, 0.86, 0.86], (R2, "cola"): [0.30, 0.30, 0.30],  # best on the mean
              (R1, "stsb"): [0.87, 0.87, 0.87], (R1, "cola"): [0.20, 0.20, 0.20]}  # best on STS-B alone
    summary = _summary(scores)
    assert protocol3.against_best(summary, QUARTER, (R1, R2), "stsb").peer == R1
    mean = protocol3.against_best(summary, QUARTER, (R1, R2), None)
    assert mean.peer == R2
    assert [round(d, 4) for d in mean.diffs.values()] == [0.045] * 3  # ((0.85-0.86) + (0.40-0.30)) / 2
    table = protocol3.size_axis_table(summary, (EIGHTH, QUARTER), (R1, R2))
    assert table.count("\n") == 2  # a header, its rule and one row: 1/8 has no runs
    assert "+4.5 (3/3) vs" in table


def test_the_size_axis_verdict_fails_when_any_size_loses_and_holds_only_when_all_win():
    def summary(eighth: float) -> SuiteSummary:
        return _summary({(EIGHTH, "stsb"): [eighth] * 3, (R1, "stsb"): [0.80] * 3,
                         (QUARTER, "stsb"): [0.90] * 3, (R2, "stsb"): [0.85] * 3})
    assert protocol3.size_axis_claim(summary(0.79), (EIGHTH, QUARTER), (R1, R2)).startswith("**Does not hold:**")
    holds = protocol3.size_axis_claim(summary(0.81), (EIGHTH, QUARTER), (R1, R2))
    assert holds.startswith("**Holds:**")
    assert "1/8: +1.0 (3/3) vs LoRA r=1 (q,v); 1/4: +5.0 (3/3) vs LoRA r=2 (q,v)." in holds  # sizes by share
    # a size with no runs yet leaves the claim open, never holding
    partial = _summary({(QUARTER, "stsb"): [0.90] * 3, (R2, "stsb"): [0.85] * 3})
    assert protocol3.size_axis_claim(partial, (EIGHTH, QUARTER), (R1, R2)).startswith("**Open:**")


def test_the_decoder_compares_slaft_with_each_peer_on_each_task_and_the_mean():
    slaft, lora, dora = "slaft-budget-lora-lora-only", "peft-lora-qv", "peft-dora"
    summary = _summary({(slaft, "sst2"): [0.90, 0.91, 0.92], (slaft, "bbcnews"): [0.95, 0.95, 0.95],
                        (lora, "sst2"): [0.89, 0.90, 0.93], (lora, "bbcnews"): [0.94, 0.94, 0.94],
                        (dora, "sst2"): [0.92, 0.92, 0.92], (dora, "bbcnews"): [0.96, 0.96, 0.96]}, suite="llm")
    table = protocol3.peer_table(summary, slaft, (lora, dora))
    assert "| +0.3 (2/3) | +1.0 (3/3) | +0.7 (2/3) |" in table  # LoRA: SST-2, BBC News, mean
    claim = protocol3.peer_claim(summary, slaft, (lora, dora), "on the decoder")
    assert claim.startswith("**Does not hold:**")  # DoRA is ahead on every seed


def test_the_pilot_keeps_a_task_five_points_above_the_best_constant_prediction():
    summary = _summary({("peft-lora-qv", "mnli"): [0.40, 0.41, 0.42], ("peft-lora-qv", "qnli"): [0.78, 0.79, 0.78]},
                       suite="pilot3", floors={"mnli": {"score": 0.37}, "qnli": {"score": 0.505}})
    table = protocol3.pilot_table(summary)
    assert "| MNLI | LoRA r=8 (q,v) | 40.0 41.0 42.0 | 41.0 | 37.0 | dropped |" in table
    assert "| QNLI | LoRA r=8 (q,v) | 78.0 79.0 78.0 | 78.3 | 50.5 | kept |" in table


def test_the_decoder_pilot_shows_the_untuned_model_without_letting_it_decide():
    summary = _summary({("peft-lora-qv", "qnli"): [0.60, 0.62, 0.61], ("untuned", "qnli"): [0.70]},
                       suite="llm-pilot", floors={"qnli": {"score": 0.5625}})
    table = protocol3.pilot_table(summary)
    assert "| QNLI | LoRA r=8 (q,v) | 60.0 62.0 61.0 | 61.0 | 56.2 | dropped |" in table  # 4.8 points above: dropped
    assert "| QNLI | Untuned | 70.0 | 70.0 | 56.2 | — |" in table


def test_the_design_table_compares_each_variant_with_the_earlier_design_on_selection_seeds_only():
    def run(suite, method, lr, score, seed=200):
        return {"suite": suite, "method": method, "task": "stsb", "seed": seed, "lr": lr, "score": score,
                "status": "ok"}
    records = [run("pareto", EIGHTH, 1e-3, 0.82), run("pareto", EIGHTH, 3e-3, 0.80),
               run("pareto", EIGHTH, 3e-3, 0.99, seed=11),  # a reported seed: never part of the choice
               run("design3", f"{EIGHTH}-rank1", 1e-3, 0.81), run("design3", f"{EIGHTH}-rank1", 3e-3, 0.85),
               run("design3-s201", EIGHTH, 1e-3, 0.84, seed=201),  # each seed takes its own best rate
               run("design3-s201", EIGHTH, 3e-3, 0.70, seed=201),
               run("design3-s201", f"{EIGHTH}-rank1", 1e-3, 0.70, seed=201),
               run("design3-s201", f"{EIGHTH}-rank1", 3e-3, 0.83, seed=201),
               run("design3-s202", EIGHTH, 1e-3, 0.99, seed=202)]  # its search is not complete: not counted
    table = protocol3.design_table(records)
    assert "| STS-B | base: rank units of two (the design before) | 83.0, n=2 | — |" in table  # (0.82 + 0.84) / 2
    assert "| STS-B | rank1 | 84.0, n=2 (+1.0) | — |" in table  # ((0.85 - 0.82) + (0.83 - 0.84)) / 2
    assert "lr3" not in table  # a variant without runs has no row


def test_a_suite_is_complete_only_with_its_planned_runs_whatever_else_it_holds(monkeypatch):
    """pareto holds the seed-200 searches of slaft's earlier design, which it no longer plans: they must not stand in
    for planned runs that are missing."""
    from dataclasses import replace

    from benchmarks.harness.suites import SUITES

    suite = replace(SUITES["pareto"], name="tiny-pareto", tasks=("stsb",), methods=(R1,), extend_grids=False,
                    lr_grids={"lora": (1e-3,)}, seeds=(11,))
    monkeypatch.setitem(SUITES, suite.name, suite)

    def run(method: str, stage: str, seed: int) -> dict:
        return {"suite": suite.name, "method": method, "task": "stsb", "seed": seed, "lr": 1e-3, "stage": stage,
                "status": "ok", "score": 0.8, "family": "lora"}

    planned = [run(R1, "lr_search", 200), run(R1, "final", 11)]
    unplanned = [run(EIGHTH, "lr_search", 200), run(EIGHTH, "final", 11)]
    assert protocol3.complete(suite.name, planned)
    assert not protocol3.complete(suite.name, planned[:1] + unplanned)


def test_a_suite_with_the_untuned_model_summarizes_it_beside_the_trained_methods():
    """The untuned model has no rate search (it trains nothing): its one run per task is its cell."""
    from benchmarks.harness.methods.plain_methods import UNTUNED
    from benchmarks.report.summarize import summarize

    def run(method: str, seed: int, lr: float, score: float) -> dict:
        return {"suite": "llm-pilot", "method": method, "task": "qnli", "seed": seed, "lr": lr, "stage": "final",
                "status": "ok", "score": score, "family": "none" if method == UNTUNED else "lora"}

    records = [run("peft-lora-qv", seed, 1e-3, 0.57 + seed / 100) for seed in (0, 1, 2)]
    summary = summarize("llm-pilot", [*records, run(UNTUNED, 0, 0.0, 0.5)])
    assert set(summary.methods) == {"peft-lora-qv", UNTUNED}
    assert [r["score"] for r in summary.cell(UNTUNED, "qnli").runs] == [0.5]
    assert len(summary.cell("peft-lora-qv", "qnli").runs) == 3


def test_a_running_suite_shows_each_task_whose_planned_runs_are_all_in_and_no_other(monkeypatch, tmp_path):
    """pareto and llm run for days: a task is final once every run the suite plans on it is in, and PROTOCOL3.md
    shows it (without the mean over tasks or a verdict) while the other tasks run on."""
    from dataclasses import replace

    from benchmarks.harness.suites import SUITES
    from benchmarks.report import render

    slaft = protocol3.PARETO_SLAFT[0]
    suite = replace(SUITES["pareto"], tasks=("stsb", "cola"), methods=(R1, slaft), extend_grids=False,
                    lr_grids={"lora": (1e-3,), "slaft": (1e-3,)}, seeds=(11, 12))
    monkeypatch.setitem(SUITES, "pareto", suite)

    def run(method: str, task: str, seed: int, score: float) -> dict:
        slaft_run = method == slaft
        return {"suite": "pareto", "method": method, "task": task, "seed": seed, "lr": 1e-3, "score": score,
                "stage": "lr_search" if seed == 200 else "final", "status": "ok", "family": "slaft" if slaft_run
                else "lora", "adapter_params": 8700 if slaft_run else 9216, "stored_params": 10000,
                "details": {"slaft_target_params": 9216} if slaft_run else {}}

    stsb = [run(m, "stsb", seed, score + (0.01 if m == slaft else 0.0))
            for m in (R1, slaft) for seed, score in ((200, 0.80), (11, 0.81), (12, 0.82))]
    cola = [run(R1, "cola", 200, 0.3), run(R1, "cola", 11, 0.3)]  # cola has runs to go
    records = stsb + cola
    assert protocol3.complete_tasks("pareto", records) == ["stsb"]
    assert not protocol3.complete("pareto", records)
    section = "\n".join(render.partial_section("pareto", records, tmp_path, None))
    assert section.startswith("## `pareto` so far: STS-B\n")
    assert "+1.0 (2/2) vs LoRA r=1 (q,v)" in section  # slaft minus the best peer at or below its budget
    assert "CoLA" not in section and "Mean over tasks" not in section
    assert render.partial_section("pareto", stsb[:-1] + cola, tmp_path, None) == []  # slaft's seed 12 is missing


def test_a_reported_seed_far_below_its_methods_others_is_listed_beside_the_rate_search():
    summary = _summary({(EIGHTH, "stsb"): [0.86, 0.10, 0.85], (R1, "stsb"): [0.84, 0.82, 0.80]})
    summary.records += [{"method": EIGHTH, "task": "stsb", "stage": "lr_search", "status": "ok", "lr": lr,
                         "score": score, "seed": 200} for lr, score in ((3e-4, 0.70), (1e-3, 0.86), (3e-3, -0.04))]
    table = protocol3.unstable_table(summary)
    rows = table.splitlines()[2:]
    assert len(rows) == 1  # R1's 0.80 is 2 points under its median; only slaft's seed 12 falls more than 5
    assert "| 12 | 1e-3 | 10.0 | 86.0 85.0 | 1e-3: 86.0; 3e-3: -4.0 |" in rows[0]
    assert protocol3.unstable_table(_summary({(R1, "stsb"): [0.84, 0.82, 0.80]})) is None


def test_the_library_column_names_the_version_of_the_code_that_ran_not_a_stale_install():
    from benchmarks.report.tables import _record_library

    stale = {"library": "slaft 0.2.0", "versions": {"slaft": "0.3.0", "peft": "0.21.2"}}
    assert _record_library(stale) == "slaft 0.3.0"
    assert _record_library({"library": "peft 0.21.2", "versions": {"peft": "0.21.2"}}) == "peft 0.21.2"
    assert _record_library({"library": "slaft 0.1.0"}) == "slaft 0.1.0"  # records from before versions were kept
