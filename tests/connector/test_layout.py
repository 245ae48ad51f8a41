"""The package layout is the architecture: data flows one way, the fake Close stays apart.

Every import counts, at module level or inside a function, under `TYPE_CHECKING` or not: an
import that would be a cycle hidden in a function is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("close_source", "close_fake")
# Lower layers never import upper ones. A module outside the sub-packages belongs to the
# base (shared types and rules) unless it is named here as a top-level entry point.
LAYERS = {"base": 0, "api": 1, "read": 2, "shape": 3, "run": 4, "top": 5}
TOP_MODULES = {"close_source", "close_source.source", "close_source.pipeline",
               "close_source.cli", "close_source.user_errors", "close_source.docs",
               "close_source.sync", "close_source.dagster", "close_source.summary"}
MAX_LINES = 400


def modules(package: str) -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> list[tuple[str, int, bool]]:
    """(module imported, line, inside a function) for each import of a module in `known`."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    in_function: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            in_function.update(id(inner) for inner in ast.walk(node) if inner is not node)
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                       for alias in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.append((target, node.lineno, id(node) in in_function))
    return found


def graph(package: str) -> dict[str, list[tuple[str, int, bool]]]:
    found = modules(package)
    known = set(found)
    return {name: imports_of(name, path, known) for name, path in found.items()}


def layer(module: str) -> int:
    if module in TOP_MODULES:
        return LAYERS["top"]
    parts = module.split(".")
    return LAYERS.get(parts[1], LAYERS["base"]) if len(parts) > 2 else LAYERS["base"]


def cycles(edges: dict[str, list[tuple[str, int, bool]]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target, _, _ in edges.get(node, []):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in edges:
        if node not in index:
            visit(node)
    return groups


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles(package):
    assert cycles(graph(package)) == []


def test_the_connector_imports_the_fake_only_in_the_demo_command():
    fake = set(modules("close_fake"))
    uses = []
    for name, path in modules("close_source").items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                targets = [a.name for a in node.names] if isinstance(node, ast.Import) \
                    else [node.module or ""]
                if any(t.split(".")[0] in {m.split(".")[0] for m in fake} for t in targets):
                    uses.append((name, node.lineno, _enclosing_function(tree, node)))
    assert uses and all(name == "close_source.cli" and function == "cmd_demo"
                        for name, _, function in uses), uses


def _enclosing_function(tree: ast.AST, target: ast.AST) -> str | None:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and any(inner is target for inner in ast.walk(node)):
            return node.name
    return None


def test_lower_layers_never_import_upper_ones():
    upward = [(name, target, line) for name, edges in graph("close_source").items()
              for target, line, _ in edges if layer(target) > layer(name)]
    assert upward == []


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_is_small_and_says_its_job_first(package):
    too_long, undocumented = [], []
    for name, path in modules(package).items():
        lines = path.read_text().splitlines()
        if len(lines) > MAX_LINES:
            too_long.append((name, len(lines)))
        if not lines or not lines[0].startswith('"""') or len(lines[0].strip('"\' ')) < 10:
            undocumented.append(name)
    assert too_long == [] and undocumented == []
