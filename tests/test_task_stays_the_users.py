"""The task stays its user's: one wrapper (``Driven.of`` in ``launcher/driving.py``) asks
what a task class overrides of the contract, the rest of the launcher takes that wrapper
instead of asking, and no launcher module writes onto the user's task or its modes (a
hard shard's folders are bound on a copy; listing options are arguments)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "launcher"
WRAPPER = PACKAGE / "driving.py"
CONSTRUCTOR = ("Driven", "of")  # the wrapper's constructor: the one caller of capabilities()
CONTRACT = {"Task", "TorchTask"}
USER_OBJECTS = {"task", "input", "output"}  # names the launcher gives a task and its modes


def _sources() -> dict[Path, ast.Module]:
    return {p: ast.parse(p.read_text(encoding="utf-8")) for p in PACKAGE.rglob("*.py")}


def _names_contract_member(node: ast.AST) -> bool:
    """``Task.x`` or ``TorchTask.x``."""
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in CONTRACT
    )


def capability_checks(tree: ast.Module) -> list[int]:
    """Lines comparing something by identity with a member of the contract's classes."""
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Compare)
        and any(isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops)
        and any(map(_names_contract_member, [node.left, *node.comparators]))
    ]


def _name(node: ast.AST) -> str | None:
    """``f`` or ``module.f`` -> ``f``."""
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else None


def capability_calls(tree: ast.Module, constructor: tuple[str, str] | None = None) -> list[int]:
    """Lines calling ``capabilities(...)``, but inside ``constructor`` (class, method)."""
    inside: list[range] = []
    if constructor is not None:
        cls, method = constructor
        inside = [
            range(f.lineno, f.end_lineno + 1)
            for c in tree.body
            if isinstance(c, ast.ClassDef) and c.name == cls
            for f in c.body
            if isinstance(f, ast.FunctionDef) and f.name == method
        ]
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and _name(node.func) == "capabilities"
        and not any(node.lineno in r for r in inside)
    ]


def task_taking_functions(tree: ast.Module) -> set[str]:
    """A module's top-level functions whose first parameter is the task, and ``capabilities``:
    what only the wrapper may call."""
    return {"capabilities"} | {
        f.name
        for f in tree.body
        if isinstance(f, ast.FunctionDef) and f.args.args and f.args.args[0].arg == "task"
    }


def reaches_for(tree: ast.Module, names: set[str]) -> list[int]:
    """Lines importing one of ``names`` from ``launcher.driving`` or naming ``driving.X``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "launcher.driving":
            if any(alias.name in names for alias in node.names):
                found.append(node.lineno)
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in names
            and _chain(node.value)[-1:] == ["driving"]
        ):
            found.append(node.lineno)
    return found


def _written(target: ast.AST) -> list[ast.Attribute]:
    if isinstance(target, (ast.Tuple, ast.List)):
        return [a for t in target.elts for a in _written(t)]
    return [target] if isinstance(target, ast.Attribute) else []


def _chain(node: ast.AST) -> list[str]:
    """``self.task.input`` -> ``["self", "task", "input"]``; [] for anything but names."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return [node.id, *reversed(parts)] if isinstance(node, ast.Name) else []


def writes_onto_user_objects(tree: ast.Module) -> list[int]:
    """Lines assigning an attribute of a task or of its modes (``task.x``,
    ``task.input.x``, ``self.task.x``, ``self.input.x``), or setting one with
    ``setattr(task, ...)``."""
    found = []
    for node in ast.walk(tree):
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("setattr", "delattr")
        ):
            targets = [ast.Attribute(value=node.args[0], attr="?")] if node.args else []
        for attr in (a for t in targets for a in _written(t)):
            owner = _chain(attr.value)
            if owner and owner[0] == "self":
                owner = owner[1:]
            if owner and owner[0] in USER_OBJECTS:
                found.append(node.lineno)
    return found


def test_only_the_wrapper_asks_what_a_task_overrides():
    found = {
        str(p.relative_to(PACKAGE.parent)): lines
        for p, tree in _sources().items()
        if p != WRAPPER and (lines := capability_checks(tree))
    }
    assert found == {}, "capability checks belong in launcher/driving.py (capabilities)"


def test_only_the_wrappers_constructor_calls_capabilities():
    found = {
        str(p.relative_to(PACKAGE.parent)): lines
        for p, tree in _sources().items()
        if (lines := capability_calls(tree, CONSTRUCTOR if p == WRAPPER else None))
    }
    assert found == {}, "capabilities() belongs in Driven.of: take a Driven, read its `can`"


def test_the_launcher_takes_the_wrapper_not_the_task():
    """Plan, backbones, markers and the job go through ``Driven``'s methods, never through
    a function of ``driving`` that takes the user's task."""
    names = task_taking_functions(_sources()[WRAPPER])
    found = {
        str(p.relative_to(PACKAGE.parent)): lines
        for p, tree in _sources().items()
        if p != WRAPPER and (lines := reaches_for(tree, names))
    }
    assert found == {}, f"take a driving.Driven instead of calling {sorted(names)}"


def test_no_launcher_module_writes_onto_the_users_task():
    found = {
        str(p.relative_to(PACKAGE.parent)): lines
        for p, tree in _sources().items()
        if (lines := writes_onto_user_objects(tree))
    }
    assert found == {}, "bind a copy (Driven.of) or pass values as arguments"


def test_the_checks_see_what_they_look_for():
    tree = ast.parse(
        "if type(task).setup is not Task.setup: pass\n"
        "task.input.exclude = ()\n"
        "self.task.output_dir = 'x'\n"
        "setattr(task, 'input_dir', 'y')\n"
        "bound.input_dir = 'z'\n"
        "self.input.on_error = None\n"
    )
    assert capability_checks(tree) == [1]
    assert sorted(writes_onto_user_objects(tree)) == [2, 3, 4, 6]
    calls = ast.parse(
        "class Driven:\n"
        "    def of(cls, task):\n"
        "        return capabilities(type(task))\n"
        "    def other(self):\n"
        "        return driving.capabilities(type(self.task))\n"
        "def bind(task, idx): pass\n"
        "def helper(items): pass\n"
        "from launcher.driving import Driven, bind\n"
        "launcher.driving.bind(t, 1)\n"
        "kept = driving.helper\n"
    )
    assert capability_calls(calls, CONSTRUCTOR) == [5]
    assert capability_calls(calls) == [3, 5]
    names = task_taking_functions(calls)
    assert names == {"capabilities", "bind"}
    assert sorted(reaches_for(calls, names)) == [5, 8, 9]
