"""The house rules of the code itself: import layering, one owner per piece of state, the
public surface.

* The import graph of ``ksim`` has no cycle, counting every import a module makes at run time
  (function-level ones included; ``if TYPE_CHECKING:`` blocks excluded).
* The core never imports a plugin.
* A :class:`~ksim.kernel.Kernel` refuses an attribute it does not declare.
* ``ksim.__all__`` is a literal list of names that exist, and ``from ksim import *`` brings
  in no submodule.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ksim
from ksim.testing import standalone_kernel

PACKAGE = Path(ksim.__file__).resolve().parent
PLUGIN_PACKAGES = ("ksim_memconsole", "ksim_ramoops")


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _runtime_imports(tree: ast.AST) -> list[tuple[str, list[str], int]]:
    """(module, names, level) of every import outside ``if TYPE_CHECKING:`` blocks."""
    out: list[tuple[str, list[str], int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.extend((alias.name, [], 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            out.append((node.module or "", [a.name for a in node.names], node.level))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target, names, level in _runtime_imports(ast.parse(path.read_text())):
            if level:
                base = name.rsplit(".", level)[0] if path.name != "__init__.py" else name
                target = f"{base}.{target}" if target else base
            if not (target == "ksim" or target.startswith("ksim.")):
                continue
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
            if subs:
                graph[name].update(subs)
            if len(subs) < len(names) or not names:
                graph[name].add(target)
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt == node:
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = dfs(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = dfs(node)
            if found:
                return found
    return None


def test_the_import_graph_has_no_runtime_cycle():
    graph = _graph()
    graph.pop("ksim", None)  # the package re-exports everything (checked below on its own)
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


# Clients of the public API (they may ``import ksim``): the command line and the scenario
# runner drive a kernel from outside, as a user's program does.
FRONT_ENDS = ("ksim.cli", "ksim.stress_cli", "ksim.scenario", "ksim.__main__")


def test_no_core_module_imports_the_package_itself():
    """``from ksim import X`` of a non-module name inside the core would import every
    subsystem through ksim/__init__.py: a cycle in disguise."""
    offenders = [name for name, deps in _graph().items()
                 if name != "ksim" and not name.startswith(FRONT_ENDS) and "ksim" in deps]
    assert offenders == []


def test_the_cycle_finder_finds_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_core_never_imports_a_plugin():
    for name, path in _modules().items():
        for target, names, _level in _runtime_imports(ast.parse(path.read_text())):
            assert not target.startswith(PLUGIN_PACKAGES), f"{name} imports {target}"


def test_a_kernel_refuses_an_undeclared_attribute():
    with standalone_kernel() as k:
        with pytest.raises(AttributeError):
            k.new_log_buf_len = 1  # type: ignore[attr-defined]
        k.outcome = "halt"  # declared: fine


def test_the_public_surface_is_a_literal_list_of_existing_names():
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    assigned = [node for node in tree.body if isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)]
    assert len(assigned) == 1 and isinstance(assigned[0].value, ast.List)
    names = ksim.__all__
    assert len(names) == len(set(names))
    missing = [n for n in names if not hasattr(ksim, n)]
    assert missing == []
    star: dict[str, object] = {}
    exec("from ksim import *", star)
    modules = [n for n, v in star.items() if type(v).__name__ == "module"]
    assert modules == [], "from ksim import * exports modules: %s" % modules
