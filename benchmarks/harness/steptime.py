"""Optimizer-step time of each method on one fixed batch, alone on the machine: the same batch, the same
optimizer, nothing else running. It answers one question the suites' per-run medians answer only roughly: what does
a step of slaft's search cost against a peft LoRA r=8 (q,v) step?

    python -m benchmarks.harness.steptime            # appends to benchmarks/results/steptime/

Each method is built through the harness's own method registry (the same code as in the suites), on MiniLM-L6 with
the mean-pooling head, and timed over ``--steps`` optimizer steps after ``--warmup`` untimed ones (forward,
backward, AdamW step) on a batch of ``--batch`` examples of ``--length`` tokens.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime, timezone

import torch

from slaft.loading import load_model_and_tokenizer

from .environment import code_revision, device_description, versions
from .heads import use_head
from .methods import get_method
from .methods.protocol import RunContext
from .records import RESULTS_DIR, append_record, results_path

METHODS = ("peft-lora-qv", "peft-lora-all", "ah-houlsby", "slaft-budget-lora", "slaft-budget-lora-lora-only")


def _timed_steps(model, batch: dict, steps: int, warmup: int, before_step=None) -> list[float]:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    model.train()
    times = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        if before_step is not None:
            before_step(step)
        out = model(**batch)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step >= warmup:
            times.append(time.perf_counter() - start)
    return times


def measure(method_name: str, batch: dict, steps: int, warmup: int) -> list[dict]:
    """One record per phase: a peer has one; slaft has its search step (the whole candidate space, gates on) and
    the step of the structure it decided."""
    model = load_model_and_tokenizer("minilm", 2)[0]
    use_head(model, "mean")
    ctx = RunContext(model_id="minilm", num_labels=2, epochs=1, lr=1e-4, seed=0, steps_per_epoch=100,
                     make_trainer=None, num_layers=model.config.num_hidden_layers,
                     hidden_size=model.config.hidden_size)
    method = get_method(method_name)
    model = method.build(model, ctx)
    if not method_name.startswith("slaft"):
        return [{"phase": "train", "times": _timed_steps(model, batch, steps, warmup)}]
    model.search.total_steps = 2 * (warmup + steps)
    search = _timed_steps(model, batch, steps, warmup,
                          before_step=lambda step: model.search.begin_step(model.search.steps()[1] + step))
    model.discretize()
    decided = _timed_steps(model, batch, steps, warmup)
    return [{"phase": "search", "times": search}, {"phase": "decided", "times": decided}]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.harness.steptime", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 20000, (args.batch, args.length), generator=generator)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
             "labels": torch.randint(0, 2, (args.batch,), generator=generator)}
    for name in args.methods:
        for result in measure(name, batch, args.steps, args.warmup):
            record = {"suite": "steptime", "method": name, "phase": result["phase"],
                      "task": f"fixed-batch {args.batch}x{args.length}:{result['phase']}",  # a key per shape
                      "seed": 0, "lr": 0.0, "status": "ok", "batch_shape": [args.batch, args.length],
                      "median_step_seconds": statistics.median(result["times"]), "step_seconds": result["times"],
                      "device": device_description("cpu"), "threads": torch.get_num_threads(),
                      "versions": versions(), "code_revision": code_revision(),
                      "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            append_record(results_path("steptime", RESULTS_DIR), record)
            print(f"{name:20s} {result['phase']:8s} {1000 * record['median_step_seconds']:7.0f} ms", flush=True)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
