"""Where shard-launcher's configs are found: its own, then the user's ``./conf``.

The package's ``launcher/conf`` is the primary config, so the bundled tasks
work from any directory. The ``conf/`` folder of the directory the launcher
is started from comes after it on Hydra's search path, so a project's own
``conf/task/*.yaml`` (and other groups) need no ``hydra.searchpath``; more
folders can still be added with ``hydra.searchpath=[...]``.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hydra.core.config_search_path import ConfigSearchPath

CONFIG_DIR = Path(__file__).resolve().parent / "conf"
PROVIDER = "shard-launcher: ./conf"


def user_config_dir() -> Path | None:
    """``./conf`` of the current directory, when there is one."""
    path = Path(os.getcwd()) / "conf"
    return path if path.is_dir() and path.resolve() != CONFIG_DIR else None


def config_dirs() -> list[Path]:
    """The folders our groups come from, in Hydra's search order."""
    user = user_config_dir()
    return [CONFIG_DIR] if user is None else [CONFIG_DIR, user]


def add_user_config_dir(search_path: ConfigSearchPath) -> None:
    """Put ``./conf`` right after our primary config; other apps' search paths stay as they are."""
    main = [e for e in search_path.get_path() if e.provider == "main"]
    user = user_config_dir()
    if user is None or not main or main[0].path.removeprefix("file://") != str(CONFIG_DIR):
        return
    from hydra.core.config_search_path import SearchPathQuery

    search_path.append(PROVIDER, f"file://{user}", anchor=SearchPathQuery(provider="main"))


def broken_choice(overrides: list[str]) -> str | None:
    """One paragraph for a config file a ``group=option`` override chooses that is not
    valid YAML, naming its file and line; None when each parses (Hydra's own report of
    a YAML error is a traceback through its loader)."""
    import yaml

    for override in overrides:
        group, sep, option = override.lstrip("+~").partition("=")
        if not sep or "." in group or not option or "," in option:
            continue
        for folder in config_dirs():
            path = folder / group / f"{option}.yaml"
            if not path.is_file():
                continue
            try:
                yaml.safe_load(path.read_text(encoding="utf-8"))
            except yaml.YAMLError as e:
                mark = getattr(e, "problem_mark", None)
                line = f":{mark.line + 1}" if mark is not None else ""
                problem = getattr(e, "problem", None) or str(e).splitlines()[0]
                begun = getattr(e, "context_mark", None)
                if getattr(e, "context", None) and begun is not None:
                    problem += f"; {e.context} at line {begun.line + 1}"
                return (
                    f"shard-launcher: {path}{line}: not valid YAML ({problem}), so "
                    f"{group}={option} cannot be composed. Fix that line."
                )
            break
    return None


def _import_mistake(target: str, root: BaseException) -> str | None:
    """The paragraph for a module that imports without the named class, or for a module
    file that shadows the package meant (``tasks.py`` beside ``tasks/``); None otherwise."""
    import difflib
    import importlib

    module, _, name = target.rpartition(".")
    parts = module.split(".")
    for i in range(1, len(parts)):  # a plain module where a package was needed
        head = sys.modules.get(".".join(parts[:i]))
        if head is not None and not hasattr(head, "__path__"):
            return (
                f"task._target_={target}: {'.'.join(parts[:i])} is the module "
                f"{getattr(head, '__file__', '?')}, not a package, so {module} cannot be "
                f"imported from it: a module file shadows the package folder meant. Rename "
                "one of them."
            )
    try:
        found = importlib.import_module(module)
    except Exception:  # noqa: BLE001 - the module itself is what fails: said by the caller
        return None
    if hasattr(found, name):
        return None
    near = difflib.get_close_matches(name, [n for n in dir(found) if not n.startswith("_")], 1)
    return (
        f"task._target_={target}: the module {module} ({getattr(found, '__file__', '?')}) "
        f"imports, but has no {name!r}" + (f"; did you mean {near[0]!r}?" if near else ".")
    )


def import_failure(target: str, error: BaseException) -> str:
    """One paragraph for a task whose module does not import: which file, where we looked."""
    root = error
    while root.__cause__ is not None:
        root = root.__cause__
    module = target.rpartition(".")[0]
    if (known := _import_mistake(target, root)) is not None:
        return known
    if isinstance(root, ModuleNotFoundError) and f"{module}.".startswith(f"{root.name}."):
        rel = module.replace(".", os.sep)
        what = f"{rel}.py was not found (no module named {root.name!r})"
    else:
        frames = [
            f for f in traceback.extract_tb(root.__traceback__) if "importlib" not in f.filename
        ]
        at = f" in {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
        what = f"importing it raised {type(root).__name__}: {root}{at}"
    dirs = ", ".join(str(d) for d in config_dirs())
    return (
        f"task._target_={target}: the module {module} does not import: {what}. Modules are "
        f"looked up in the current directory {os.getcwd()}, then on sys.path; a project's "
        f"task modules go beside its conf/ folder (e.g. tasks/NAME.py with "
        f"conf/task/NAME.yaml). Configs are looked up in {dirs} and hydra.searchpath."
    )
