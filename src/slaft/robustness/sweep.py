"""`slaft sweep`: one knob over a grid of values and several seeds, each point a `slaft train` run, resumable.

    slaft sweep --axis sparsity_weight --values 0 0.5 1 2 4 8 --seeds 0 1 2      # accuracy against compression
    slaft sweep --axis target_params --values 20000 50000 100000 200000
    slaft sweep --axis label_noise --values 0 0.05 0.1 0.15 0.2                    # noise in training
    slaft sweep --axis input_noise_ratio --input-noise token --values 0 0.1 0.2
    slaft sweep --axis perturbation --values 0 0.05 0.1 0.2 --perturbations keyboard word_delete

Every other option is `slaft train`'s and applies to every point. What a sweep writes:

    <sweep dir>/sweep.jsonl         one record per point: seed x value (x perturbation kind)
    <sweep dir>/sweep.png           the score (and the kept parameters) against the value, mean and spread of seeds
    <sweep dir>/runs/<point>/       each point's own run: adapter/, metrics.json, checkpoints while it trains

A killed sweep continues where it stopped when started again with the same command: points with a record are
skipped, a point killed mid-run resumes from its last complete checkpoint. A sweep directory holds one sweep
(``sweep.json`` keeps its settings): other training options there are refused; more values or seeds are welcome.
The perturbation axis trains one run per seed and scores it on perturbed copies of its validation split (rate 0 is
the clean split).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from ..config import ConfigError, SlaftConfig, closest
from ..inference import evaluate_directory
from ..io import atomic_write_text
from ..pipeline import TrainJob, run_train
from ..runs import latest_checkpoint, safe_name
from ..version import __version__
from .perturb import KINDS, check
from .plots import plot_sweep

# Which dataclass each axis changes (the perturbation axis changes the evaluation, not the run).
AXES = {"sparsity_weight": SlaftConfig, "target_params": SlaftConfig, "label_noise": TrainJob,
        "input_noise_ratio": TrainJob, "perturbation": None}
DEFAULT_VALUES = {"sparsity_weight": (0.0, 0.5, 1.0, 2.0, 4.0, 8.0), "label_noise": (0.0, 0.05, 0.1, 0.15, 0.2),
                  "input_noise_ratio": (0.0, 0.05, 0.1, 0.15, 0.2), "perturbation": (0.0, 0.05, 0.1, 0.2)}
RECORDS, FIGURE, SETTINGS = "sweep.jsonl", "sweep.png", "sweep.json"


@dataclass
class SweepOptions:
    """What `slaft sweep` varies (the axis), over which grid of values and seeds; checked before any point trains."""

    axis: str = field(default="sparsity_weight", metadata={"help": f"What the sweep varies: {', '.join(AXES)}."})
    values: Optional[list[float]] = field(default=None, metadata={
        "help": "The grid. Default per axis: sparsity_weight 0 0.5 1 2 4 8; label_noise and input_noise_ratio 0 0.05 "
                "0.1 0.15 0.2; perturbation (rates) 0 0.05 0.1 0.2; target_params has none (name counts or "
                "fractions of the backbone)."})
    seeds: list[int] = field(default_factory=lambda: [42], metadata={"help": "Seeds; every value runs with each."})
    perturbations: Optional[list[str]] = field(default=None, metadata={
        "help": f"Perturbation axis: the kinds to score (default all: {', '.join(KINDS)})."})

    def __post_init__(self) -> None:
        if self.axis not in AXES:
            raise ConfigError(f"Unknown sweep axis {self.axis!r}.{closest(self.axis, AXES)} Choose one of "
                              f"{', '.join(AXES)}.")
        if self.values is None:
            if self.axis not in DEFAULT_VALUES:
                raise ConfigError(f"--axis {self.axis} has no default grid; pass --values, e.g. parameter counts "
                                  "--values 20000 50000 100000 or backbone fractions --values 0.001 0.003 0.01.")
            self.values = list(DEFAULT_VALUES[self.axis])
        if not self.values:
            raise ConfigError("The sweep's grid is empty; pass at least one value with --values.")
        if any(not math.isfinite(v) for v in self.values):
            raise ConfigError(f"Every sweep value must be a finite number, got {self.values}.")
        if len(set(self.values)) != len(self.values) or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError("A sweep value or seed is listed twice; list each once.")
        if not self.seeds:
            raise ConfigError("The sweep needs at least one seed (--seeds 0 1 2).")
        if self.axis == "perturbation":
            self.perturbations = list(self.perturbations or KINDS)
            for kind in self.perturbations:
                for rate in self.values:
                    check(kind, rate)
        elif self.perturbations:
            raise ConfigError("--perturbations belongs to --axis perturbation; drop it or change the axis.")


@dataclass(frozen=True)
class Point:
    """One trained point of a sweep: the axis value and the seed."""

    value: float
    seed: int

    def run_name(self, axis: str) -> str:
        """The point's run directory name under ``<sweep dir>/runs/`` (one clean run per seed on the perturbation
        axis)."""
        trained = "clean" if axis == "perturbation" else f"{axis}={self.value:g}"
        return safe_name(f"{trained}-seed{self.seed}")


def _point_settings(job: TrainJob, config: SlaftConfig, axis: str, point: Point, root: Path):
    """The point's own TrainJob and SlaftConfig (built through the dataclasses, so their checks apply)."""
    changes = {axis: point.value} if AXES[axis] is not None else {}
    if axis == "target_params" and point.value <= 0:
        raise ConfigError(f"target_params values must be > 0, got {point.value:g}.")
    job = dataclasses.replace(job, seed=point.seed, output_dir=str(root / "runs" / point.run_name(axis)),
                              **(changes if AXES[axis] is TrainJob else {}))
    config = dataclasses.replace(config, **(changes if AXES[axis] is SlaftConfig else {}))
    return job, config


def plan(options: SweepOptions, job: TrainJob, config: SlaftConfig, root: Path) -> list[tuple[Point, TrainJob,
                                                                                              SlaftConfig]]:
    """Every point to train, validated before any of them runs."""
    if options.axis == "input_noise_ratio" and job.input_noise is None:
        raise ConfigError("--axis input_noise_ratio varies the strength of input noise; name its kind with "
                          "--input-noise token or --input-noise embedding.")
    values = [0.0] if options.axis == "perturbation" else options.values
    points = [Point(value, seed) for seed in options.seeds for value in values]
    return [(point, *_point_settings(job, config, options.axis, point, root)) for point in points]


def _key(record: dict) -> tuple:
    return record["value"], record["seed"], record.get("perturbation")


def read_records(path: Path) -> list[dict]:
    """The records of ``sweep.jsonl`` (none if it is missing); a line cut short by a kill is skipped."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a kill: its point runs again
    return records


def _record(axis: str, point: Point, job: TrainJob, config: SlaftConfig, metrics: dict, *, value: float,
            score: float, perturbation: str | None = None) -> dict:
    metric = metrics["metric"]
    noise_kind = "label" if job.label_noise else job.input_noise
    noise_ratio = job.label_noise if job.label_noise else (job.input_noise_ratio if job.input_noise else 0.0)
    return {
        "sweep": axis, "value": value, "seed": point.seed, "task": metrics["task"], "model": metrics["model"],
        "metric": metric, "score": score, "clean_score": metrics["eval"][metric],
        "test_score": (metrics.get("test") or {}).get(metric),
        "sparsity_weight": config.sparsity_weight, "target_params": config.target_params,
        "noise_kind": noise_kind, "noise_ratio": noise_ratio,
        "perturbation": perturbation, "perturbation_rate": value if axis == "perturbation" else 0.0,
        "kept_params": metrics["params"]["kept"], "candidate_params": metrics["params"]["candidate"],
        "kept_sites": metrics["sites"]["kept"], "train_seconds": metrics["train_seconds"],
        "slaft_version": __version__,
    }


def _train(job: TrainJob, config: SlaftConfig, log: Callable) -> dict:
    out = Path(job.output_dir)
    if (out / "metrics.json").is_file():
        return json.loads((out / "metrics.json").read_text())
    resume = latest_checkpoint(out / "checkpoints") is not None
    return run_train(job, config, log=log, resume=resume, overwrite=not resume)


def _check_settings(root: Path, options: SweepOptions, job: TrainJob, config: SlaftConfig) -> None:
    """A sweep directory holds one sweep: starting it again with other settings would mix points trained
    differently, so it is refused (the grid and the seeds may grow)."""
    settings = {"axis": options.axis, "perturbations": options.perturbations,
                "job": {k: v for k, v in dataclasses.asdict(job).items() if k not in ("seed", "output_dir")},
                "config": config.to_dict()}
    settings = json.loads(json.dumps(settings))  # tuples as lists, as they are stored
    path = root / SETTINGS
    if path.is_file():
        stored = json.loads(path.read_text())
        changed = sorted(f"{part}.{key}" for part in ("job", "config") for key in
                         set(stored.get(part, {})) | set(settings[part])
                         if stored.get(part, {}).get(key) != settings[part].get(key))
        changed += [key for key in ("axis", "perturbations") if stored.get(key) != settings[key]]
        if changed:
            raise ConfigError(f"{root} holds a sweep started with other settings ({', '.join(changed)}). Continue "
                              "it with its own options, or pass another --output-dir.")
    else:
        atomic_write_text(path, json.dumps(settings, indent=2) + "\n")


def run_sweep(options: SweepOptions, job: TrainJob, config: SlaftConfig, root: str | Path, *,
              log: Callable = print) -> list[dict]:
    """Train and score every point not yet recorded under ``root``; returns all records and redraws the figure."""
    root = Path(root)
    points = plan(options, job, config, root)
    root.mkdir(parents=True, exist_ok=True)
    _check_settings(root, options, job, config)
    path = root / RECORDS
    records = read_records(path)
    done = {_key(r) for r in records}
    kinds = options.perturbations if options.axis == "perturbation" else [None]
    for index, (point, point_job, point_config) in enumerate(points, 1):
        wanted = [(value, kind) for kind in kinds
                  for value in (options.values if options.axis == "perturbation" else [point.value])
                  if (value, point.seed, kind) not in done]
        if not wanted:
            continue
        log(f"[point {index}/{len(points)}] {point.run_name(options.axis)}")
        metrics = _train(point_job, point_config, log)
        for value, kind in wanted:
            score = metrics["eval"][metrics["metric"]]
            if kind is not None and value > 0:
                scored = evaluate_directory(Path(point_job.output_dir) / "adapter", perturb=kind, rate=value,
                                            perturb_seed=point.seed, batch_size=point_job.eval_batch_size)
                score = scored["eval"][metrics["metric"]]
            record = _record(options.axis, point, point_job, point_config, metrics, value=value, score=score,
                             perturbation=kind)
            records.append(record)
            done.add(_key(record))
            atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))
    plot_sweep(records, root / FIGURE, axis=options.axis)
    return records


def default_root(job: TrainJob, axis: str) -> Path:
    """runs/sweep-<axis>-<task>-<model> unless the user named an --output-dir."""
    plain = str(Path("runs") / safe_name(f"{job.task}-{Path(job.model).name}"))
    if job.output_dir and job.output_dir != plain:
        return Path(job.output_dir)
    return Path("runs") / safe_name(f"sweep-{axis}-{job.task}-{Path(job.model).name}")
