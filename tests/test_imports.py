"""The package's import graph has no circle: every import counted, at module level,
inside functions and under TYPE_CHECKING alike (a function-local import hides a circle
from Python, not from a reader)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "launcher"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package modules ``path`` imports, by any import statement anywhere in it."""
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for name in names:
            while name and name not in modules:  # `from pkg import mod` names a module
                name = name.rpartition(".")[0]
            if name and name != here and not here.startswith(name + "."):
                found.add(name)
    return found


def _graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {name: _imports(path, modules) for name, path in paths.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected set of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_walk_sees_function_local_imports():
    graph = _graph()
    assert "launcher.outcome" in graph["launcher.cli"]  # cli imports it inside a function
    assert "launcher.driving" in graph["launcher.plan"]


def test_the_package_has_no_import_circle():
    assert _circles(_graph()) == []


def test_the_user_contract_imports_only_modes_and_errors():
    assert _graph()["launcher.task"] == {"launcher.modes", "launcher.errors"}


def test_a_circle_is_found():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# -- framework internals stay behind launcher/internals.py ---------------------------------------

SOURCES = [*PACKAGE.rglob("*.py"), *(PACKAGE.parent / "hydra_plugins").rglob("*.py")]
INTERNALS = PACKAGE / "internals.py"
OURS = ("launcher", "hydra_plugins")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _defined_here() -> set[str]:
    """Every name the package defines itself: its own private names are its business."""
    names: set[str] = set()
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return names


def _internals_used(path: Path, ours: set[str]) -> list[str]:
    """Private imports from other packages, and their private attributes, in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules, names = [a.name for a in node.names], []
        elif isinstance(node, ast.ImportFrom) and not node.level:
            modules, names = [node.module or ""], [a.name for a in node.names]
        elif isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in ours:
            found.append(f"{node.lineno}: .{node.attr}")
            continue
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) in ("getattr", "hasattr", "setattr")
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
            and _private(str(node.args[1].value))
            and node.args[1].value not in ours
        ):
            found.append(f"{node.lineno}: {node.func.id}(..., {node.args[1].value!r})")  # type: ignore[union-attr]
            continue
        else:
            continue
        for module in modules:
            if module.split(".")[0] in OURS:
                continue
            if module.startswith("submitit.core") or any(map(_private, module.split("."))):
                found.append(f"{node.lineno}: import {module}")
            found += [f"{node.lineno}: from {module} import {n}" for n in names if _private(n)]
    return found


PUBLIC = {"_exit"}  # os._exit: documented, public despite its name
FRAMEWORKS_PRIVATE = {"_return_value", "_workers", "_shutdown_workers", "_parent"}  # never ours


def test_only_internals_reaches_into_frameworks():
    ours = (_defined_here() | PUBLIC) - FRAMEWORKS_PRIVATE
    used = {
        str(p.relative_to(PACKAGE.parent)): hits
        for p in SOURCES
        if p != INTERNALS and (hits := _internals_used(p, ours))
    }
    assert not used, f"go through launcher.internals for: {used}"


def test_the_internals_scan_sees_a_private_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from hydra._internal.callbacks import Callbacks\n"
        "from submitit.core.utils import JobPaths\n"
        "x = ret._return_value\n"
        "y = getattr(it, '_workers', ())\n"
    )
    assert len(_internals_used(bad, set())) == 4


def test_the_forkserver_preload_ignores_sigterm_only_in_the_fork_server(tmp_path):
    """Importing every module (tests/test_architecture.py does) must not leave SIGTERM
    ignored in the importing process, whose later subprocesses would inherit it."""
    code = """
import multiprocessing as mp, signal
import launcher.backbones.forkserver_preload
def child(q):
    q.put(signal.getsignal(signal.SIGTERM) == signal.SIG_IGN)
if __name__ == "__main__":
    print(signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["launcher.backbones.forkserver_preload"])
    q = ctx.Queue()
    p = ctx.Process(target=child, args=(q,))
    p.start()
    print(q.get(timeout=60))
    p.join()
"""
    script = tmp_path / "preload.py"
    script.write_text(code)
    r = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)},
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "True"], r.stdout + r.stderr
