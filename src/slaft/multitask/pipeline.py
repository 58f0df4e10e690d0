"""`slaft train --tasks a,b,c`: several tasks, one backbone, one shared pool, one Trainer run, a structure per task.

    <output_dir>/checkpoints/checkpoint-N/   Trainer checkpoints (the multi-task directory + optimizer state)
    <output_dir>/multitask/                  every task served from one model: shared pool, per-task heads
    <output_dir>/tasks/<task>/               each task as a plain single-task adapter (`slaft eval`, `slaft export`)
    <output_dir>/metrics.json, structures/<task>.png, sharing.png
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from pathlib import Path

import torch
from transformers import DataCollatorWithPadding, set_seed
from transformers.utils import logging as hf_logging

from ..config import ConfigError, SlaftConfig, list_entries
from ..data import DataError, TaskData, canonical_task_name, load_task, tokenize_task
from ..evaluation import evaluate
from ..io import atomic_write_text, read_payload
from ..loading import load_model_and_tokenizer
from ..pipeline import DATA_FIELDS, MIN_FREE_BYTES, TrainJob, training_arguments
from ..plots import plot_sharing, plot_structure
from ..runs import latest_checkpoint, prepare_output_dir
from ..structure import Structure
from .config import MultiTaskConfig, TaskInfo
from .data import MultiTaskDataset
from .model import MultiTaskSlaftModel
from .training import MultiTaskTrainer

BASE_LABELS = 2  # the label count the base model is loaded with: its label-sized head becomes the tasks' template


def parse_task_entries(entries: list[str]) -> list[tuple[str, str | None]]:
    """``--tasks`` entries (space- or comma-separated): a task name, or NAME=FILE for your own CSV/JSON data.
    Returns (name or task, file or None) pairs; refuses an empty list and a task listed twice."""
    parsed = [(name, path or None) for name, _, path in list_entries(entries)]
    if len(parsed) < 2:
        raise ConfigError(f"--tasks needs at least two tasks (got {[n for n, _ in parsed]}); for one task use --task.")
    names = [name for name, _ in parsed]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"Task(s) {twice} listed twice in --tasks; name each task once.")
    known = [canonical_task_name(name) if path is None else name for name, path in parsed]
    clash = sorted({n for n in known if known.count(n) > 1})
    if clash:
        raise ConfigError(f"--tasks {names} name the same task {clash} more than once (aliases of one task); list "
                          "each task once.")
    return parsed


def load_tasks(job: TrainJob, entries: list[tuple[str, str | None]]) -> list[TaskData]:
    tasks = []
    for name, path in entries:
        data = load_task("csv" if path and path.endswith((".csv", ".tsv")) else "json" if path else name,
                         data_dir=job.data_dir, train_file=path, text_columns=job.text_columns,
                         label_column=job.label_column, seed=job.seed, max_train_samples=job.max_train_samples)
        if path:
            data.spec = dataclasses.replace(data.spec, name=name)
        if "train" not in data.splits or len(data.splits["train"]) == 0:
            raise DataError(f"Task {name!r} has no train split here; pass --data-dir with {name}/train.jsonl, or "
                            f"{name}=FILE with a training file.")
        tasks.append(data)
    names = [data.spec.name for data in tasks]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise ConfigError(f"Tasks {[e[0] for e in entries]} name the same task {clash} more than once (aliases of "
                          "one task); list each task once.")
    return tasks


def task_data_fields(job: TrainJob, name: str, path: str | None) -> dict:
    """What `slaft eval` needs to load one task's data again."""
    fields = {key: getattr(job, key) for key in DATA_FIELDS}
    fields.update(task=("csv" if path.endswith((".csv", ".tsv")) else "json") if path else name, train_file=path,
                  validation_file=None, test_file=None, num_labels=None)
    return fields


def model_for_checkpoint(base, config: SlaftConfig, infos: list[TaskInfo], multitask: MultiTaskConfig,
                         checkpoint: str | None) -> MultiTaskSlaftModel:
    """A multi-task model in the phase a checkpoint was saved in, ready for the Trainer to load it."""
    pool, decided_at = None, None
    if checkpoint is not None:
        payload = read_payload(checkpoint)
        if payload.get("phase") == "discrete":
            pool, decided_at = Structure.from_dict(payload["structure"]), payload.get("decided_at_step")
    model = MultiTaskSlaftModel(base, config, infos, multitask, pool)
    model.decided_at_step = decided_at
    return model


def score_tasks(model: MultiTaskSlaftModel, tasks: list[TaskData], tokenized: list, tokenizer, *,
                batch_size: int) -> dict[str, dict]:
    """Validation (and test, where labelled) metrics of every task, from the one loaded model."""
    scores = {}
    for data, splits in zip(tasks, tokenized):
        model.set_task(data.spec.name)
        scores[data.spec.name] = {"validation": evaluate(model, data.spec, splits[data.eval_split], tokenizer,
                                                         batch_size=batch_size)}
        if data.test_split:
            scores[data.spec.name]["test"] = evaluate(model, data.spec, splits[data.test_split], tokenizer,
                                                      batch_size=batch_size)
    return scores


def run_train_multitask(job: TrainJob, config: SlaftConfig | None = None, multitask: MultiTaskConfig | None = None,
                        *, log=print, resume: bool = False, overwrite: bool = False,
                        command: str | None = None) -> dict:
    """Train one multi-task model on ``job.tasks``; returns the metrics also written to ``metrics.json``."""
    config = copy.deepcopy(config) if config is not None else SlaftConfig()  # the caller's stays as it was
    multitask = multitask or MultiTaskConfig()
    entries = parse_task_entries(job.tasks or [])
    if job.objective != "classification" or job.label_noise or job.input_noise or job.init_from:
        raise ConfigError("--tasks trains classification and regression heads only, without noise injection or "
                          "--init-from; drop those options (or train the tasks one at a time).")
    if job.train_file or job.validation_file or job.test_file:
        raise ConfigError("With --tasks, give your own data as NAME=FILE entries of --tasks, not --train-file.")
    out = Path(job.output_dir)
    prepare_output_dir(out, resume=resume, overwrite=overwrite, needed_bytes=MIN_FREE_BYTES)
    set_seed(job.seed)
    hf_logging.set_verbosity_error()
    tasks = load_tasks(job, entries)
    for data in tasks:
        log(f"task {data.spec.name}: " + ", ".join(f"{k} {len(v):,}" for k, v in data.splits.items()))
    infos = [TaskInfo(d.spec.name, d.spec.num_labels, d.spec.label_names if not d.spec.is_regression else None)
             for d in tasks]
    passes = multitask.passes_for([i.name for i in infos])
    base, tokenizer = load_model_and_tokenizer(job.model, BASE_LABELS, trust_remote_code=job.trust_remote_code)
    tokenized = [tokenize_task(data, tokenizer, job.max_length) for data in tasks]
    config.base_model_name_or_path = job.model

    checkpoint = latest_checkpoint(out / "checkpoints") if resume else None
    if checkpoint:
        log(f"resuming from {checkpoint}")
    model = model_for_checkpoint(base, config, infos, multitask, checkpoint)
    log(f"shared pool: {model.candidate.num_sites} candidate modules, {model.candidate.num_params:,} parameters; "
        f"tasks {', '.join(i.name for i in infos)}; sampling {multitask.sampling}"
        + "".join(f"; {i.name} {p:g} passes per epoch" for i, p in zip(infos, passes) if p != 1))
    trainer = MultiTaskTrainer(model=model, args=training_arguments(job, out / "checkpoints"),
                               train_dataset=MultiTaskDataset([splits["train"] for splits in tokenized]),
                               data_collator=DataCollatorWithPadding(tokenizer), sampling=multitask.sampling,
                               temperature=multitask.sampling_temperature, task_passes=passes)
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=checkpoint)
    train_seconds = time.perf_counter() - start
    structures = model.discretize()
    for name, structure in structures.items():
        log(f"\ntask {name}, {structure}")

    scores = score_tasks(model, tasks, tokenized, tokenizer, batch_size=job.eval_batch_size)
    data_fields = {name: task_data_fields(job, name, path) for name, path in entries}
    model.save_pretrained(out / "multitask")
    tokenizer.save_pretrained(out / "multitask")
    atomic_write_text(out / "multitask" / "tasks_data.json", json.dumps(
        {d.spec.name: data_fields[e[0]] for d, e in zip(tasks, entries)} | {"max_length": job.max_length}) + "\n")
    for data, (name, _) in zip(tasks, entries):
        task = data.spec.name
        directory = model.export_task(task, out / "tasks" / task, extra={
            "scores": scores[task], "max_length": job.max_length, "objective": "classification",
            "data": data_fields[name]})
        tokenizer.save_pretrained(directory)
        plot_structure(structures[task], model.candidate, out / "structures" / f"{task}.png",
                       title=f"{job.model} on {task} (multi-task)")
    sharing = model.sharing()
    plot_sharing(sharing, [i.name for i in infos], out / "sharing.png", title=f"{job.model}: parameters shared")
    metrics = {
        "tasks": [i.name for i in infos], "model": job.model, "scores": scores,
        "params": {"backbone": model.backbone_params, "candidate": model.candidate.num_params,
                   "pool": model.pool_params(), "heads": model.head_params(),
                   "per_task": {name: s.num_params for name, s in structures.items()}},
        "stored_params": model.pool_params() + sum(model.head_params().values()),
        "sharing": {"tasks": [i.name for i in infos], "params": sharing.tolist()},
        "sites": {name: s.num_sites for name, s in structures.items()},
        "train_seconds": round(train_seconds, 1), "steps": trainer.state.global_step,
        "decided_at_step": model.decided_at_step, "resumed": bool(checkpoint), "command": command,
        "device": "cuda" if torch.cuda.is_available() else "cpu", "job": dataclasses.asdict(job),
        "slaft_config": config.to_dict(), "multitask": multitask.to_dict(),
    }
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics

