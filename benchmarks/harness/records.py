"""The results store: a folder per suite, benchmarks/results/<suite>/, with one JSON Lines file per method
(<method>.jsonl), one line per run.

A run's key is (suite, method, task, seed, lr), so all of a key's lines sit in one file, in the order they were
written. Lines are appended whole, under an exclusive lock, then flushed and fsynced, so an interrupted suite leaves
complete lines only and resumes by skipping keys already present; a torn last line (power loss) is ignored on
reading. When a key appears more than once (a retried failure), the last successful line wins. One file per method
keeps every file small as a suite grows (a record carries its recipe and the structure slaft decided, a few kB).
A suite stored as a single file, ``<suite>.jsonl`` beside the folder (as earlier versions wrote it), is still
read, before the folder's files, so a run appended since then wins.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"

Key = tuple[str, str, str, int, float]


def results_path(suite: str, directory: Path = RESULTS_DIR) -> Path:
    """The folder holding ``suite``'s records."""
    return directory / suite


def record_file(store: Path, method: str) -> Path:
    """The file a record of ``method`` is appended to: its own in the suite's folder ``store``."""
    if not method or "/" in method or method.startswith("."):
        raise ValueError(f"method name {method!r} cannot name a records file; use letters, digits, '-', '_' or '.'")
    return store / f"{method}.jsonl"


def record_files(store: Path) -> list[Path]:
    """The files holding a suite's records, oldest layout first: a single-file store beside the folder, then the
    folder's files."""
    single = store.parent / f"{store.name}.jsonl"
    return ([single] if single.is_file() else []) + (sorted(store.glob("*.jsonl")) if store.is_dir() else [])


def stores_in(directory: Path) -> list[Path]:
    """The store of every suite with records in ``directory``, either layout."""
    if not directory.is_dir():
        return []
    names = {p.name for p in directory.iterdir() if p.is_dir() and any(p.glob("*.jsonl"))}
    names |= {p.stem for p in directory.glob("*.jsonl")}
    return [directory / name for name in sorted(names)]


def run_key(record: dict) -> Key:
    return (record["suite"], record["method"], record["task"], int(record["seed"]), float(record["lr"]))


def append_record(store: Path, record: dict) -> None:
    """Append ``record`` to its method's file in ``store``, a suite's folder."""
    path = record_file(store, record.get("method", ""))
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True, allow_nan=True) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_log(stores: Iterable[Path]) -> list[dict]:
    """Every complete record in ``stores`` (suite folders, with a single-file suite beside each; missing ones hold
    none) in write order, none dropped: for stores that log measurements, such as the step times, where a later
    session's measurement does not replace an earlier one."""
    records = []
    for path in (path for store in stores for path in record_files(store)):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                warnings.warn(f"{path}:{number}: incomplete line ignored (an interrupted write)", stacklevel=2)
    return records


def read_records(stores: Iterable[Path]) -> list[dict]:
    """Every complete record in ``stores``, the latest successful one per key (a rerun replaces its run)."""
    latest: dict[Key, dict] = {}
    for record in read_log(stores):
        key = run_key(record)
        if key in latest and latest[key].get("status") == "ok" and record.get("status") != "ok":
            continue
        latest[key] = record
    return list(latest.values())


def epochs_of(record: dict, task: str | None = None) -> float | None:
    """The epochs a record's run trained ``task`` (default: the record's task) for: its recipe's per-task override,
    else the recipe's default."""
    recipe = record.get("recipe", {})
    return recipe.get("epochs_by_task", {}).get(task or record.get("task"), recipe.get("epochs"))


def score_for_selection(record: dict) -> float:
    """Validation score used to pick a learning rate; failed or NaN runs never win."""
    score = record.get("score")
    if record.get("status") != "ok" or score is None or math.isnan(score):
        return -math.inf
    return float(score)


def chosen_lr(records: list[dict], method: str, task: str, grid: tuple[float, ...], seed: int) -> float | None:
    """The grid value with the best validation score on ``seed`` (ties: the first in the grid); None if no grid
    run succeeded. With a one-value grid that value is chosen without a search."""
    if len(grid) == 1:
        return float(grid[0])
    best: tuple[float, float] | None = None
    for lr in grid:
        found = [r for r in records if r["method"] == method and r["task"] == task and int(r["seed"]) == seed
                 and float(r["lr"]) == float(lr)]
        if not found:
            return None  # the search is incomplete: no choice yet
        score = score_for_selection(found[-1])
        if score > -math.inf and (best is None or score > best[0]):
            best = (score, float(lr))
    return best[1] if best else None
