"""The multi-task benchmark (suites ``mt2``, ``mt3``): one model for the four tasks of protocol 2, against
single-task cpu2.

    python -m benchmarks.harness.multitask --plan          # what is still to run
    python -m benchmarks.harness.multitask --jobs 2        # run (or resume) it
    python -m benchmarks.harness.multitask --suite mt3     # the same with cpu2's per-task epochs and length grouping
    python -m benchmarks.harness.multitask --suite mt-quick  # the pipeline check: a few steps (a test runs it)

Two multi-task methods train one MiniLM on CoLA, SST-2, STS-B and BBC News at once, with cpu2's data, head, batch
size, schedule and three epochs over every task's training set (the same optimizer steps in total as the four
single-task runs together, except CoLA's second three epochs: see mt3), batches of one task each, drawn in
proportion to the tasks' sizes:

* ``slaft-multitask``: slaft's shared pool; each task's structure within LoRA r=8 (q,v)'s size (as cpu2's
  ``slaft-budget-lora``), the stored pool within half the sum of the four budgets (a unit several tasks keep counts
  once); the pooler is shared, the classifier is per task.
* ``slaft-multitask-pool1``: the same with the pool allowed the whole sum of the budgets, so no task has to share a
  unit (tasks still share the ones they both choose). Two diagnostics of what costs CoLA its score:
  ``slaft-multitask-private`` (every site task-private: no unit shared, only the backbone and the pooler) and
  ``slaft-multitask-own-pooler`` (the pool of ``-pool1``, and a pooler per task). ``slaft-multitask-hold`` is
  ``slaft-multitask`` with ``hold_idle_units``: on each step the units and heads the step's task does not use keep
  their values and Adam's moments, instead of drifting on momentum through the other tasks' steps. The variants take
  the rate ``slaft-multitask`` chose.
* ``peft-lora-shared``: one peft LoRA r=8 (q,v) adapter shared by all tasks, the same shared pooler and per-task
  classifiers.

``mt3`` trains ``slaft-multitask`` and ``peft-lora-shared`` as mt2 does, at the rates they chose in mt2, with the two
parts of cpu2's single-task recipe that mt2 left out: CoLA gets two passes over its examples per epoch (its six
single-task epochs against three for the others; in mt2 every task had three, so the multi-task runs had fewer steps
in total than the four single-task runs), and each task's batches are grouped by length (``group_by_length``, which
every cpu2 run has; mt2's multi-task sampler drew batches at random lengths).

Rates are searched on the selection seed (100) as in cpu2, the grid extended past an edge while the best rate sits
there; the reported seeds are those every compared method has in cpu2. The single-task comparisons (slaft at LoRA's
size, LoRA q,v per task) are cpu2's own records. Records go to ``results/<suite>/``; one run = one line, keyed like
every other suite (its "task" is the joined task list).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from slaft.sites import SITE_NAMES

from .methods.slaft_methods import FFN_ADAPTER_SPACE, RECORDED_DEFAULTS  # the space and settings mt2 and mt3 ran in

TASKS = ("cola", "sst2", "stsb", "bbcnews")
# slaft's variants: how the pool is shared (MultiTaskConfig settings)
SLAFT_VARIANTS = {
    "slaft-multitask": {"pool_share": 0.5},
    "slaft-multitask-pool1": {"pool_share": 1.0},
    "slaft-multitask-private": {"pool_share": 1.0, "private_sites": SITE_NAMES},
    "slaft-multitask-own-pooler": {"pool_share": 1.0, "shared_heads": False},
    "slaft-multitask-hold": {"pool_share": 0.5, "hold_idle_units": True},
}
METHODS = (*SLAFT_VARIANTS, "peft-lora-shared")
LR_FROM = {m: "slaft-multitask" for m in SLAFT_VARIANTS if m != "slaft-multitask"}  # variants take its rate


@dataclasses.dataclass(frozen=True)
class MultiTaskSuite:
    name: str
    base: str                     # the single-task suite whose data, head and recipe it shares
    grid: tuple[float, ...]
    selection_seed: int
    seeds: tuple[int, ...]
    max_train_samples: int | None = None  # a cap on every task (pipeline checks only)
    max_extensions: int = 3  # rates added beyond an edge of the grid while the best rate sits there (as cpu2)
    timeout_s: int = 4 * 3600
    methods: tuple[str, ...] = METHODS
    # The single-task recipe's per-task epochs as passes (CoLA twice per epoch under cpu2) and its length grouping;
    # mt2 had neither: every task one pass per epoch, batches drawn at random lengths.
    single_task_recipe: bool = False
    lr_suite: str | None = None   # no search: each method trains at the rate it chose in this suite

    def task_passes(self, base) -> dict[str, float]:
        """{task: passes per epoch} (only tasks that differ from 1)."""
        if not self.single_task_recipe:
            return {}
        passes = {task: base.epochs_for(task) / base.epochs for task in TASKS}
        return {task: p for task, p in passes.items() if p != 1}


SUITES_MT = {
    "mt2": MultiTaskSuite("mt2", "cpu2", (1e-3, 3e-3), 100, (2, 3, 4)),
    "mt3": MultiTaskSuite("mt3", "cpu2", (), 100, (2, 3, 4), methods=("slaft-multitask", "peft-lora-shared"),
                          single_task_recipe=True, lr_suite="mt2"),
    "mt-quick": MultiTaskSuite("mt-quick", "quick", (1e-3,), 0, (0,), max_train_samples=48, timeout_s=900,
                               single_task_recipe=True, methods=("slaft-multitask", "peft-lora-shared")),
}


def _load_tasks(suite, data_dir: str, cap: int | None):
    from slaft.data import load_task

    tasks = []
    for task in TASKS:
        data = load_task(task, data_dir=data_dir, seed=suite.data_seed,
                         max_train_samples=cap or suite.max_train_samples.get(task))
        for split in [s for s in data.splits if s != "train"]:
            if suite.max_eval_samples:
                rows = data.splits[split]
                data.splits[split] = rows.select(range(min(suite.max_eval_samples, len(rows))))
        tasks.append(data)
    return tasks


def _build(method: str, base, infos, ctx_params: int, model_id: str):
    """The multi-task model of ``method`` around ``base`` (its heads: the shared pooler, per-task classifiers)."""
    from slaft import SlaftConfig
    from slaft.multitask import MultiTaskConfig, MultiTaskSlaftModel
    from slaft.structure import Structure

    if method in SLAFT_VARIANTS:
        config = SlaftConfig(target_params=ctx_params, sites=FFN_ADAPTER_SPACE, **RECORDED_DEFAULTS,
                             base_model_name_or_path=model_id)
        return MultiTaskSlaftModel(base, config, infos, MultiTaskConfig(**SLAFT_VARIANTS[method]))
    from peft import LoraConfig, inject_adapter_in_model

    layers = base.config.num_hidden_layers
    model = MultiTaskSlaftModel(base, SlaftConfig(base_model_name_or_path=model_id), infos,
                                pool=Structure([], discrete=True, num_layers=layers))
    heads = [p for p in model.parameters() if p.requires_grad]  # the shared pooler and the per-task classifiers
    inject_adapter_in_model(LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["query", "value"]),
                            model.base_model)
    for parameter in heads:  # peft marks only its adapters trainable: the heads train for every method
        parameter.requires_grad_(True)
    return model


def _adapter_params(method: str, model) -> int:
    if method in SLAFT_VARIANTS:
        return model.pool_params()
    return sum(p.numel() for n, p in model.base_model.named_parameters() if "lora_" in n)


def run(spec: dict, scratch: Path) -> dict:
    import torch
    from transformers import DataCollatorWithPadding, set_seed
    from transformers.utils import logging as hf_logging

    from slaft.data import tokenize_task
    from slaft.evaluation import evaluate
    from slaft.loading import load_model_and_tokenizer
    from slaft.multitask import MultiTaskDataset, MultiTaskTrainer, TaskInfo

    from .environment import code_revision, device_description, versions
    from .heads import use_head
    from .suites import SUITES
    from .worker import _training_args

    provenance = {"versions": versions(), "code_revision": code_revision()}  # the imported code's, as worker.run
    hf_logging.set_verbosity_error()
    mt_suite = SUITES_MT[spec["suite"]]
    suite = SUITES[mt_suite.base]
    method, seed, lr = spec["method"], int(spec["seed"]), float(spec["lr"])
    tasks = _load_tasks(suite, spec["data_dir"], mt_suite.max_train_samples)
    set_seed(seed)
    base, tokenizer = load_model_and_tokenizer(suite.model, 2)
    use_head(base, suite.head)
    tokenized = [tokenize_task(data, tokenizer, suite.max_length) for data in tasks]
    infos = [TaskInfo(d.spec.name, d.spec.num_labels) for d in tasks]
    lora_qv = base.config.num_hidden_layers * 2 * 8 * 2 * base.config.hidden_size
    model = _build(method, base, infos, lora_qv, suite.model)
    backbone = model.backbone_params
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    args = _training_args(dataclasses.replace(suite, group_by_length=mt_suite.single_task_recipe), scratch / "train",
                          suite.epochs, lr, seed, per_epoch=False)
    passes = mt_suite.task_passes(suite)
    trainer = MultiTaskTrainer(model=model, args=args, data_collator=DataCollatorWithPadding(tokenizer),
                               train_dataset=MultiTaskDataset([splits["train"] for splits in tokenized]),
                               task_passes=[passes.get(task, 1.0) for task in TASKS])
    start, cpu_start = time.perf_counter(), time.process_time()
    trainer.train()
    train_seconds, train_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    if method in SLAFT_VARIANTS:
        model.discretize()
    model.eval()
    scores, tests = {}, {}
    for data, splits in zip(tasks, tokenized):
        model.set_task(data.spec.name)
        metric = data.spec.main_metric
        scores[data.spec.name] = evaluate(model, data.spec, splits[data.eval_split], tokenizer,
                                          batch_size=suite.eval_batch_size, progress=False)[metric]
        if data.test_split:
            tests[data.spec.name] = evaluate(model, data.spec, splits[data.test_split], tokenizer,
                                             batch_size=suite.eval_batch_size, progress=False)[metric]
    heads = model.head_params()
    adapter = _adapter_params(method, model)
    details = {}
    if method in SLAFT_VARIANTS:
        structures = model.task_structures()
        details = {"per_task_params": {n: s.num_params for n, s in structures.items()},
                   "per_task_modules": {n: s.num_sites for n, s in structures.items()},
                   "structures": {n: s.to_dict() for n, s in structures.items()},
                   "candidate": model.candidate.to_dict(),
                   "sharing": model.sharing().tolist(), "decided_at_step": model.decided_at_step}
    return {
        "status": "ok", "suite": mt_suite.name, "protocol": 2, "head": suite.head, "stage": spec["stage"],
        "method": method, "label": LABELS[method], "task": "+".join(TASKS), "tasks": list(TASKS), "seed": seed,
        "lr": lr, "metric": "mean", "score": sum(scores.values()) / len(scores), "scores": scores,
        "test_scores": tests, "metrics": {d.spec.name: d.spec.main_metric for d in tasks},
        "train_examples": {d.spec.name: len(t["train"]) for d, t in zip(tasks, tokenized)},
        "backbone_params": backbone, "trainable_params": trainable, "adapter_params": adapter,
        "shared_params": adapter, "head_params": heads,
        "stored_params": adapter + sum(heads.values()), "lora_qv_params": lora_qv,
        "multitask_config": {k: list(v) if isinstance(v, tuple) else v
                             for k, v in SLAFT_VARIANTS.get(method, {}).items()},
        "train_seconds": round(train_seconds, 2), "train_cpu_seconds": round(train_cpu, 2),
        "steps": trainer.state.global_step,
        "task_losses": [{k: v for k, v in h.items() if k.startswith("loss_") or k == "step"}
                        for h in trainer.state.log_history if any(k.startswith("loss_") for k in h)],
        "device": device_description("cpu"), "threads": torch.get_num_threads(), **provenance,
        # every task trains suite.epochs here, times its passes per epoch (mt2: none, whatever the base suite's
        # per-task epochs; mt3: those epochs, as passes)
        "details": details,
        "recipe": {**suite.recipe(), "epochs_by_task": {t: suite.epochs * p for t, p in passes.items()},
                   "task_passes": passes, "group_by_length": mt_suite.single_task_recipe},
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


LABELS = {"slaft-multitask": "slaft multi-task (pool = ½ Σ budgets)",
          "slaft-multitask-pool1": "slaft multi-task (pool = Σ budgets)",
          "slaft-multitask-private": "slaft multi-task, no shared units (pool = Σ budgets)",
          "slaft-multitask-own-pooler": "slaft multi-task, a pooler per task (pool = Σ budgets)",
          "slaft-multitask-hold": "slaft multi-task, idle units held (pool = ½ Σ budgets)",
          "peft-lora-shared": "LoRA q,v shared"}


def searched_grid(suite: MultiTaskSuite, method: str, records: list[dict]) -> tuple[tuple[float, ...], bool]:
    """(the rates a method's search takes, whether it is complete): the suite's grid, extended beyond an edge while
    the best rate sits there, as in cpu2."""
    from .run import searched_grid as extend

    return extend(suite.grid, records, method, "+".join(TASKS), suite.selection_seed, suite.max_extensions)


def chosen_rate(suite: MultiTaskSuite, method: str, records: list[dict]) -> float | None:
    """The rate a method's reported seeds train at (a variant's: the one its base method chose; with ``lr_suite``, the
    one it chose there, ``records`` being that suite's); None while the search is incomplete."""
    from .records import chosen_lr

    if suite.lr_suite:
        suite = SUITES_MT[suite.lr_suite]
    source = LR_FROM.get(method, method)
    grid, complete = searched_grid(suite, source, records)
    return chosen_lr(records, source, "+".join(TASKS), grid, suite.selection_seed) if complete else None


def search_specs(suite: MultiTaskSuite, methods: tuple[str, ...], records: list[dict] | None = None):
    from .run import RunSpec

    if suite.lr_suite:
        return []
    return [RunSpec(suite.name, method, "+".join(TASKS), suite.selection_seed, lr,
                    "lr_search" if len(suite.grid) > 1 else "final")
            for method in methods if method not in LR_FROM for lr in searched_grid(suite, method, records or [])[0]]


def final_specs(suite: MultiTaskSuite, records: list[dict], seeds: tuple[int, ...], methods: tuple[str, ...]):
    """Each method's reported seeds at the rate its search (or its base method's) chose (none while the search is
    incomplete); ``records``: the records of the suite that searched (``lr_suite`` where there is one)."""
    from .run import RunSpec

    todo = []
    for method in methods:
        lr = chosen_rate(suite, method, records)
        if lr is not None:
            todo += [RunSpec(suite.name, method, "+".join(TASKS), seed, lr, "final") for seed in seeds
                     if seed != suite.selection_seed]
    return todo


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and not argv[0].startswith("-"):  # worker mode: SPEC.json RECORD.json
        spec_path, record_path = Path(argv[0]), Path(argv[1])
        with tempfile.TemporaryDirectory(prefix="slaft-mt-", dir=record_path.parent) as scratch:
            record = run(json.loads(spec_path.read_text()), Path(scratch))
        record_path.write_text(json.dumps(record, allow_nan=True))
        return 0
    from .records import RESULTS_DIR, read_records, results_path
    from .run import DEFAULT_DATA_DIR, Runner, add_machine_jobs_option, check_jobs
    from .suites import SUITES

    parser = argparse.ArgumentParser(prog="python -m benchmarks.harness.multitask", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=sorted(SUITES_MT), default="mt2")
    parser.add_argument("--methods", nargs="+", choices=METHODS, help="subset of the suite's methods")
    parser.add_argument("--seeds", nargs="+", type=int, help="subset of the suite's reported seeds")
    parser.add_argument("--stage", choices=("all", "lr_search", "final"), default="all")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--retry-failed", action="store_true")
    parser.add_argument("--plan", action="store_true")
    parser.add_argument("--jobs", type=int, default=1)
    add_machine_jobs_option(parser)
    args = parser.parse_args(argv)
    check_jobs(parser, args)
    mt_suite = SUITES_MT[args.suite]
    suite = dataclasses.replace(SUITES[mt_suite.base], name=mt_suite.name, run_timeout_s=mt_suite.timeout_s)
    results = results_path(mt_suite.name, args.results_dir)
    runner = Runner(suite, results, args.data_dir, retry_failed=args.retry_failed, plan_only=args.plan,
                    jobs=args.jobs, machine_jobs=args.machine_jobs, worker="benchmarks.harness.multitask")
    methods = tuple(args.methods or mt_suite.methods)
    print(f"suite {mt_suite.name}: {', '.join(methods)} on {', '.join(TASKS)}\nresults -> {results}", flush=True)
    if args.stage != "final":
        while True:  # the grid grows while a best rate sits at an edge: search until it is complete
            todo = [spec for spec in search_specs(mt_suite, methods, runner.records) if not runner.skip(spec)]
            runner.run(todo)
            if not todo or args.plan:
                break
    if args.stage != "lr_search":
        searched = results_path(mt_suite.lr_suite, args.results_dir) if mt_suite.lr_suite else results
        runner.run(final_specs(mt_suite, read_records([searched]), tuple(args.seeds or mt_suite.seeds), methods))
    if args.plan:
        print(f"{runner.planned} run(s) to run now (the final seeds are listed once their search is complete)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
