"""The `slaft train` job as one readable function: load, search and train in one Trainer run, evaluate, save.

    <output_dir>/checkpoints/checkpoint-N/   Trainer checkpoints (slaft adapter files + optimizer, scheduler, RNG)
    <output_dir>/adapter/                    the learned structure's adapter, tokenizer and label names
    <output_dir>/metrics.json, structure.json, structure.png
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from transformers import DataCollatorWithPadding, TrainingArguments, set_seed
from transformers.utils import logging as hf_logging

from . import compat
from .causal_lm import CausalCollator, evaluate_causal, tokenize_causal
from .config import ConfigError, SlaftConfig, list_entries
from .data import DataError, TaskData, load_task, tokenize_task
from .evaluation import evaluate
from .io import atomic_write_text, read_payload
from .loading import load_model_and_tokenizer
from .model import SlaftModel, get_slaft_model
from .plots import plot_structure
from .runs import latest_checkpoint, prepare_output_dir, safe_name
from .structure import Structure
from .training import SlaftTrainer
from .warm_start import init_from_peft

OBJECTIVES = ("classification", "causal-lm")
BACKBONE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
MIN_FREE_BYTES = 200 * 2**20  # checkpoints of the largest bundled search space, twice over, plus outputs
MAX_EPOCHS = 10_000
# What `slaft eval` needs to load the run's own data again.
DATA_FIELDS = ("task", "data_dir", "train_file", "validation_file", "test_file", "text_columns", "label_column",
               "num_labels", "seed")


@dataclass
class TrainJob:
    """Everything `slaft train` needs besides the SlaftConfig. Defaults are the bundled main job."""

    model: str = field(default="minilm", metadata={"help": "minilm, smollm2, a hub id or a local directory."})
    objective: str = field(default="classification", metadata={
        "help": "classification (a task head on the model) or causal-lm (a decoder answers each prompt with the "
                "class name; loss on the answer tokens, scored by answer log-likelihood)."})
    task: str = field(default="bbcnews", metadata={"help": "bbcnews (embedded default), a GLUE task name, or csv / "
                                                           "json with --train-file."})
    tasks: Optional[list[str]] = field(default=None, metadata={
        "help": "Several tasks for one multi-task run (one backbone, a shared pool, a structure per task): task "
                "names, comma- or space-separated, or NAME=FILE for your own CSV/JSON data."})
    data_dir: Optional[str] = field(default=None, metadata={"help": "Directory of GLUE tasks as <task>/<split>.jsonl "
                                                                    "(e.g. ../shared/data/glue). Default: the hub."})
    train_file: Optional[str] = field(default=None, metadata={"help": "CSV/TSV/JSON Lines training file."})
    validation_file: Optional[str] = field(
        default=None, metadata={"help": "Validation file (default: a seeded tenth of the training file)."})
    test_file: Optional[str] = field(default=None, metadata={"help": "Labelled test file, scored at the end."})
    text_columns: Optional[list[str]] = field(default=None, metadata={"help": "Text column(s) of your files: one, "
                                                                               "or two for sentence pairs."})
    label_column: str = field(default="label", metadata={"help": "Label column of your files."})
    num_labels: Optional[int] = field(default=None, metadata={"help": "Classes of your task (1 = regression). "
                                                                      "Default: read from the training labels."})
    max_train_samples: Optional[int] = field(default=None, metadata={"help": "Seeded subsample of the training "
                                                                             "split."})
    output_dir: Optional[str] = field(default=None, metadata={"help": "Where the run writes. Default: "
                                                                      "runs/<task>-<model>."})
    epochs: float = field(default=3.0, metadata={"help": "Training epochs, the structure search included."})
    batch_size: int = field(default=16, metadata={"help": "Training batch size."})
    eval_batch_size: int = field(default=64, metadata={"help": "Evaluation batch size."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Peak learning rate of adapter weights and head."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay of adapter weights and head."})
    warmup_ratio: float = field(default=0.06, metadata={"help": "Fraction of steps of linear learning-rate warm-up."})
    max_length: int = field(default=128, metadata={"help": "Tokens per example; longer texts are truncated."})
    seed: int = field(default=42, metadata={"help": "Seed of the data split, initialisation and training order."})
    group_by_length: bool = field(default=False, metadata={
        "help": "Batch examples of similar length together (the Trainer's length-grouped sampler): less padding to "
                "compute on texts of varied length; the order stays seeded."})
    bf16: bool = field(default=False, metadata={"help": "bf16 mixed precision (GPU)."})
    backbone_dtype: str = field(default="float32", metadata={"help": "float32, or bfloat16 to hold the frozen "
                                                                     "backbone in half the memory (adapters stay "
                                                                     "float32)."})
    logging_steps: int = field(default=10, metadata={"help": "Log every N optimizer steps."})
    save_steps: int = field(default=50, metadata={"help": "Checkpoint every N optimizer steps (for --resume)."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code from the hub."})
    init_from: Optional[str] = field(default=None, metadata={"help": "A peft LoRA adapter directory whose weights "
                                                                     "start slaft's low-rank candidates (and head)."})
    label_noise: float = field(default=0.0, metadata={"help": "Fraction of training labels replaced by another "
                                                                  "label (regression: Gaussian noise of this fraction "
                                                                  "of the targets' spread), to measure robustness."})
    input_noise: Optional[str] = field(default=None, metadata={"help": "Noise on training inputs: token (random "
                                                                       "token replacement) or embedding (Gaussian)."})
    input_noise_ratio: float = field(default=0.1, metadata={"help": "Token replacement probability, or embedding "
                                                                    "noise relative to each embedding's RMS."})

    def __post_init__(self) -> None:
        if self.text_columns is not None:
            self.text_columns = tuple(self.text_columns)
        positive = ("epochs", "batch_size", "eval_batch_size", "learning_rate", "max_length", "logging_steps",
                    "save_steps")
        for name in positive:
            value = getattr(self, name)
            if not value > 0 or value != value or value == float("inf"):
                raise ConfigError(f"{name} must be a positive, finite number, got {value}.")
        if self.epochs > MAX_EPOCHS:
            raise ConfigError(f"epochs={self.epochs:g} is more than {MAX_EPOCHS:,}; pass the number of passes over the "
                              "training data you mean.")
        if self.learning_rate > 1:
            raise ConfigError(f"learning_rate={self.learning_rate:g} is far above any rate Adam trains with (1e-5 to "
                              "1e-2); pass a smaller one.")
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed must be in [0, 2**32), got {self.seed}.")
        from .robustness.noise import INPUT_NOISE_KINDS, check_ratio

        check_ratio("label_noise", self.label_noise)
        check_ratio("input_noise_ratio", self.input_noise_ratio)
        if self.input_noise is not None and self.input_noise not in INPUT_NOISE_KINDS:
            raise ConfigError(f"Unknown input_noise {self.input_noise!r}; choose one of {INPUT_NOISE_KINDS}.")
        if self.max_length < 2:
            raise ConfigError(f"max_length must be at least 2 tokens, got {self.max_length}.")
        if not 0 <= self.weight_decay < 1:
            raise ConfigError(f"weight_decay must be in [0, 1), got {self.weight_decay}.")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}.")
        if self.max_train_samples is not None and self.max_train_samples < 1:
            raise ConfigError(f"max_train_samples must be >= 1, got {self.max_train_samples}.")
        if self.num_labels is not None and self.num_labels < 1:
            raise ConfigError(f"num_labels must be 1 (regression) or the number of classes, got {self.num_labels}.")
        if self.backbone_dtype not in BACKBONE_DTYPES:
            raise ConfigError(f"Unknown backbone_dtype {self.backbone_dtype!r}; choose one of "
                              f"{', '.join(BACKBONE_DTYPES)}.")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"Unknown objective {self.objective!r}; choose one of {', '.join(OBJECTIVES)}.")
        if self.output_dir is None:
            what = self.task if not self.tasks else "multitask-" + "-".join(
                name for name, _, _ in list_entries(self.tasks))
            self.output_dir = str(Path("runs") / safe_name(f"{what}-{Path(self.model).name}"))


def training_arguments(job: TrainJob, output_dir: Path) -> TrainingArguments:
    return compat.training_arguments(
        str(output_dir), num_train_epochs=job.epochs, per_device_train_batch_size=job.batch_size,
        per_device_eval_batch_size=job.eval_batch_size, learning_rate=job.learning_rate,
        weight_decay=job.weight_decay, warmup_ratio=job.warmup_ratio, lr_scheduler_type="linear",
        logging_steps=job.logging_steps, save_strategy="steps", save_steps=job.save_steps, save_total_limit=2,
        report_to=[], seed=job.seed, bf16=job.bf16, group_by_length=job.group_by_length,
        remove_unused_columns=False, dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(), disable_tqdm=False,
    )


def model_for_checkpoint(base, config: SlaftConfig, checkpoint: str | None) -> SlaftModel:
    """A SlaftModel with the structure a checkpoint was saved in (the candidate space while it was searching, the
    decided structure after), ready for the Trainer to load the checkpoint's weights and optimizer state into."""
    if checkpoint is not None:
        payload = read_payload(checkpoint)
        if payload.get("phase") == "discrete":
            model = get_slaft_model(base, config, Structure.from_dict(payload["structure"]))
            model.decided_at_step = payload.get("decided_at_step")
            return model
    return get_slaft_model(base, config)


def _label_names(model, data: TaskData) -> None:
    """Class names travel with the model config, so exports and transformers pipelines name classes."""
    names = data.spec.label_names
    if names and not data.spec.is_regression:
        model.config.id2label = dict(enumerate(names))
        model.config.label2id = {name: i for i, name in enumerate(names)}


def run_train(job: TrainJob, config: SlaftConfig | None = None, *, log=print, resume: bool = False,
              overwrite: bool = False, command: str | None = None) -> dict:
    """Run the whole job; returns the metrics dict also written to ``<output_dir>/metrics.json``.

    Checkpoints go through the Trainer; ``resume=True`` continues a killed run from its last complete checkpoint
    and, with the same seed, ends where an uninterrupted run ends.
    """
    if job.tasks:
        raise ConfigError("This job names several --tasks: train it with slaft.multitask.pipeline."
                          "run_train_multitask (what `slaft train --tasks` runs).")
    config = copy.deepcopy(config) if config is not None else SlaftConfig()  # the caller's stays as it was
    out = Path(job.output_dir)
    prepare_output_dir(out, resume=resume, overwrite=overwrite, needed_bytes=MIN_FREE_BYTES)
    set_seed(job.seed)
    hf_logging.set_verbosity_error()

    data = load_task(job.task, data_dir=job.data_dir, train_file=job.train_file, validation_file=job.validation_file,
                     test_file=job.test_file, text_columns=job.text_columns, label_column=job.label_column,
                     num_labels=job.num_labels, seed=job.seed, max_train_samples=job.max_train_samples)
    if "train" not in data.splits:
        raise DataError(f"Task {data.spec.name!r} has no train split here; pass --train-file or a --data-dir that "
                        "holds train.jsonl.")
    log(f"task {data.spec.name}: " + ", ".join(f"{k} {len(v):,}" for k, v in data.splits.items()))
    noise = {}
    if job.label_noise > 0:
        from .robustness.noise import label_noise

        data.splits["train"], report = label_noise(data.splits["train"], data.spec, job.label_noise, job.seed)
        noise["label"] = report.to_dict()
        log(f"label noise: {report.changed:,} of {report.total:,} training labels changed")
    causal = job.objective == "causal-lm"
    base, tokenizer = load_model_and_tokenizer(job.model, data.spec.num_labels, trust_remote_code=job.trust_remote_code,
                                               causal_lm=causal, dtype=BACKBONE_DTYPES[job.backbone_dtype])
    positions = getattr(base.config, "max_position_embeddings", None)
    if positions is not None and job.max_length > positions:
        raise ConfigError(f"max_length={job.max_length} is longer than {job.model} can read ({positions} positions); "
                          f"pass --max-length {positions} or less.")
    if not causal:
        _label_names(base, data)
    tokenized = (tokenize_causal if causal else tokenize_task)(data, tokenizer, job.max_length)
    config.base_model_name_or_path = job.model

    def score(model, split: str) -> dict[str, float]:
        if causal:
            return evaluate_causal(model, data.spec, tokenized[split], tokenizer, job.max_length,
                                   batch_size=job.eval_batch_size)
        return evaluate(model, data.spec, tokenized[split], tokenizer, batch_size=job.eval_batch_size)

    before, untuned = None, out / "untuned.json"  # what the untuned model answers, for comparison (causal LM)
    if causal and resume and untuned.is_file():
        before = json.loads(untuned.read_text())
    elif causal:
        before = score(base, data.eval_split)
        atomic_write_text(untuned, json.dumps(before) + "\n")
        log(f"untuned {job.model}: " + ", ".join(f"{k} {v:.4f}" for k, v in before.items()))

    checkpoint = latest_checkpoint(out / "checkpoints") if resume else None
    if checkpoint:
        log(f"resuming from {checkpoint}")
    slaft = model_for_checkpoint(base, config, checkpoint)
    if job.init_from and checkpoint is None:
        log(init_from_peft(slaft, job.init_from))
    log(f"candidate space: {slaft.candidate.num_sites} modules, {slaft.candidate.num_params:,} parameters "
        f"({100 * slaft.candidate.num_params / slaft.backbone_params:.1f}% of the {slaft.backbone_params:,}-parameter "
        "backbone)" + (f"; budget {slaft.target:,}" if slaft.target else ""))
    if job.input_noise is not None:
        from .robustness.noise import InputNoise

        InputNoise(base, job.input_noise, job.input_noise_ratio, seed=job.seed, special_ids=tokenizer.all_special_ids)
        noise["input"] = {"kind": job.input_noise, "ratio": job.input_noise_ratio}
    trainer = SlaftTrainer(model=slaft, args=training_arguments(job, out / "checkpoints"),
                           train_dataset=tokenized["train"],
                           data_collator=CausalCollator(tokenizer) if causal else DataCollatorWithPadding(tokenizer))
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=checkpoint)
    train_seconds = time.perf_counter() - start
    structure = slaft.discretize()  # already decided inside the run unless search_end is 1
    log(f"\n{structure}\n{slaft.parameter_summary()}")
    if not structure.modules:
        log("warning: the search kept no module, so only the task head was trained. Lower --sparsity-weight or "
            "name a budget with --target-params.")

    scores = {"validation": score(slaft, data.eval_split)}
    if data.test_split:
        scores["test"] = score(slaft, data.test_split)
    extra = {"task": data.spec.name, "max_length": job.max_length, "scores": scores, "objective": job.objective,
             "data": {key: getattr(job, key) for key in DATA_FIELDS}}
    slaft.save_pretrained(out / "adapter", extra=extra)
    tokenizer.save_pretrained(out / "adapter")
    metrics = {**_metrics_record(job, data, slaft, scores, train_seconds), "resumed": bool(checkpoint),
               "command": command, "noise": noise, "objective": job.objective,
               **({"untuned": before} if before is not None else {})}
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
        "job": dataclasses.asdict(job),
        "slaft_config": slaft.slaft_config.to_dict(),
    }
