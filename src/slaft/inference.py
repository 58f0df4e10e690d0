"""Loading a saved run (an adapter directory or a merged export) for inference, and scoring it on a task split."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from .causal_lm import evaluate_causal, tokenize_causal
from .data import DataError, load_task, tokenize_task
from .evaluation import evaluate
from .io import CONFIG_NAME, AdapterLoadError, read_payload
from .loading import load_model_and_tokenizer
from .model import SlaftModel

EXPORT_NAME = "slaft_export.json"  # what a fully merged export remembers of its run (task, data, length)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                   "tokenizer.model", "merges.txt", "vocab.json", "added_tokens.json", "chat_template.jinja")


def apply_label_names(model, payload: dict | None) -> None:
    """Put the run's class names into the model config (transformers pipelines answer with them)."""
    names = (payload or {}).get("id2label") or {}
    if names and len(names) == getattr(model.config, "num_labels", None):
        model.config.id2label = {int(k): v for k, v in names.items()}
        model.config.label2id = {v: int(k) for k, v in names.items()}


def load_directory(directory: str | Path):
    """(model, tokenizer, adapter payload or None) for an adapter directory or a merged export."""
    directory = Path(directory)
    has_adapter = (directory / CONFIG_NAME).is_file()
    has_model = (directory / "config.json").is_file()
    if not has_adapter and not has_model:
        raise AdapterLoadError(f"{directory} holds neither {CONFIG_NAME} (slaft adapters) nor config.json (a model): "
                               "pass a run's adapter directory or an export.")
    payload = read_payload(directory) if has_adapter else None
    if has_model:  # a merged export: the directory is its own base model
        exported = directory / EXPORT_NAME
        meta = json.loads(exported.read_text()) if exported.is_file() else {}
        auto = AutoModelForCausalLM if meta.get("objective") == "causal-lm" else AutoModelForSequenceClassification
        try:
            base = auto.from_pretrained(directory)
        except (OSError, ValueError) as err:
            raise AdapterLoadError(f"{directory} holds a config.json but no loadable model ({err}).") from err
        try:
            tokenizer = AutoTokenizer.from_pretrained(directory)
        except (OSError, ValueError, ImportError, TypeError) as err:
            raise AdapterLoadError(f"{directory} holds a model but no tokenizer ({str(err).strip()[:200]}); save one "
                                   "beside it with tokenizer.save_pretrained.") from err
    else:
        try:
            base_name, num_labels = payload["config"]["base_model_name_or_path"], payload["num_labels"]
        except (KeyError, TypeError) as err:
            raise AdapterLoadError(f"{directory / CONFIG_NAME} lacks the base model or label count ({err}).") from err
        base, tokenizer = load_model_and_tokenizer(base_name, num_labels,
                                                   causal_lm=payload.get("objective") == "causal-lm")
        if any((directory / name).is_file() for name in TOKENIZER_FILES):
            tokenizer = AutoTokenizer.from_pretrained(directory)
    apply_label_names(base, payload)
    model = SlaftModel.from_pretrained(base, directory) if payload else base
    model.eval()
    return model, tokenizer, payload


def evaluate_directory(directory: str | Path, *, task: str | None = None, data_dir: str | None = None,
                       split: str = "validation", batch_size: int = 64, max_length: int | None = None,
                       perturb: str | None = None, rate: float = 0.1, perturb_seed: int = 0) -> dict:
    """Metrics of a saved run on one split; task, data directory and sequence length default to the run's own.
    With ``perturb`` (a kind of ``slaft.robustness.perturb``), on a copy of the split perturbed at ``rate``."""
    model, tokenizer, payload = load_directory(directory)
    exported = Path(directory) / EXPORT_NAME
    meta = payload or (json.loads(exported.read_text()) if exported.is_file() else {})
    source = dict(meta.get("data") or {})  # the run's own data: task name, files, columns, seed
    if task is not None and task != source.get("task"):
        source = {"task": task}
    if data_dir is not None:
        source["data_dir"] = data_dir
    max_length = max_length or meta.get("max_length") or 128
    source.setdefault("task", meta.get("task") or "bbcnews")
    data = load_task(source.pop("task"), **{k: (tuple(v) if k == "text_columns" and v else v)
                                            for k, v in source.items()})
    if split not in data.splits:
        raise DataError(f"Task {data.spec.name!r} has no {split!r} split here; it has {sorted(data.splits)}. Pick "
                        "one with --split.")
    if perturb is not None:
        from .robustness.perturb import perturb_split

        data.splits[split] = perturb_split(data.splits[split], data.spec.text_columns, perturb, rate, perturb_seed,
                                           tokenizer=tokenizer, embeddings=model.get_input_embeddings().weight)
    if meta.get("objective") == "causal-lm":
        tokenized = tokenize_causal(data, tokenizer, max_length)
        metrics = evaluate_causal(model, data.spec, tokenized[split], tokenizer, max_length, batch_size=batch_size)
    else:
        tokenized = tokenize_task(data, tokenizer, max_length)
        metrics = evaluate(model, data.spec, tokenized[split], tokenizer, batch_size=batch_size)
    out = {"task": data.spec.name, "split": split, "eval": metrics, "examples": len(tokenized[split])}
    return {**out, "perturbation": perturb, "perturbation_rate": rate} if perturb else out


@torch.no_grad()
def generate_text(directory: str | Path, prompt: str, *, max_new_tokens: int = 64) -> str:
    """Greedy continuation of ``prompt`` by a saved causal-LM run (adapter directory or merged export), as a user
    turn of the tokenizer's chat template when it has one."""
    model, tokenizer, payload = load_directory(directory)
    if not hasattr(model, "generate") or getattr(model.config, "is_encoder_decoder", False) or (
            payload is not None and payload.get("objective") != "causal-lm"):
        raise AdapterLoadError(f"{directory} is not a causal-LM run (train one with --objective causal-lm); "
                               "use `slaft eval` to score a classification run.")
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=False)
    else:
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    ids = ids.to(next(model.parameters()).device)
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                         do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
