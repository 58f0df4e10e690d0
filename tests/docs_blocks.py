"""The fenced Python blocks of a Markdown page, and running them as a reader would (shared by test_docs and
test_readme).

A block runs unless the line before it is ``<!-- no-test: reason -->``. The blocks of one page run in order in one
namespace, in a fresh working directory, so a page can build on its earlier blocks.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)
NO_TEST = re.compile(r"<!--\s*no-test:\s*(.*?)\s*-->")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    code: str
    skip_reason: str | None


def blocks(path: Path) -> list[Block]:
    text = path.read_text()
    found = []
    for match in FENCE.finditer(text):
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = NO_TEST.search(before)
        found.append(Block(path, text.count("\n", 0, match.start()) + 1, match.group(1),
                           marker.group(1) if marker else None))
    return found


def run_page(path: Path, workdir: Path) -> int:
    """Run every unmarked block of ``path`` in ``workdir``; returns how many ran. A failure names page and line."""
    namespace: dict = {"__name__": "__docs__"}
    cwd = os.getcwd()
    os.chdir(workdir)
    ran = 0
    try:
        for block in blocks(path):
            if block.skip_reason is not None:
                continue
            try:
                exec(compile(block.code, f"{path.name}:{block.line}", "exec"), namespace)
            except Exception as err:
                raise AssertionError(f"{path.name}, the python block at line {block.line} failed: "
                                     f"{type(err).__name__}: {err}") from err
            ran += 1
    finally:
        os.chdir(cwd)
    return ran
