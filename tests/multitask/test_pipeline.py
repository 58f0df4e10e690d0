"""The multi-task command line on the user's own CSV files: train, evaluate, inspect, export, refusals, resume."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import WORDS, model_workspace, run_cli

pytestmark = pytest.mark.filterwarnings("ignore")


# The CLI on the user's own files --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_model_dir):
    files = {f"{name}.csv": ["text,label"] + [f"{WORDS[i % 4]} {WORDS[4 + i % 2]} {WORDS[6]},{i % labels}"
                                              for i in range(40)] for name, labels in (("sentiment", 2), ("kind", 3))}
    return model_workspace(tmp_path_factory, tiny_model_dir, "mt-cli", files)


def cli_train(root, *argv: str) -> tuple[int, str]:
    return run_cli(root, "train", "--model", str(root / "model"), "--epochs", "2", "--batch-size", "8",
                   "--max-length", "16", "--adapter-width", "8", "--lora-rank", "4", "--target-params", "1500", *argv)


def test_cli_trains_evaluates_inspects_and_exports_a_multitask_run(workspace):
    code, message = cli_train(workspace, "--tasks", f"sentiment={workspace / 'sentiment.csv'},kind="
                              f"{workspace / 'kind.csv'}", "--output-dir", str(workspace / "run"))
    assert code == 0, message
    run = workspace / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["tasks"] == ["sentiment", "kind"] and set(metrics["scores"]) == {"sentiment", "kind"}
    assert metrics["stored_params"] == metrics["params"]["pool"] + sum(metrics["params"]["heads"].values())
    assert (run / "sharing.png").stat().st_size > 1000 and (run / "structures" / "kind.png").is_file()
    assert run_cli(workspace, "eval", str(run / "multitask"), "--output", str(workspace / "e.json"))[0] == 0
    scores = json.loads((workspace / "e.json").read_text())
    for task in ("sentiment", "kind"):
        assert scores[task]["eval"] == pytest.approx(metrics["scores"][task]["validation"], abs=1e-6)
    assert run_cli(workspace, "eval", str(run / "tasks" / "kind"))[0] == 0  # a task's export alone
    assert run_cli(workspace, "inspect", str(run / "multitask"), "--png", str(workspace / "png"))[0] == 0
    assert (workspace / "png" / "sharing.png").is_file()
    assert run_cli(workspace, "export", str(run / "multitask"), str(workspace / "out"), "--task", "kind")[0] == 0
    assert (workspace / "out" / "kind" / "slaft_config.json").is_file()
    assert run_cli(workspace, "export", str(run / "multitask"), str(workspace / "merged"), "--merge")[0] == 0
    assert {p.name for p in (workspace / "merged").iterdir()} == {"sentiment", "kind"}
    assert run_cli(workspace, "eval", str(workspace / "merged" / "sentiment"), "--output",
                   str(workspace / "m.json"))[0] == 0
    merged = json.loads((workspace / "m.json").read_text())["eval"]
    assert merged == pytest.approx(metrics["scores"]["sentiment"]["validation"], abs=1e-5)


@pytest.mark.parametrize("tasks, message", [
    ("a={csv},a={csv}", "listed twice"),
    ("sst2,sst-2", "same task"),
    ("{csv}", "at least two tasks"),
])
def test_cli_refuses_bad_task_lists(workspace, tmp_path, tasks, message):
    (tmp_path / "sst2").mkdir()
    (tmp_path / "sst2" / "train.jsonl").write_text('{"sentence": "good", "label": 1, "idx": 0}\n' * 8)
    code, error = cli_train(workspace, "--tasks", tasks.format(csv=workspace / "kind.csv"), "--data-dir",
                            str(tmp_path), "--output-dir", str(tmp_path / "run"))
    assert code == 2 and message in error


def test_cli_refuses_a_task_without_a_train_split(workspace, tmp_path):
    (tmp_path / "rte").mkdir()
    (tmp_path / "rte" / "validation.jsonl").write_text('{"sentence1": "a", "sentence2": "b", "label": 1}\n')
    code, error = cli_train(workspace, "--tasks", f"rte,kind={workspace / 'kind.csv'}", "--data-dir", str(tmp_path),
                            "--output-dir", str(tmp_path / "run"))
    assert code == 2 and "train" in error


def test_cli_task_passes_give_a_task_more_steps_and_refuse_an_unknown_task(workspace, tmp_path):
    tasks = f"sentiment={workspace / 'sentiment.csv'},kind={workspace / 'kind.csv'}"
    code, message = cli_train(workspace, "--tasks", tasks, "--task-passes", "kind=2", "--output-dir",
                              str(tmp_path / "run"))
    assert code == 0, message
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["multitask"]["task_passes"] == ["kind=2"]
    assert metrics["steps"] == 2 * (5 + 2 * 5)  # 2 epochs of 5 batches per task (the resume test's 20 steps), kind x2
    code, error = cli_train(workspace, "--tasks", tasks, "--task-passes", "topic=2", "--output-dir",
                            str(tmp_path / "bad"))
    assert code == 2 and "not tasks of this run" in error



def test_a_killed_multitask_run_resumes_to_the_same_result(workspace):
    tasks = f"sentiment={workspace / 'sentiment.csv'},kind={workspace / 'kind.csv'}"
    code, message = cli_train(workspace, "--tasks", tasks, "--save-steps", "7", "--output-dir",
                              str(workspace / "whole"))
    assert code == 0, message
    whole = json.loads((workspace / "whole" / "metrics.json").read_text())
    # A run killed after its checkpoint of step 14 of 20 (the structures were decided at step 10); a search-phase
    # checkpoint's round trip is test_a_search_phase_save_resumes_with_the_same_masks_and_importances.
    killed = workspace / "killed"
    shutil.copytree(workspace / "whole" / "checkpoints" / "checkpoint-14", killed / "checkpoints" / "checkpoint-14")
    code, message = cli_train(workspace, "--tasks", tasks, "--save-steps", "7", "--output-dir", str(killed),
                              "--resume")
    assert code == 0, message
    resumed = json.loads((killed / "metrics.json").read_text())
    assert resumed["resumed"] and resumed["decided_at_step"] == whole["decided_at_step"]
    assert resumed["params"] == whole["params"] and resumed["sharing"] == whole["sharing"]
    for task in ("sentiment", "kind"):
        assert resumed["scores"][task]["validation"] == pytest.approx(whole["scores"][task]["validation"], abs=1e-6)

