"""Render results/core/*.json (metrics.json files of `slaft train` runs) into the results table of docs/results.md.

    python results/render.py          # rewrites the block between the RESULTS markers in docs/results.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- RESULTS:BEGIN (python results/render.py) -->", "<!-- RESULTS:END -->"


def command(m: dict) -> str:
    """The recorded command line, or one rebuilt from the job settings of records made before it was logged."""
    if m.get("command"):
        return m["command"]
    job, parts = m["job"], ["slaft", "train"]
    if job["task"] != "bbcnews":
        parts += ["--task", job["task"]]
    if job.get("data_dir"):
        parts += ["--data-dir", "../shared/data/glue"]
    if job.get("max_train_samples"):
        parts += ["--max-train-samples", str(job["max_train_samples"])]
    return " ".join(parts)


def row(name: str, m: dict) -> str:
    metric = m["metric"]
    test = f"{m['test'][metric]:.4f}" if m.get("test") else "—"
    p, s = m["params"], m["sites"]
    return (f"| `{command(m)}` | {metric} | {m['eval'][metric]:.4f} | {test} | {p['kept']:,} / {p['candidate']:,} "
            f"({100 * p['kept'] / p['candidate']:.1f}%) | {s['kept']} / {s['candidate']} | {m['train_seconds']:.0f} s "
            f"| `results/core/{name}` |")


def render(directory: Path) -> str:
    lines = [
        "| run | metric | validation | test | kept / candidate adapter params | modules | train time | record |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for path in sorted(directory.glob("*.json")):
        lines.append(row(path.name, json.loads(path.read_text())))
    return "\n".join(lines)


PAGE = REPO / "docs" / "results.md"


def main() -> int:
    text = PAGE.read_text()
    if BEGIN not in text or END not in text:
        print(f"{PAGE.relative_to(REPO)} lacks the markers {BEGIN} ... {END}", file=sys.stderr)
        return 1
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    PAGE.write_text(f"{head}{BEGIN}\n{render(REPO / 'results' / 'core')}\n{END}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
