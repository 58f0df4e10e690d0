"""nlpaug is optional (``pip install 'slaft[robustness]'``): slaft, `slaft train` and the word perturbations work
without it, and asking for a character perturbation says what to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from slaft.robustness.perturb import MissingDependencyError, perturb_texts

from conftest import REPO

MESSAGE = "perturbations need nlpaug: pip install 'slaft[robustness]'"


@pytest.fixture
def without_nlpaug(monkeypatch):
    """nlpaug (and any of its submodules already imported) made unimportable for the test."""
    for name in [name for name in sys.modules if name == "nlpaug" or name.startswith("nlpaug.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "nlpaug", None)


def test_a_character_perturbation_without_nlpaug_names_the_extra(without_nlpaug):
    with pytest.raises(MissingDependencyError, match=r"perturbations need nlpaug: pip install 'slaft\[robustness\]'"):
        perturb_texts(["some words to touch"], "keyboard", 0.5, seed=0)
    assert issubclass(MissingDependencyError, ImportError)


def test_word_perturbations_need_no_nlpaug(without_nlpaug):
    out = perturb_texts(["one two three four five six"] * 4, "word_delete", 0.5, seed=0)
    assert len(out) == 4 and out != ["one two three four five six"] * 4


BLOCKED = textwrap.dedent("""
    import importlib.abc, sys

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "nlpaug" or name.startswith("nlpaug."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Blocker())
""")


def test_slaft_and_its_cli_import_without_nlpaug():
    """In a fresh interpreter where nlpaug cannot be imported: the package, the training pipeline and the CLI load,
    and `slaft sweep` over a character perturbation stops before training with the install hint (exit 2)."""
    code = BLOCKED + textwrap.dedent("""
        import slaft, slaft.pipeline, slaft.cli, slaft.robustness.sweep
        from slaft.robustness.noise import label_noise
        assert "nlpaug" not in sys.modules
        code = slaft.cli.main(["sweep", "--axis", "perturbation", "--perturbations", "keyboard", "--values", "0.1"])
        assert code == 2, code
        assert "nlpaug" not in sys.modules
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            cwd=REPO, env={**__import__("os").environ, "PYTHONPATH": str(REPO / "src")})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")
    assert MESSAGE in result.stderr
