"""The package's import graph has no cycle: every module imports only modules below it."""

from __future__ import annotations

import ast

from conftest import REPO


def imports() -> dict[str, set[str]]:
    package = REPO / "src" / "slaft"
    modules = {path.stem for path in package.glob("*.py")}
    graph = {}
    for path in package.glob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                found |= {node.module.split(".")[0]} if node.module else {alias.name for alias in node.names}
        graph[path.stem] = found & modules
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
    assert graph["io"] == set() and graph["sites"] == set() and graph["gates"] == set()
    assert graph["allocation"] <= {"gates"}
