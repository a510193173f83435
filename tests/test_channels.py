"""Results travel by return value or through an object the caller owns and passes in:
no module global (and no class attribute) is written while the launcher runs, except the
few documented here: caches, per-process settings, and the one counter a library callback
feeds."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "launcher"

MUTATORS = {
    "append",
    "appendleft",
    "add",
    "clear",
    "discard",
    "extend",
    "insert",
    "pop",
    "popitem",
    "remove",
    "setdefault",
    "update",
}

DOCUMENTED = {
    # stop requests by explicit registration (docs/architecture.md, "One job")
    ("launcher/stops.py", "_hooks"),
    # a cache of this process's own name for temporaries, by pid
    ("launcher/io.py", "_WRITERS"),
    # the one USR2 watcher thread of an array element's process
    ("launcher/launchers/element.py", "_Usr2._instance"),
    # object storage: the job's task.storage_options, set before it opens a URL
    # (fsspec opens URLs by module function), and the sizes of recently listed prefixes
    ("launcher/location.py", "_options"),
    ("launcher/location.py", "_SIZES"),
    # the count botocore's retry hook feeds (it has no caller to return to); a job
    # reads the difference over its own run, workers hand theirs on with their results
    ("launcher/transient_errors.py", "_seen"),
    ("launcher/transient_errors.py", "_handed"),
    ("launcher/transient_errors.py", "_received"),
}


def _module_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        names.update(t.id for t in targets if isinstance(t, ast.Name))
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
    return names


def _written_at_run_time(path: Path) -> set[str]:
    """Module globals (their items and attributes too) and class attributes that a
    function of ``path`` writes."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module = _module_names(tree)
    found: set[str] = set()
    for cls in [n for n in tree.body if isinstance(n, ast.ClassDef)]:
        for node in ast.walk(cls):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
                and node.value.id in ("cls", cls.name)
            ):
                found.add(f"{cls.name}.{node.attr}")
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Global):
                found.update(node.names)
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
                and node.value.id in module
            ):
                found.add(f"{node.value.id}.{node.attr}")
            target = None
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
                targets = node.targets if not isinstance(node, ast.AugAssign) else [node.target]
                target = next((t.value for t in targets if isinstance(t, ast.Subscript)), None)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                target = node.func.value if node.func.attr in MUTATORS else None
            if isinstance(target, ast.Name) and target.id in module:
                found.add(target.id)
    return found


def test_no_module_global_carries_a_result():
    written = {
        (str(p.relative_to(PACKAGE.parent)), name)
        for p in PACKAGE.rglob("*.py")
        for name in _written_at_run_time(p)
    }
    assert written - DOCUMENTED == set(), "return it, or pass it to whoever needs it"
    assert written >= DOCUMENTED, "a documented global is gone: drop it from DOCUMENTED"


def test_the_scan_sees_a_global_written(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "RESULTS = {}\nSEEN = []\nclass C:\n    last = None\n"
        "def f(x):\n    RESULTS[x] = 1\n    SEEN.append(x)\n    C.last = x\n"
    )
    assert _written_at_run_time(bad) == {"RESULTS", "SEEN", "C.last"}
