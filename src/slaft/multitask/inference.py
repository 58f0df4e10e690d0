"""A saved multi-task run for inference: one loaded model scores every task (or one) on its own data."""

from __future__ import annotations

import json
from pathlib import Path

from ..data import DataError, load_task, tokenize_task
from ..evaluation import evaluate
from ..io import AdapterLoadError, read_payload
from ..loading import load_model_and_tokenizer
from .model import MultiTaskSlaftModel
from .pipeline import BASE_LABELS

TASKS_DATA = "tasks_data.json"


def load_multitask_directory(directory: str | Path):
    """(model, tokenizer, payload) of a multi-task directory (``RUN/multitask``)."""
    directory = Path(directory)
    payload = read_payload(directory)
    try:
        base_name = payload["config"]["base_model_name_or_path"]
    except (KeyError, TypeError) as err:
        raise AdapterLoadError(f"{directory} lacks its base model's name ({err}).") from err
    base, tokenizer = load_model_and_tokenizer(base_name, BASE_LABELS)
    if (directory / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(directory)
    model = MultiTaskSlaftModel.from_pretrained(base, directory)
    model.eval()
    return model, tokenizer, payload


def evaluate_multitask_directory(directory: str | Path, *, task: str | None = None, data_dir: str | None = None,
                                 split: str = "validation", batch_size: int = 64,
                                 max_length: int | None = None) -> dict:
    """Metrics of every task of a multi-task run (or of ``task``) on its own data, from one loaded model."""
    model, tokenizer, _ = load_multitask_directory(directory)
    sources_path = Path(directory) / TASKS_DATA
    sources = json.loads(sources_path.read_text()) if sources_path.is_file() else {}
    max_length = max_length or sources.pop("max_length", None) or 128
    sources.pop("max_length", None)
    names = [t.name for t in model.tasks]
    if task is not None and task not in names:
        raise DataError(f"This multi-task run has no task {task!r}; its tasks are {names}.")
    out = {}
    for name in [task] if task else names:
        source = dict(sources.get(name) or {"task": name})
        if data_dir is not None:
            source["data_dir"] = data_dir
        data = load_task(source.pop("task"), **{k: (tuple(v) if k == "text_columns" and v else v)
                                                for k, v in source.items()})
        if split not in data.splits:
            raise DataError(f"Task {name!r} has no {split!r} split here; it has {sorted(data.splits)}.")
        tokenized = tokenize_task(data, tokenizer, max_length)
        model.set_task(name)
        out[name] = {"split": split, "eval": evaluate(model, data.spec, tokenized[split], tokenizer,
                                                      batch_size=batch_size), "examples": len(tokenized[split])}
    return out


def export_multitask(directory: str | Path, out: str | Path, *, task: str | None = None, merge: bool = False,
                     format: str = "slaft") -> str:
    """Each task (or ``task``) of a multi-task run as its own single-task export in ``out/<task>``: a slaft
    adapter, or with ``merge`` / ``format="peft"`` what `slaft export` makes of one. Returns a summary."""
    import tempfile

    from ..export import export

    model, tokenizer, _ = load_multitask_directory(directory)
    names = [t.name for t in model.tasks]
    if task is not None and task not in names:
        raise DataError(f"This multi-task run has no task {task!r}; its tasks are {names}.")
    sources_path = Path(directory) / TASKS_DATA
    sources = json.loads(sources_path.read_text()) if sources_path.is_file() else {}
    lines = []
    for name in [task] if task else names:
        extra = {"data": sources.get(name), "max_length": sources.get("max_length"), "objective": "classification"}
        target = Path(out) / name
        if not merge and format == "slaft":
            tokenizer.save_pretrained(model.export_task(name, target, extra=extra))
            lines.append(f"{name}: slaft adapter -> {target}")
            continue
        with tempfile.TemporaryDirectory() as scratch:
            tokenizer.save_pretrained(model.export_task(name, scratch, extra=extra))
            lines.append(f"{name}: {export(scratch, target, merge=merge, format=format)}")
    return "\n".join(lines)
