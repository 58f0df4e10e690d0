"""The `slaft` command: train | eval | export | inspect. Every option is a field of a dataclass, turned into a flag
(with its help text) by ``transformers.HfArgumentParser``.

    slaft train                                   # MiniLM on BBC News, the bundled main job
    slaft train --task rte --data-dir ../shared/data/glue --target-params 0.003
    slaft inspect runs/bbcnews-minilm/adapter     # the learned structure as a table and a PNG heatmap
    slaft eval runs/bbcnews-minilm/adapter --split test
    slaft export runs/bbcnews-minilm/adapter out/merged --merge
    slaft sweep --axis sparsity_weight --values 0 0.5 1 2 4 8 --seeds 0 1 2
    slaft train --tasks sst2,stsb,cola --data-dir ../shared/data/glue   # one backbone, a structure per task
    slaft train --model smollm2 --objective causal-lm --max-train-samples 300 --max-length 256
    slaft generate runs/bbcnews-smollm2/adapter --prompt "Classify the text ..."
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@dataclass
class RunOptions:
    resume: bool = field(default=False, metadata={"help": "Continue a killed run from its last complete checkpoint."})
    overwrite: bool = field(default=False, metadata={"help": "Start over in an output directory that holds a run."})


@dataclass
class EvalOptions:
    task: Optional[str] = field(default=None, metadata={"help": "Task to score on. Default: the run's own."})
    data_dir: Optional[str] = field(default=None, metadata={"help": "Data directory. Default: the run's own."})
    split: str = field(default="validation", metadata={"help": "Split to score (validation, test, train)."})
    batch_size: int = field(default=64, metadata={"help": "Evaluation batch size."})
    max_length: Optional[int] = field(default=None, metadata={"help": "Tokens per example. Default: the run's."})
    output: Optional[str] = field(default=None, metadata={"help": "Also write the metrics to this JSON file."})
    perturb: Optional[str] = field(default=None, metadata={"help": "Score a perturbed copy of the split: one of "
                                                                   "slaft.robustness.perturb.KINDS (e.g. keyboard, word_delete, "
                                                                   "embedding_neighbor)."})
    rate: float = field(default=0.1, metadata={"help": "Fraction of words --perturb touches, in [0, 1)."})
    perturb_seed: int = field(default=0, metadata={"help": "Seed of the perturbation."})

    def __post_init__(self) -> None:
        from .config import ConfigError

        from .robustness.perturb import check, check_rate

        if self.perturb is None:
            check_rate(self.rate)
        else:
            check(self.perturb, self.rate)
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}.")
        if self.max_length is not None and self.max_length < 2:
            raise ConfigError(f"max_length must be at least 2 tokens, got {self.max_length}.")


@dataclass
class ExportOptions:
    merge: bool = field(default=False, metadata={"help": "Fold linear paths into the base weights."})
    task: Optional[str] = field(default=None, metadata={"help": "Multi-task runs: export this task only (default: "
                                                                "every task, each to OUT/<task>)."})
    format: str = field(default="slaft", metadata={"help": "slaft (its own adapter format) or peft (a peft LoRA "
                                                           "adapter; the structure must be LoRA only)."})


@dataclass
class GenerateOptions:
    prompt: str = field(default="", metadata={"help": "The prompt (a user turn of the chat template, if any)."})
    max_new_tokens: int = field(default=64, metadata={"help": "Most tokens to generate (greedy decoding)."})

    def __post_init__(self) -> None:
        from .config import ConfigError

        if not self.prompt.strip():
            raise ConfigError("Pass the text to continue with --prompt \"...\".")
        if not 1 <= self.max_new_tokens <= 100_000:
            raise ConfigError(f"max_new_tokens must be between 1 and 100,000, got {self.max_new_tokens}.")


@dataclass
class InspectOptions:
    png: Optional[str] = field(default=None, metadata={"help": "Heatmap path. Default: <adapter>/structure.png. For "
                                                               "a multi-task run: a directory for one PNG per task "
                                                               "and sharing.png (default: the run's directory)."})


@dataclass(frozen=True)
class Command:
    help: str
    options: tuple[type, ...]
    positionals: tuple[tuple[str, str], ...] = ()


def _commands() -> dict[str, Command]:
    from .config import SlaftConfig
    from .multitask.config import MultiTaskConfig
    from .pipeline import TrainJob
    from .robustness.sweep import SweepOptions

    adapter = ("adapter", "A run's adapter directory (RUN/adapter), an export, or a hub id (owner/name).")
    return {
        "train": Command("Search the structure, train it, evaluate and save (default: MiniLM on BBC News).",
                         (TrainJob, SlaftConfig, MultiTaskConfig, RunOptions)),
        "eval": Command("Score a saved adapter (or export, or multi-task run) on a task split.", (EvalOptions,),
                        (adapter,)),
        "export": Command("Write a compact adapter directory, or with --merge a merged checkpoint.", (ExportOptions,),
                          (adapter, ("out", "Directory to write."))),
        "inspect": Command("Print the learned structure and save its heatmap PNG.", (InspectOptions,), (adapter,)),
        "generate": Command("Continue a prompt with a causal-LM run (greedy).", (GenerateOptions,), (adapter,)),
        "sweep": Command("Train and score over a grid of one knob (sparsity weight, budget, noise, perturbation), "
                         "several seeds, resumably; records and a plot.", (SweepOptions, TrainJob, SlaftConfig)),
    }


HIDDEN_FIELDS = {"base_model_name_or_path"}  # recorded by slaft itself (--model sets it)


def _flags(options: tuple[type, ...]) -> list[str]:
    return [f"--{f.name.replace('_', '-')}" for cls in options for f in dataclasses.fields(cls)
            if f.name not in HIDDEN_FIELDS]


def _parser(name: str, command: Command):
    from transformers import HfArgumentParser

    parser = HfArgumentParser(command.options, prog=f"slaft {name}", description=command.help)
    for positional, help_text in command.positionals:
        parser.add_argument(positional, help=help_text)
    return parser


def _unknown(parser, name: str, command: Command, leftover: list[str]):
    from .config import closest

    flags = _flags(command.options)
    words = [word for word in leftover if word.startswith("-")]
    hints = "".join(closest(word.split("=")[0].replace("_", "-"), flags) for word in words[:1])
    what = f"unknown option(s) {' '.join(words)}" if words else f"unexpected argument(s) {' '.join(leftover)}"
    parser.error(f"{what}.{hints} See `slaft {name} --help` for the options.")


def parse(argv: list[str]):
    """(command name, its dataclasses, positionals namespace) for ``argv``; exits 2 on a bad command line."""
    commands = _commands()
    name = argv[0] if argv else "train"
    if name in ("-h", "--help") or name not in commands:
        from .config import closest

        listing = "\n".join(f"  {n:8s} {c.help}" for n, c in commands.items())
        message = (f"usage: slaft <command> [options]\n\ncommands:\n{listing}\n\n`slaft <command> --help` lists a "
                   "command's options; `slaft` alone runs `slaft train`.")
        if name in ("-h", "--help"):
            print(message)
            raise SystemExit(0)
        if name == "--version":
            from .version import __version__

            print(f"slaft {__version__}")
            raise SystemExit(0)
        print(f"slaft: error: unknown command {name!r}.{closest(name, commands)}\n\n{message}", file=sys.stderr)
        raise SystemExit(2)
    command = commands[name]
    parser = _parser(name, command)
    *parsed, leftover = parser.parse_args_into_dataclasses(argv[1:], return_remaining_strings=True)
    if leftover:
        _unknown(parser, name, command, leftover)
    positionals = parsed.pop() if command.positionals else None
    return name, parsed, positionals


def cmd_train(parsed, _positionals, argv: list[str]) -> int:
    from rich.console import Console

    from .pipeline import run_train

    job, config, multitask, options = parsed
    console = Console()
    from .multitask.config import MultiTaskConfig

    if not job.tasks and multitask != MultiTaskConfig():
        from .config import ConfigError

        changed = [f"--{k.replace('_', '-')}" for k, v in multitask.to_dict().items()
                   if v != getattr(MultiTaskConfig(), k)]
        raise ConfigError(f"{', '.join(changed)} only apply to multi-task runs: add --tasks, or drop them.")
    if job.tasks:
        from .multitask.pipeline import run_train_multitask

        metrics = run_train_multitask(job, config, multitask, log=console.print, resume=options.resume,
                                      overwrite=options.overwrite, command=shlex.join(["slaft", *argv]))
        console.rule("result")
        _print_multitask_metrics(console, metrics)
        console.print(f"written: {job.output_dir}/metrics.json, multitask/, tasks/<task>/, structures/, sharing.png")
        return 0
    metrics = run_train(job, config, log=console.print, resume=options.resume, overwrite=options.overwrite,
                        command=shlex.join(["slaft", *argv]))
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


def _print_multitask_metrics(console, metrics: dict) -> None:
    from rich.table import Table

    table = Table(show_header=True, header_style="bold")
    for column in ("task", "validation", "test", "kept adapter params", "modules"):
        table.add_column(column)
    for task, scores in metrics["scores"].items():
        main = next(iter(scores["validation"]))
        test = f"{scores['test'][main]:.4f}" if scores.get("test") else "-"
        table.add_row(task, f"{main} {scores['validation'][main]:.4f}", test,
                      f"{metrics['params']['per_task'][task]:,}", str(metrics["sites"][task]))
    console.print(table)
    p = metrics["params"]
    console.print(f"shared pool {p['pool']:,} of {p['candidate']:,} candidate parameters (a module shared by several "
                  f"tasks counted once); stored in all {metrics['stored_params']:,} with the heads; train "
                  f"{metrics['train_seconds']:.0f} s")
    _print_sharing(console, metrics["sharing"]["tasks"], metrics["sharing"]["params"])


def _print_sharing(console, tasks: list[str], matrix) -> None:
    from rich.table import Table

    table = Table(title="adapter parameters kept by both tasks", show_header=True, header_style="bold")
    table.add_column("")
    for task in tasks:
        table.add_column(task, justify="right")
    for task, row in zip(tasks, matrix):
        table.add_row(task, *(f"{float(v):,.0f}" for v in row))
    console.print(table)


def cmd_inspect(parsed, positionals, _argv) -> int:
    from rich.console import Console

    from .io import AdapterLoadError, read_payload
    from .plots import plot_structure
    from .structure import Structure

    (options,) = parsed
    from .io import is_multitask_dir

    if is_multitask_dir(positionals.adapter):
        return _inspect_multitask(positionals.adapter, options)
    payload = read_payload(positionals.adapter)
    try:
        learned, candidate = Structure.from_dict(payload["structure"]), Structure.from_dict(payload["candidate"])
        base = payload["config"]["base_model_name_or_path"]
    except (KeyError, TypeError, ValueError) as err:
        raise AdapterLoadError(f"{positionals.adapter} holds no valid slaft structure ({err}).") from err
    console = Console()
    console.print(f"[bold]{positionals.adapter}[/bold]: phase {payload.get('phase')}, base {base}")
    console.print(str(learned), markup=False)
    console.print(f"candidate space: {candidate.num_sites} modules, {candidate.num_params:,} parameters")
    png = Path(options.png or Path(positionals.adapter) / "structure.png")
    plot_structure(learned, candidate, png, title=str(base))
    console.print(f"heatmap: {png}")
    return 0


def _inspect_multitask(directory: str, options) -> int:
    from rich.console import Console

    from .io import AdapterLoadError, read_payload
    from .plots import plot_sharing, plot_structure
    from .structure import Structure

    payload = read_payload(directory)
    try:
        structures = {name: Structure.from_dict(d) for name, d in payload["task_structures"].items()}
        pool, candidate = Structure.from_dict(payload["structure"]), Structure.from_dict(payload["candidate"])
        base = payload["config"]["base_model_name_or_path"]
    except (KeyError, TypeError, ValueError) as err:
        raise AdapterLoadError(f"{directory} holds no valid multi-task structures ({err}).") from err
    console = Console()
    console.print(f"[bold]{directory}[/bold]: multi-task, phase {payload.get('phase')}, base {base}, "
                  f"{len(structures)} tasks, shared pool {pool.num_params:,} of {candidate.num_params:,} parameters")
    out = Path(options.png or directory)
    for name, structure in structures.items():
        console.print(f"\n[bold]{name}[/bold]")
        console.print(str(structure), markup=False)
        plot_structure(structure, candidate, out / f"structure-{name}.png", title=f"{base} on {name}")
    names, matrix = list(structures), payload.get("sharing") or []
    _print_sharing(console, names, matrix)
    plot_sharing(matrix, names, out / "sharing.png", title=f"{base}: parameters shared")
    console.print(f"heatmaps: {out}/structure-<task>.png, {out}/sharing.png")
    return 0


def cmd_eval(parsed, positionals, _argv) -> int:
    from rich.console import Console

    from .inference import evaluate_directory
    from .io import atomic_write_text

    (options,) = parsed
    from .io import is_multitask_dir

    if is_multitask_dir(positionals.adapter):
        from .config import ConfigError
        from .multitask.inference import evaluate_multitask_directory

        if options.perturb:
            raise ConfigError("--perturb scores one task's adapter: pass RUN/tasks/<task> instead of the multi-task "
                              "directory.")
        metrics = evaluate_multitask_directory(positionals.adapter, task=options.task, data_dir=options.data_dir,
                                               split=options.split, batch_size=options.batch_size,
                                               max_length=options.max_length)
        Console().print_json(json.dumps(metrics))
        if options.output:
            atomic_write_text(Path(options.output), json.dumps(metrics, indent=2) + "\n")
        return 0
    metrics = evaluate_directory(positionals.adapter, task=options.task, data_dir=options.data_dir,
                                 split=options.split, batch_size=options.batch_size, max_length=options.max_length,
                                 perturb=options.perturb, rate=options.rate, perturb_seed=options.perturb_seed)
    Console().print_json(json.dumps(metrics))
    if options.output:
        atomic_write_text(Path(options.output), json.dumps(metrics, indent=2) + "\n")
    return 0


def cmd_export(parsed, positionals, _argv) -> int:
    from rich.console import Console

    from .export import export

    (options,) = parsed
    from .io import is_multitask_dir

    if is_multitask_dir(positionals.adapter):
        from .multitask.inference import export_multitask

        Console().print(export_multitask(positionals.adapter, positionals.out, task=options.task, merge=options.merge,
                                         format=options.format), markup=False)
        return 0
    if options.task is not None:
        from .config import ConfigError

        raise ConfigError(f"--task picks a task of a multi-task run; {positionals.adapter} holds one task already.")
    Console().print(export(positionals.adapter, positionals.out, merge=options.merge, format=options.format),
                    markup=False)
    return 0


def cmd_sweep(parsed, _positionals, _argv) -> int:
    from rich.console import Console

    from .robustness.sweep import FIGURE, RECORDS, default_root, run_sweep

    options, job, config = parsed
    console = Console()
    root = default_root(job, options.axis)
    records = run_sweep(options, job, config, root, log=console.print)
    console.rule("sweep")
    for record in records:
        kind = f" {record['perturbation']}" if record.get("perturbation") else ""
        console.print(f"{options.axis} {record['value']:g}{kind} seed {record['seed']}: {record['metric']} "
                      f"{record['score']:.4f}, kept {record['kept_params']:,} parameters", markup=False)
    console.print(f"written: {root / RECORDS}, {root / FIGURE}, {root / 'runs'}/")
    return 0


def cmd_generate(parsed, positionals, _argv) -> int:
    from .inference import generate_text

    (options,) = parsed
    print(generate_text(positionals.adapter, options.prompt, max_new_tokens=options.max_new_tokens))
    return 0


def resolve_adapter_argument(name: str, parsed, positionals) -> None:
    """A hub id given as ADAPTER is downloaded into the hub cache (read from there alone under HF_HUB_OFFLINE=1) and
    the command reads that copy; ``inspect`` then draws its figures in the working directory, not in the cache."""
    adapter = getattr(positionals, "adapter", None)
    if adapter is None or Path(adapter).expanduser().is_dir():
        return
    from .hub import resolve_adapter
    from .io import is_multitask_dir

    positionals.adapter = str(resolve_adapter(adapter))
    if name == "inspect" and parsed[0].png is None:
        parsed[0].png = "." if is_multitask_dir(positionals.adapter) else "structure.png"


HANDLERS = {"train": cmd_train, "eval": cmd_eval, "export": cmd_export, "inspect": cmd_inspect, "sweep": cmd_sweep,
            "generate": cmd_generate}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv = ["train", *argv]  # `slaft` alone (or with train options) runs the main job
    from . import errors

    try:
        name, parsed, positionals = parse(argv)
        resolve_adapter_argument(name, parsed, positionals)
        return HANDLERS[name](parsed, positionals, argv)
    except errors.USER_ERRORS as err:
        print(f"slaft {argv[0]}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
