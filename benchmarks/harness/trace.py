"""Rerun one benchmark run in this process and print its training-loss curve; writes no record.

    python -m benchmarks.harness.trace --suite pareto --method slaft-budget-lora-lora-only-rank1 --task stsb \\
        --seed 13 --lr 3e-3

For a run that scored far below its method's other seeds (PROTOCOL3.md lists them): the loss every 25 optimizer
steps (``--log-steps``) says whether and when training diverged, and for slaft whether before or after its structure
was decided. Any method of the harness runs with any suite's recipe, so a peer can rerun the same seed and rate as a
control. Records written since keep the same curve (``loss_curve``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from .methods import METHODS
from .run import DEFAULT_DATA_DIR
from .suites import SUITES
from .worker import LOG_STEPS, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.harness.trace", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", required=True, choices=sorted(SUITES))
    parser.add_argument("--method", required=True, choices=sorted(METHODS), metavar="METHOD")
    parser.add_argument("--task", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--stage", choices=("final", "lr_search"), default="final",
                        help="lr_search skips per-epoch validation and the latency measurement (faster)")
    parser.add_argument("--log-steps", type=int, default=LOG_STEPS, help="the loss every N optimizer steps")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args(argv)
    if args.task not in SUITES[args.suite].tasks:
        parser.error(f"suite {args.suite!r} has no task {args.task!r}; its tasks: "
                     f"{', '.join(SUITES[args.suite].tasks)}")
    spec = {"suite": args.suite, "method": args.method, "task": args.task, "seed": args.seed, "lr": args.lr,
            "stage": args.stage, "data_dir": str(args.data_dir), "log_steps": max(1, args.log_steps)}
    with tempfile.TemporaryDirectory(prefix="slaft-trace-") as scratch:
        record = run(spec, Path(scratch))
    decided = (record.get("details") or {}).get("slaft_decision_step")
    for step, loss in record["loss_curve"]:
        mark = f"  (structure decided at step {decided})" if decided is not None and step >= decided else ""
        decided = None if mark else decided  # marked once
        print(f"step {step:>6}  loss {loss:.4f}{mark}")
    print(f"{record['metric']} {record['score']:.4f} (validation); training loss over the run "
          f"{record['train_loss']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
