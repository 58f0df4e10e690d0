"""The `slaft train` job as one readable function: search -> discretize -> fine-tune -> evaluate -> save."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import DataCollatorWithPadding, TrainingArguments, set_seed
from transformers.utils import logging as hf_logging

from .config import SlaftConfig
from .data import DataError, TaskData, compute_metrics, load_task, tokenize_task
from .io import atomic_write_text
from .model import SlaftModel, get_slaft_model
from .loading import load_model_and_tokenizer
from .plots import plot_structure
from .runs import is_complete_adapter, latest_checkpoint, prepare_output_dir
from .training import SlaftTrainer

MIN_FREE_BYTES = 200 * 2**20  # checkpoints of the largest bundled search space, twice over, plus outputs


@dataclass
class TrainJob:
    """Everything `slaft train` needs besides the SlaftConfig. Defaults are the bundled main job."""

    model: str = "minilm"
    task: str = "bbcnews"
    data_dir: str | None = None
    train_file: str | None = None
    validation_file: str | None = None
    test_file: str | None = None
    text_columns: tuple[str, ...] | None = None
    label_column: str = "label"
    max_train_samples: int | None = None
    output_dir: str = "runs/bbcnews-minilm"
    search_epochs: float = 1.0
    finetune_epochs: float = 1.0
    batch_size: int = 16
    eval_batch_size: int = 64
    learning_rate: float = 2e-3
    finetune_learning_rate: float | None = None
    weight_decay: float = 0.0
    warmup_ratio: float = 0.06
    max_length: int = 128
    seed: int = 42
    bf16: bool = False
    logging_steps: int = 10
    save_steps: int = 50
    trust_remote_code: bool = False
    command: str | None = None  # the command line that started the job, recorded in metrics.json


def _training_args(job: TrainJob, out: Path, epochs: float, lr: float) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(out),
        num_train_epochs=epochs,
        per_device_train_batch_size=job.batch_size,
        per_device_eval_batch_size=job.eval_batch_size,
        learning_rate=lr,
        weight_decay=job.weight_decay,
        warmup_ratio=job.warmup_ratio,
        lr_scheduler_type="linear",
        logging_steps=job.logging_steps,
        save_strategy="steps",
        save_steps=job.save_steps,
        save_total_limit=2,
        report_to=[],
        seed=job.seed,
        bf16=job.bf16,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        disable_tqdm=False,
    )


def _checkpoint(directory: Path, resume: bool, log) -> str | None:
    found = latest_checkpoint(directory) if resume else None
    if found:
        log(f"resuming from {found}")
    return found


def evaluate(trainer: SlaftTrainer, data: TaskData, tokenized, split: str) -> dict[str, float]:
    output = trainer.predict(tokenized[split])
    return compute_metrics(data.spec, np.asarray(output.predictions), np.asarray(output.label_ids))


def run_train(job: TrainJob, config: SlaftConfig | None = None, *, log=print, resume: bool = False,
              overwrite: bool = False) -> dict:
    """Run the whole job; returns the metrics dict also written to ``<output_dir>/metrics.json``.

    Each phase checkpoints through the Trainer; ``resume=True`` continues a killed run from its last complete
    checkpoint (or from the saved search result), and with the same seed ends where an uninterrupted run ends.
    """
    config = config or SlaftConfig()
    out = Path(job.output_dir)
    prepare_output_dir(out, resume=resume, overwrite=overwrite, needed_bytes=MIN_FREE_BYTES)
    set_seed(job.seed)
    hf_logging.set_verbosity_error()

    data = load_task(job.task, data_dir=job.data_dir, train_file=job.train_file,
                     validation_file=job.validation_file, test_file=job.test_file, text_columns=job.text_columns,
                     label_column=job.label_column, seed=job.seed, max_train_samples=job.max_train_samples)
    if "train" not in data.splits:
        raise DataError(f"Task {data.spec.name!r} has no train split here; pass --train-file or a --data-dir "
                        "that holds train.jsonl.")
    log(f"task {data.spec.name}: " + ", ".join(f"{k} {len(v):,}" for k, v in data.splits.items()))
    model, tokenizer = load_model_and_tokenizer(job.model, data.spec.num_labels,
                                                trust_remote_code=job.trust_remote_code)
    tokenized = tokenize_task(data, tokenizer, job.max_length)
    collator = DataCollatorWithPadding(tokenizer)
    config.base_model_name_or_path = job.model

    def trainer_for(phase: str, epochs: float, lr: float) -> SlaftTrainer:
        return SlaftTrainer(model=slaft, args=_training_args(job, out / phase, epochs, lr),
                            train_dataset=tokenized["train"], data_collator=collator)

    start = time.perf_counter()
    searched = out / "searched"
    if resume and is_complete_adapter(searched):
        slaft = SlaftModel.from_pretrained(model, searched)
        log(f"resuming after the search: structure loaded from {searched}")
        trainer = None
    else:
        slaft = get_slaft_model(model, config)
        log(f"candidate space: {slaft.candidate.num_sites} modules, {slaft.candidate.num_params:,} parameters "
            f"({100 * slaft.candidate.num_params / slaft.backbone_params:.1f}% of the "
            f"{slaft.backbone_params:,}-parameter backbone)" + (f"; budget {slaft.target:,}" if slaft.target else ""))
        trainer = trainer_for("search", job.search_epochs, job.learning_rate)
        trainer.train(resume_from_checkpoint=_checkpoint(out / "search", resume, log))
        slaft.discretize()
        slaft.save_pretrained(searched)
    structure = slaft.structure()
    log(f"\n{structure}\n{slaft.parameter_summary()}")
    if not structure.modules:
        log("warning: the sparsity term closed every module, so only the task head was trained. The task signal was "
            "weaker than the penalty: lower --sparsity-weight, search longer (--search-epochs), lengthen "
            "--penalty-warmup-ratio, or name a budget with --target-params.")

    if job.finetune_epochs > 0 and structure.modules:
        trainer = trainer_for("finetune", job.finetune_epochs, job.finetune_learning_rate or job.learning_rate / 2)
        trainer.train(resume_from_checkpoint=_checkpoint(out / "finetune", resume, log))
    trainer = trainer or trainer_for("search", job.search_epochs, job.learning_rate)  # evaluation only
    train_seconds = time.perf_counter() - start

    slaft.eval()
    scores = {"validation": evaluate(trainer, data, tokenized, data.eval_split)}
    if data.test_split:
        scores["test"] = evaluate(trainer, data, tokenized, data.test_split)
    slaft.save_pretrained(out / "adapter", extra={"task": data.spec.name, "data_dir": job.data_dir,
                                                  "max_length": job.max_length})
    tokenizer.save_pretrained(out / "adapter")
    metrics = {**_metrics_record(job, data, slaft, scores, train_seconds), "resumed": resume}
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    atomic_write_text(out / "structure.json", json.dumps(structure.to_dict(), indent=2) + "\n")
    plot_structure(structure, slaft.candidate, out / "structure.png", title=f"{job.model} on {data.spec.name}")
    return metrics


def _metrics_record(job: TrainJob, data: TaskData, slaft: SlaftModel, scores: dict, seconds: float) -> dict:
    summary = slaft.parameter_summary()
    structure = slaft.structure()
    return {
        "task": data.spec.name,
        "model": job.model,
        "metric": data.spec.main_metric,
        "eval": scores["validation"],
        "test": scores.get("test"),
        "params": {"backbone": summary.backbone, "candidate": summary.candidate, "kept": summary.kept,
                   "head": summary.head},
        "sites": {"candidate": slaft.candidate.num_sites, "kept": structure.num_sites},
        "linear_modules_kept": sum(m.is_linear for m in structure.modules),
        "train_seconds": round(seconds, 1),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
        "command": job.command,
        "job": dataclasses.asdict(job),
        "slaft_config": slaft.slaft_config.to_dict(),
    }
