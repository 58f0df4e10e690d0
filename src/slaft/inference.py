"""Loading a saved run for inference, evaluating it, and exporting it compact or merged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

from .data import compute_metrics, load_task, tokenize_task
from .inject import CONTAINER
from .io import CONFIG_NAME, AdapterLoadError, atomic_write_text, read_adapter_config
from .model import SlaftModel
from .loading import load_model_and_tokenizer

EXPORT_NAME = "slaft_export.json"  # what a fully merged export remembers of its run (task, data, length)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                   "tokenizer.model", "merges.txt", "vocab.json", "added_tokens.json", "chat_template.jinja")


def load_directory(directory: str | Path):
    """(model, tokenizer, adapter metadata or None) for an adapter directory or a merged export."""
    directory = Path(directory)
    has_adapter = (directory / CONFIG_NAME).is_file()
    has_model = (directory / "config.json").is_file()
    if not has_adapter and not has_model:
        raise AdapterLoadError(f"{directory} holds neither {CONFIG_NAME} (slaft adapters) nor config.json (a model): "
                               "pass a run's adapter directory or an export.")
    meta = read_adapter_config(directory) if has_adapter else None
    if has_model:  # a merged export: the directory is its own base model
        base = AutoModelForSequenceClassification.from_pretrained(directory)
        tokenizer = AutoTokenizer.from_pretrained(directory)
    else:
        base, tokenizer = load_model_and_tokenizer(meta["config"]["base_model_name_or_path"], meta["num_labels"])
        if any((directory / name).is_file() for name in TOKENIZER_FILES):
            tokenizer = AutoTokenizer.from_pretrained(directory)
    model = SlaftModel.from_pretrained(base, directory) if meta else base
    model.eval()
    return model, tokenizer, meta


@torch.no_grad()
def predict(model, tokenized_split, tokenizer, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    loader = DataLoader(tokenized_split, batch_size=batch_size, collate_fn=DataCollatorWithPadding(tokenizer))
    device = next(model.parameters()).device
    logits, labels = [], []
    for batch in tqdm(loader, desc="evaluating", leave=False):
        labels.append(batch.pop("labels").numpy())
        out = model(**{k: v.to(device) for k, v in batch.items()})
        logits.append(out.logits.float().cpu().numpy())
    return np.concatenate(logits), np.concatenate(labels)


def evaluate_directory(directory: str | Path, *, task: str | None = None, data_dir: str | None = None,
                       split: str = "validation", batch_size: int = 64, max_length: int | None = None) -> dict:
    """Metrics of a saved run on one split; task, data directory and sequence length default to the run's own."""
    model, tokenizer, meta = load_directory(directory)
    exported = Path(directory) / EXPORT_NAME
    meta = meta or (json.loads(exported.read_text()) if exported.is_file() else {})
    task = task or meta.get("task") or "bbcnews"
    max_length = max_length or meta.get("max_length") or 128
    data = load_task(task, data_dir=data_dir or meta.get("data_dir"))
    if split not in data.splits:
        raise ValueError(f"Task {task!r} has no split {split!r} here; it has {sorted(data.splits)}.")
    tokenized = tokenize_task(data, tokenizer, max_length)
    logits, labels = predict(model, tokenized[split], tokenizer, batch_size)
    return {"task": data.spec.name, "split": split, "eval": compute_metrics(data.spec, logits, labels),
            "examples": int(len(labels))}


def export(directory: str | Path, out: str | Path, *, merge: bool = False) -> str:
    """Compact: the discrete adapter alone. Merged: linear paths folded into a full checkpoint (plus what stayed)."""
    model, tokenizer, meta = load_directory(directory)
    if meta is None:
        raise ValueError(f"{directory} is already a plain model; there is nothing to export.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out)
    extra = {key: meta.get(key) for key in ("task", "data_dir", "max_length")}
    if not merge:
        structure = model.discretize()
        model.save_pretrained(out, extra=extra)
        return f"compact adapter: {structure.num_sites} modules, {structure.num_params:,} parameters -> {out}"
    report = model.merge()
    if not report.kept:
        model.unload().save_pretrained(out)
        atomic_write_text(out / EXPORT_NAME, json.dumps({**extra, "merge": str(report)}, indent=2) + "\n")
        return f"{report}\nplain transformers checkpoint -> {out}"
    base = model.base_model
    state = {k: v for k, v in base.state_dict().items() if CONTAINER not in k.split(".")}
    base.save_pretrained(out, state_dict=state)
    model.save_pretrained(out, extra=extra)
    return f"{report}\nmerged checkpoint with the kept modules as adapters -> {out}"

