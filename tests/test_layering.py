"""The package's import graph has no cycle: every module imports only modules below it."""

from __future__ import annotations

import ast

from conftest import REPO


def imports() -> dict[str, set[str]]:
    """Module -> the package modules it imports, named by their dotted path below slaft ("model",
    "multitask.model"); a subpackage's ``__init__`` is its own node ("multitask")."""
    package = REPO / "src" / "slaft"

    def name(path) -> str:
        parts = path.relative_to(package).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "__init__"

    paths = {name(path): path for path in package.rglob("*.py")}
    graph = {}
    for module, path in paths.items():
        here = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
        if module == "__init__":
            here = []
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 1:
                base = here[:len(here) - (node.level - 1)] if node.level > 1 else here
                targets = [node.module] if node.module else [alias.name for alias in node.names]
                for target in targets:
                    dotted = ".".join([*base, *target.split(".")])
                    while dotted and dotted not in paths:  # "multitask.config.X" -> "multitask.config"
                        dotted = dotted.rpartition(".")[0]
                    if dotted:
                        found.add(dotted)
        graph[module] = found - {module}
    return graph


def test_the_import_graph_has_no_cycle():
    graph, done, path = imports(), set(), []

    def visit(module: str) -> None:
        assert module not in path, f"import cycle: {' -> '.join([*path, module])}"
        if module in done:
            return
        path.append(module)
        for dependency in graph[module]:
            visit(dependency)
        path.pop()
        done.add(module)

    for module in graph:
        visit(module)


def test_the_file_format_and_the_tables_know_nothing_above_them():
    graph = imports()
    assert graph["io"] == set() and graph["discovery"] == set() and graph["gates"] == set()
    assert graph["sites"] == {"discovery"}
    assert graph["allocation"] <= {"gates"}


def test_the_core_imports_the_robustness_tools_only_where_they_are_used():
    """slaft.robustness (noise, perturbations, sweep) is imported inside the functions that use it, so `import slaft`
    and `slaft train` load none of it; errors.py alone names its error class at module level (a lightweight module
    that imports no optional dependency)."""
    package = REPO / "src" / "slaft"
    for path in package.rglob("*.py"):
        if "robustness" in path.relative_to(package).parts:
            continue
        top_level = [node for node in ast.parse(path.read_text()).body if isinstance(node, ast.ImportFrom)]
        names = [node.module or "" for node in top_level]
        if path.name != "errors.py":
            assert not any(name.split(".")[0] == "robustness" for name in names), path
