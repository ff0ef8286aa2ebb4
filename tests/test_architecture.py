"""The house rules that code review alone lets slip: no import cycles, arrows point down, and the
command core never imports a chat library. Module-level imports only (``TYPE_CHECKING`` blocks and
imports inside functions are not part of the import graph)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "recommender", "storage", "training")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _imports(tree: ast.Module, modules: dict[str, Path]) -> set[str]:
    """What a module imports at import time: other project modules, and outside top names."""
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules.keys()
            out.update(subs)
            if len(subs) < len(node.names):
                out.add(node.module)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: _imports(ast.parse(path.read_text(encoding="utf-8")), modules)
        for name, path in modules.items()
    }


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle among project modules, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for dep in sorted(graph[node] & graph.keys()):
            if dep == node:
                continue
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep] if dep in path else [node, dep]
            if dep not in state and (found := visit(dep, [*path, dep])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_no_import_cycles():
    assert _cycle(_graph()) is None


def test_a_cycle_is_found_when_there_is_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_arrows_point_down():
    allowed = {
        "storage": {"storage"},
        "recommender": {"recommender", "storage"},
        "training": {"training", "recommender", "storage"},
    }
    wrong = [
        (name, dep)
        for name, deps in _graph().items()
        for dep in deps
        if (top := name.split(".")[0]) in allowed
        and dep.split(".")[0] in PACKAGES
        and dep.split(".")[0] not in allowed[top]
    ]
    assert wrong == []


def test_the_core_never_imports_a_chat_library():
    chat = {"discord", "telegram"}
    wrong = [
        (name, dep)
        for name, deps in _graph().items()
        if name.startswith(("bot.core", "recommender", "storage", "training"))
        for dep in deps
        if dep.split(".")[0] in chat
    ]
    assert wrong == []
