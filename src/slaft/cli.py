"""The `slaft` command: train | eval | export | inspect.

    slaft train                                   # MiniLM on BBC News, the bundled main job
    slaft train --task rte --data-dir ../shared/data/glue
    slaft inspect runs/bbcnews-minilm/adapter     # the learned structure as a table and a PNG heatmap
    slaft eval runs/bbcnews-minilm/adapter --split test
    slaft export runs/bbcnews-minilm/adapter out/merged --merge
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import re
import shlex
import sys
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _config_fields() -> list[dataclasses.Field]:
    from .config import SlaftConfig

    skip = {"base_model_name_or_path", "architecture", "gate_limits", "search_steps"}
    return [f for f in dataclasses.fields(SlaftConfig) if f.name not in skip]


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    from .pipeline import TrainJob

    job = TrainJob()
    data = parser.add_argument_group("data")
    data.add_argument("--task", default=job.task, help="bbcnews (embedded default), a GLUE task, or csv/json.")
    data.add_argument("--data-dir", help="Directory of GLUE tasks as <task>/<split>.jsonl (e.g. ../shared/data/glue).")
    data.add_argument("--train-file", help="CSV/TSV/JSON Lines training file for a custom task.")
    data.add_argument("--validation-file")
    data.add_argument("--test-file")
    data.add_argument("--text-columns", nargs="+", help="Text column(s) of a custom file (one or two).")
    data.add_argument("--label-column", default=job.label_column)
    data.add_argument("--max-train-samples", type=int, help="Seeded subsample of the training split.")
    run = parser.add_argument_group("run")
    run.add_argument("--model", default=job.model, help="minilm, smollm2, a hub id or a local directory.")
    run.add_argument("--output-dir", help="Where the run writes (default runs/<task>-<model>).")
    run.add_argument("--search-epochs", type=float, default=job.search_epochs)
    run.add_argument("--finetune-epochs", type=float, default=job.finetune_epochs,
                     help="Epochs of fine-tuning the discretized structure (0 = none).")
    run.add_argument("--batch-size", type=int, default=job.batch_size)
    run.add_argument("--learning-rate", "--lr", type=float, default=job.learning_rate)
    run.add_argument("--max-length", type=int, default=job.max_length)
    run.add_argument("--seed", type=int, default=job.seed)
    run.add_argument("--bf16", action="store_true", help="bf16 mixed precision (GPU).")
    run.add_argument("--save-steps", type=int, default=job.save_steps, help="Checkpoint every N optimizer steps.")
    run.add_argument("--resume", action="store_true", help="Continue a killed run from its last complete checkpoint.")
    run.add_argument("--overwrite", action="store_true", help="Start over in an output directory that holds a run.")
    run.add_argument("--trust-remote-code", action="store_true", help="Allow model code from the hub (off by default).")
    search = parser.add_argument_group("search space and objective (SlaftConfig)")
    for f in _config_fields():
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        if f.type in ("bool", bool):
            search.add_argument(flag, action="store_true", default=None, help=help_text)
        elif f.name in ("sites", "activations", "layers"):
            search.add_argument(flag, nargs="+", type=int if f.name == "layers" else str, help=help_text)
        else:
            search.add_argument(flag, type=float if "float" in str(f.type) else int, help=help_text)


def _build(args: argparse.Namespace):
    from .config import SlaftConfig
    from .pipeline import TrainJob
    from .runs import safe_name

    overrides = {f.name: getattr(args, f.name) for f in _config_fields() if getattr(args, f.name) is not None}
    config = SlaftConfig(**overrides)
    default_dir = Path("runs") / safe_name(f"{args.task}-{Path(args.model).name}")
    job = TrainJob(
        model=args.model, task=args.task, data_dir=args.data_dir, train_file=args.train_file,
        validation_file=args.validation_file, test_file=args.test_file,
        text_columns=tuple(args.text_columns) if args.text_columns else None, label_column=args.label_column,
        max_train_samples=args.max_train_samples, output_dir=args.output_dir or str(default_dir),
        search_epochs=args.search_epochs, finetune_epochs=args.finetune_epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, max_length=args.max_length, seed=args.seed, bf16=args.bf16,
        save_steps=args.save_steps,
        trust_remote_code=args.trust_remote_code,
    )
    return job, config


def cmd_train(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .pipeline import run_train

    console = Console()
    job, config = _build(args)
    job.command = shlex.join(["slaft", *args.argv])
    metrics = run_train(job, config, log=console.print, resume=args.resume, overwrite=args.overwrite)
    console.rule("result")
    _print_metrics(console, metrics)
    console.print(f"written: {job.output_dir}/metrics.json, structure.json, structure.png, adapter/")
    return 0


def _print_metrics(console, metrics: dict) -> None:
    from rich.table import Table

    table = Table(show_header=True, header_style="bold")
    for column in ("split", *metrics["eval"].keys()):
        table.add_column(column)
    for split in ("eval", "test"):
        if metrics.get(split):
            table.add_row("validation" if split == "eval" else "test", *(f"{v:.4f}" for v in metrics[split].values()))
    console.print(table)
    p, s = metrics["params"], metrics["sites"]
    console.print(
        f"kept {p['kept']:,} of {p['candidate']:,} candidate adapter parameters "
        f"({100 * p['kept'] / max(p['candidate'], 1):.1f}%; {100 * p['kept'] / p['backbone']:.2f}% of the "
        f"{p['backbone']:,}-parameter backbone), {s['kept']} of {s['candidate']} modules; "
        f"train {metrics['train_seconds']:.0f} s"
    )


def cmd_inspect(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .io import read_adapter_config
    from .plots import plot_structure
    from .structure import Structure

    meta = read_adapter_config(args.adapter)
    learned, candidate = Structure.from_dict(meta["structure"]), Structure.from_dict(meta["candidate"])
    console = Console()
    console.print(f"[bold]{args.adapter}[/bold]: phase {meta['phase']}, base {meta['config']['base_model_name_or_path']}")
    console.print(str(learned))
    console.print(f"candidate space: {candidate.num_sites} modules, {candidate.num_params:,} parameters")
    png = Path(args.png or Path(args.adapter) / "structure.png")
    plot_structure(learned, candidate, png, title=str(meta["config"]["base_model_name_or_path"]))
    console.print(f"heatmap: {png}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .inference import evaluate_directory

    console = Console()
    metrics = evaluate_directory(args.adapter, task=args.task, data_dir=args.data_dir, split=args.split,
                                 batch_size=args.batch_size, max_length=args.max_length)
    console.print_json(json.dumps(metrics))
    if args.output:
        from .io import atomic_write_text

        atomic_write_text(Path(args.output), json.dumps(metrics, indent=2) + "\n")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .inference import export

    report = export(args.adapter, args.out, merge=args.merge)
    Console().print(report)
    return 0


class SuggestingParser(argparse.ArgumentParser):
    """argparse, plus 'did you mean' for a misspelled option."""

    def _known_words(self) -> list[str]:
        words = []
        for action in self._actions:
            words += action.option_strings
            if isinstance(action, argparse._SubParsersAction):
                words += list(action.choices)
                for sub in action.choices.values():
                    words += [o for a in sub._actions for o in a.option_strings]
        return words

    def error(self, message: str):
        if "unrecognized" in message:
            unknown = re.findall(r"(--?[\w-]+)", message.split(":", 1)[-1])
        else:
            unknown = re.findall(r"invalid choice: '([^']+)'", message)
        known = self._known_words()
        hints = [f"{u} -> {m[0]}" for u in unknown if (m := difflib.get_close_matches(u.split("=")[0], known, n=1))]
        if hints:
            message += " (did you mean: " + ", ".join(hints) + "?)"
        super().error(message + f"\nSee `{self.prog} --help` for the options.")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = SuggestingParser(prog="slaft", description="Structure-learnable adapter fine-tuning.")
    parser.add_argument("--version", action="version", version=f"slaft {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=SuggestingParser)
    train = sub.add_parser("train", help="Search, discretize, fine-tune, evaluate and save (default: MiniLM on BBC).")
    _add_train_arguments(train)
    train.set_defaults(func=cmd_train)
    evaluate = sub.add_parser("eval", help="Evaluate a saved adapter (or merged) directory on a task split.")
    evaluate.add_argument("adapter", help="Adapter directory written by `slaft train` or `slaft export`.")
    evaluate.add_argument("--task", help="Task (default: the one it was trained on).")
    evaluate.add_argument("--data-dir", help="Default: the data directory the run was trained on.")
    evaluate.add_argument("--split", default="validation")
    evaluate.add_argument("--batch-size", type=int, default=64)
    evaluate.add_argument("--max-length", type=int, help="Default: the length the run was trained with.")
    evaluate.add_argument("--output", help="Also write the metrics to this JSON file.")
    evaluate.set_defaults(func=cmd_eval)
    exp = sub.add_parser("export", help="Write a compact adapter directory, or with --merge a merged model.")
    exp.add_argument("adapter")
    exp.add_argument("out")
    exp.add_argument("--merge", action="store_true", help="Fold linear paths into the base weights.")
    exp.set_defaults(func=cmd_export)
    inspect = sub.add_parser("inspect", help="Print the learned structure and save its heatmap PNG.")
    inspect.add_argument("adapter")
    inspect.add_argument("--png", help="Where to save the heatmap (default <adapter>/structure.png).")
    inspect.set_defaults(func=cmd_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        argv = ["train"]  # `slaft` alone runs the main job
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    if args.command is None:
        parser.print_help()
        return 2
    from .architectures import ArchitectureError
    from .config import ConfigError
    from .data import DataError
    from .io import AdapterLoadError
    from .model import NonFiniteError
    from .loading import ModelLoadError
    from .runs import OutputDirError

    try:
        return args.func(args)
    except (ConfigError, DataError, AdapterLoadError, ModelLoadError, ArchitectureError, OutputDirError,
            NonFiniteError) as err:
        print(f"slaft {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
