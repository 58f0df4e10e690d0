"""One benchmark run (method, task, seed, learning rate) in its own process: build, train, evaluate, export, measure.

    python -m benchmarks.harness.worker SPEC.json RECORD.json

The harness starts one worker per run, so each run's peak RSS is its own and a crash costs one run. The worker
writes its record to RECORD.json; the harness appends it to the suite's results file.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from slaft import compat
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments, set_seed
from transformers.utils import logging as hf_logging

from slaft.causal_lm import CausalCollator, evaluate_causal, tokenize_causal
from slaft.data import compute_metrics, tokenize_task
from slaft.evaluation import evaluate
from slaft.loading import load_model_and_tokenizer

from .environment import code_revision, device_description, version, versions
from .heads import use_head
from .measure import MemoryMeter, StepTimer, compare_latency, logits_of, median_step_seconds, stored_size
from .methods import get_method
from .methods.protocol import RunContext, head_parameters, trainable_parameters
from .robustness import add_training_noise, noise_fields, perturbed_scores
from .suites import SUITES, Suite
from .tasks import load_benchmark_task


class _PhaseClock:
    """Wall seconds per phase of the run, for estimating suite costs (imports: the record's wall_seconds minus
    these)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self.last, 2)
        self.last = now


def _cap(dataset, limit: int | None):
    return dataset.select(range(min(limit, len(dataset)))) if limit else dataset


LOG_STEPS = 25  # the training loss is logged (and kept in the record's loss_curve) every this many optimizer steps


def _training_args(suite: Suite, out: Path, epochs: float, lr: float, seed: int, per_epoch: bool,
                   log_steps: int = LOG_STEPS) -> TrainingArguments:
    return compat.training_arguments(
        str(out),         eval_strategy="epoch" if per_epoch else "no",
        num_train_epochs=epochs, learning_rate=lr,
        per_device_train_batch_size=suite.batch_size, per_device_eval_batch_size=suite.eval_batch_size,
        weight_decay=suite.weight_decay, warmup_ratio=suite.warmup_ratio, lr_scheduler_type="linear",
        seed=seed, bf16=suite.bf16, use_cpu=suite.device == "cpu", label_names=["labels"],
        remove_unused_columns=False, dataloader_num_workers=0, save_strategy="no", report_to=[],
        logging_steps=log_steps, disable_tqdm=True, group_by_length=suite.group_by_length,
    )


def _load(suite: Suite, task: str, seed: int, data_dir: str):
    """The task's splits (train subsampled the same way for every run), a fresh task model, tokenized data."""
    data = load_benchmark_task(task, data_dir=data_dir, seed=suite.data_seed,
                               max_train_samples=suite.max_train_samples.get(task))
    for split in [s for s in data.splits if s != "train"]:
        data.splits[split] = _cap(data.splits[split], suite.max_eval_samples)
    set_seed(seed)  # the head and the adapters are initialised from the run's seed
    model, tokenizer = _task_model(suite, data.spec.num_labels)
    noise = add_training_noise(suite, data, model, tokenizer, seed)
    tokenize = tokenize_causal if suite.causal else tokenize_task
    return data, model, tokenizer, tokenize(data, tokenizer, suite.max_length), noise


def _task_model(suite: Suite, num_labels: int):
    """A fresh model as the suite trains it: a classifier with the suite's head, or (causal-LM suites) the decoder
    with its language-model head."""
    model, tokenizer = load_model_and_tokenizer(suite.model, num_labels, causal_lm=suite.causal)
    if not suite.causal:
        use_head(model, suite.head)
    return model, tokenizer


def _value_size(config) -> int:
    """The value projection's output width: the hidden size, or fewer heads' worth under grouped-query attention."""
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return (getattr(config, "num_key_value_heads", None) or heads) * head_dim


def _inference(method, model, suite: Suite, batch: dict, scratch: Path, device: str, timed: bool) -> dict:
    """Export the trained model, count what was stored, check the export's outputs, and (``timed``) time it
    against the base."""
    trained_logits = logits_of(model, batch)
    export = method.export(model, scratch / "export")
    stored_params, stored_bytes = stored_size(export.directory)
    exported = export.inference_model.to(device).eval()
    export_diff = float((logits_of(exported, batch) - trained_logits).abs().max())
    latency_ms = base_latency_ms = None
    if timed:
        base = _task_model(suite, model.config.num_labels)[0].to(device).eval()
        latency_ms, base_latency_ms = compare_latency(exported, base, batch, repeats=suite.latency_repeats,
                                                      bf16=suite.bf16 and device == "cuda")
    return {
        "stored_params": stored_params, "adapter_file_bytes": stored_bytes, "merged": export.merged,
        "export_max_abs_diff": export_diff, "latency_ms": latency_ms, "base_latency_ms": base_latency_ms,
        "latency_ratio_vs_base": latency_ms / base_latency_ms if timed else None,
        "latency_batch_shape": list(batch["input_ids"].shape), "export_details": export.details,
    }


def run(spec: dict, scratch: Path) -> dict:
    clock = _PhaseClock()
    # taken now, from the code this process imported: the work tree may move to another commit during a long run
    provenance = {"versions": versions(), "code_revision": code_revision()}
    suite, method = SUITES[spec["suite"]], get_method(spec["method"])
    task, seed, lr = spec["task"], int(spec["seed"]), float(spec["lr"])
    hf_logging.set_verbosity_error()
    device = "cuda" if suite.device == "cuda" and torch.cuda.is_available() else "cpu"
    if suite.device == "cuda" and device != "cuda":
        raise RuntimeError(f"suite {suite.name!r} needs a CUDA device and none is visible")
    data, model, tokenizer, tokenized, noise = _load(suite, task, seed, spec["data_dir"])
    # A learning-rate search run only needs its score: no per-epoch validation, no latency measurement.
    searching = spec["stage"] == "lr_search"
    per_epoch = suite.eval_each_epoch and not searching
    collator = CausalCollator(tokenizer) if suite.causal else DataCollatorWithPadding(tokenizer)
    timers: list[StepTimer] = []

    def scores(prediction) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        return compute_metrics(data.spec, np.asarray(logits), np.asarray(prediction.label_ids))

    def make_trainer(m, epochs, rate, *, trainer_cls=Trainer, callbacks=None, phase="train"):
        timer = StepTimer(phase)
        timers.append(timer)
        args = _training_args(suite, scratch / phase, epochs, rate, seed, per_epoch, spec.get("log_steps", LOG_STEPS))
        return trainer_cls(model=m, args=args,
                           train_dataset=tokenized["train"], data_collator=collator,
                           eval_dataset=tokenized[data.eval_split] if per_epoch else None,
                           compute_metrics=scores if per_epoch else None,
                           callbacks=[*(callbacks or []), timer])

    ctx = RunContext(model_id=suite.model, num_labels=data.spec.num_labels, epochs=suite.epochs_for(task), lr=lr,
                     seed=seed,
                     steps_per_epoch=math.ceil(len(tokenized["train"]) / suite.batch_size),
                     make_trainer=make_trainer, num_layers=model.config.num_hidden_layers,
                     hidden_size=model.config.hidden_size, slaft_settings=dict(suite.slaft_settings),
                     intermediate_size=getattr(model.config, "intermediate_size", None),
                     value_size=_value_size(model.config), objective=suite.objective,
                     model_type=model.config.model_type)
    backbone, head = sum(p.numel() for p in model.parameters()), head_parameters(model)
    trainable_model = method.build(model, ctx)
    trainable = trainable_parameters(trainable_model)
    clock.lap("setup")

    meter = MemoryMeter(device)
    meter.start()
    start, cpu_start = time.perf_counter(), time.process_time()
    trainer = method.train(trainable_model, ctx)
    train_seconds, train_cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    peak_mb, train_increment_mb = meter.peak()
    details = method.details(trainable_model)
    clock.lap("train")

    trainable_model.eval()
    def score(split) -> dict[str, float]:  # slaft's one evaluation path, for every method
        rows = tokenized[split] if isinstance(split, str) else split
        if suite.causal:  # the likeliest class name is the prediction (slaft.causal_lm)
            return evaluate_causal(trainable_model, data.spec, rows, tokenizer, suite.max_length,
                                   batch_size=suite.eval_batch_size, progress=False)
        return evaluate(trainable_model, data.spec, rows, tokenizer, batch_size=suite.eval_batch_size, progress=False)

    validation = score(data.eval_split)
    test = score(data.test_split) if data.test_split else None
    perturbed = perturbed_scores(suite, data, tokenizer, model.get_input_embeddings().weight, seed,
                                 lambda rows: score(rows)[data.spec.main_metric])
    clock.lap("evaluate")

    # Export checks and latency use one fixed batch: the first validation examples, padded together.
    rows = tokenized[data.eval_split].select(range(min(suite.latency_batch, len(tokenized[data.eval_split]))))
    batch = {k: v.to(device) for k, v in collator([dict(r) for r in rows]).items() if k != "labels"}
    inference = _inference(method, trainable_model, suite, batch, scratch, device, timed=not searching)
    details.update(inference.pop("export_details"))
    clock.lap("export_and_latency")

    steps = [d for t in timers for d in t.durations]
    by_phase = {t.phase: median_step_seconds(t.durations) for t in timers}
    decision = details.get("slaft_decision_step")
    if decision:  # slaft: steps while searching (the whole candidate space) and after the decision
        by_phase.update(search=median_step_seconds(steps[:decision]), decided=median_step_seconds(steps[decision:]))
    metric = data.spec.main_metric
    summary = [h for h in trainer.state.log_history if "train_loss" in h]
    curve = [[round(h["epoch"], 3), h[f"eval_{metric}"]] for h in trainer.state.log_history if f"eval_{metric}" in h]
    return {
        "status": "ok",
        "suite": suite.name, "protocol": suite.protocol, "head": suite.head, "stage": spec["stage"],
        "method": method.name, "label": method.label,
        "family": method.family, "library": f"{method.library} {version(method.library)}",
        "task": data.spec.name, "seed": seed, "lr": lr, "metric": metric,
        "score": validation[metric], "test_score": test[metric] if test else None,
        "validation": validation, "test": test,
        "train_examples": len(tokenized["train"]), "validation_examples": len(tokenized[data.eval_split]),
        "test_examples": len(tokenized[data.test_split]) if data.test_split else 0,
        "backbone_params": backbone, "trainable_params": trainable, **inference, "head_params": head,
        # What a method stores beyond the head every method trains (and stores) alike.
        "adapter_params": inference["stored_params"] - head,
        "train_seconds": round(train_seconds, 2), "steps": len(steps),
        # CPU time (all threads) says what a run costs when other jobs share the machine and wall time lies.
        "train_cpu_seconds": round(train_cpu_seconds, 2), "process_cpu_seconds": round(time.process_time(), 2),
        "step_seconds": median_step_seconds(steps),
        "step_seconds_by_phase": by_phase,
        "search_step_seconds": by_phase.get("search"),  # slaft: a step over the whole candidate space
        "train_loss": summary[-1]["train_loss"] if summary else None,  # mean loss of the (last) training phase
        "validation_curve": curve,  # [epoch, validation score] after every epoch (suites with eval_each_epoch)
        # [optimizer step, mean training loss since the last entry], every LOG_STEPS: when a run diverged
        "loss_curve": [[h["step"], round(h["loss"], 4)] for h in trainer.state.log_history if "loss" in h],
        "peak_memory_mb": round(peak_mb, 1),
        "train_memory_mb": round(train_increment_mb, 1) if train_increment_mb is not None else None,
        "memory_kind": "cuda_max_allocated" if device == "cuda" else "process_peak_rss",
        "device": device_description(device), "threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()],  # > cores at the end: timings were shared
        **provenance, "recipe": suite.recipe(), "details": details,
        "phase_seconds": clock.laps,
        # Robustness suites: the sweep this run is a point of, its training noise and its perturbed scores.
        "sweep": suite.sweep, **noise_fields(suite), "noise": noise, "perturbed": perturbed,
        "sparsity_weight": details.get("slaft_config", {}).get("sparsity_weight"),
        "target_params": details.get("slaft_target_params"),
        "kept_params": details.get("slaft_kept_params", inference["stored_params"] - head),
        "kept_sites": details.get("slaft_modules"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec_path, record_path = Path(argv[0]), Path(argv[1])
    # Trainer dirs and exports live beside the record: under the harness's temporary directory, which the harness
    # removes even when it had to kill this process.
    with tempfile.TemporaryDirectory(prefix="slaft-bench-", dir=record_path.parent) as scratch:
        record = run(json.loads(spec_path.read_text()), Path(scratch))
    record_path.write_text(json.dumps(record, allow_nan=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
