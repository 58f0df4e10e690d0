"""`slaft sweep`: a tiny sweep end to end on a user's CSV data, resuming without retraining, and bad sweep input."""

from __future__ import annotations

import json

import pytest

from slaft.robustness import sweep as sweep_module
from slaft.config import ConfigError, SlaftConfig
from slaft.pipeline import TrainJob
from slaft.robustness.sweep import RECORDS, SweepOptions, plan

from conftest import WORDS, model_workspace, run_cli

pytestmark = pytest.mark.filterwarnings("ignore")

FIELDS = {"sweep", "sparsity_weight", "target_params", "noise_kind", "noise_ratio", "perturbation",
          "perturbation_rate", "kept_params", "kept_sites", "score", "seed", "value", "metric"}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_model_dir):
    rows = ["text,label"] + [f"{WORDS[i % 2]} {WORDS[4 + i % 2]} {WORDS[6]} {i},{i % 2}" for i in range(32)]
    return model_workspace(tmp_path_factory, tiny_model_dir, "sweep", {"train.csv": rows})


def sweep(root, *argv: str) -> tuple[int, str]:
    return run_cli(root, "sweep", "--model", str(root / "model"), "--task", "csv", "--train-file",
                   str(root / "train.csv"), "--epochs", "2", "--batch-size", "8", "--max-length", "16",
                   "--adapter-width", "8", "--lora-rank", "4", *argv)


def records(directory) -> list[dict]:
    return [json.loads(line) for line in (directory / RECORDS).read_text().splitlines()]


def test_a_sparsity_sweep_runs_records_plots_and_resumes_without_training(workspace, monkeypatch):
    out = workspace / "lambda"
    code, message = sweep(workspace, "--axis", "sparsity_weight", "--values", "0", "8", "--seeds", "0", "1",
                          "--output-dir", str(out))
    assert code == 0, message
    found = records(out)
    assert len(found) == 4 and all(FIELDS <= set(r) for r in found)
    assert {(r["value"], r["seed"]) for r in found} == {(0.0, 0), (8.0, 0), (0.0, 1), (8.0, 1)}
    for seed in (0, 1):
        kept = {r["value"]: r["kept_params"] for r in found if r["seed"] == seed}
        assert kept[8.0] < kept[0.0] == found[0]["candidate_params"]  # λ = 0 keeps everything, λ = 8 prunes
    assert (out / "sweep.png").stat().st_size > 0

    # A kill mid-sweep loses at most the last record; starting again re-records it from the finished run without
    # training anything.
    (out / RECORDS).write_text("".join(json.dumps(r) + "\n" for r in found[:-1]) + '{"value": 8.0, "se')
    monkeypatch.setattr(sweep_module, "run_train", lambda *a, **k: pytest.fail("a finished point trained again"))
    code, message = sweep(workspace, "--axis", "sparsity_weight", "--values", "0", "8", "--seeds", "0", "1",
                          "--output-dir", str(out))
    assert code == 0, message
    assert sorted(map(json.dumps, records(out))) == sorted(map(json.dumps, found))

    # Other training options in the same directory would mix differently trained points: refused.
    code, message = sweep(workspace, "--axis", "sparsity_weight", "--values", "0", "8", "--seeds", "0", "1",
                          "--learning-rate", "0.01", "--output-dir", str(out))
    assert code == 2 and "job.learning_rate" in message


def test_a_perturbation_sweep_trains_once_per_seed(workspace):
    out = workspace / "perturb"
    code, message = sweep(workspace, "--axis", "perturbation", "--values", "0", "0.3", "--perturbations",
                          "keyboard", "word_delete", "--output-dir", str(out))
    assert code == 0, message
    found = records(out)
    assert {(r["perturbation"], r["perturbation_rate"]) for r in found} == {
        ("keyboard", 0.0), ("keyboard", 0.3), ("word_delete", 0.0), ("word_delete", 0.3)}
    assert [p.name for p in (out / "runs").iterdir()] == ["clean-seed42"]
    clean = {r["score"] for r in found if r["perturbation_rate"] == 0.0}
    assert clean == {found[0]["clean_score"]}


@pytest.mark.parametrize("argv,words", [
    (["--values"], "expected at least one"),
    (["--axis", "perturbation", "--values", "0", "1.5"], "[0, 1)"),
    (["--axis", "perturbation", "--perturbations", "typoo"], "Unknown perturbation"),
    (["--axis", "sparsity"], "Unknown sweep axis"),
    (["--axis", "target_params"], "no default grid"),
    (["--axis", "target_params", "--values", "-5"], "> 0"),
    (["--axis", "input_noise_ratio"], "--input-noise token"),
    (["--axis", "label_noise", "--values", "0", "2"], "label_noise"),
    (["--values", "1", "1"], "twice"),
    (["--perturbations", "keyboard"], "--axis perturbation"),
])
def test_bad_sweep_input_is_refused_before_training(workspace, argv, words):
    code, message = sweep(workspace, *argv, "--output-dir", str(workspace / "refused"))
    assert code == 2 and words in message, message
    assert not (workspace / "refused" / "runs").exists()


def test_every_point_gets_its_own_settings(tmp_path):
    options = SweepOptions(axis="label_noise", values=[0.0, 0.1], seeds=[3, 4])
    points = plan(options, TrainJob(), SlaftConfig(), tmp_path)
    assert [(job.label_noise, job.seed) for _, job, _ in points] == [(0.0, 3), (0.1, 3), (0.0, 4), (0.1, 4)]
    assert len({job.output_dir for _, job, _ in points}) == 4
    with pytest.raises(ConfigError, match="empty"):
        SweepOptions(values=[])


# The sweep's own options with a zero, a negative, an absurd and a wrong-type value (its train options are
# test_cli_errors.py's): "runs" or "error" (exit 2 with a message).
SWEEP = {"axis": ("error",) * 4, "values": ("runs", "error", "runs", "error"),
         "seeds": ("runs", "error", "error", "error"), "perturbations": ("error",) * 4}


def test_the_sweep_list_covers_every_option():
    import dataclasses

    assert set(SWEEP) == {f.name for f in dataclasses.fields(SweepOptions)}


@pytest.mark.parametrize("flag", sorted(SWEEP))
def test_sweep_option_values(workspace, flag):
    for index, (value, expected) in enumerate(zip(("0", "-1", "1e30", "abc"), SWEEP[flag])):
        extra = [] if flag == "values" else ["--values", "1"]
        code, message = sweep(workspace, f"--{flag}", value, *extra, "--seeds" if flag != "seeds" else "--epochs",
                              "0" if flag != "seeds" else "1", "--output-dir", str(workspace / f"opt-{flag}-{index}"))
        if expected == "runs":
            assert code == 0, f"--{flag} {value} should run: {message}"
        else:
            assert code == 2 and message, f"--{flag} {value} should be refused with a message, got exit {code}"
