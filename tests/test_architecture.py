"""docs/architecture.md stays true: every module file of the package is named in its
table, and every file and dotted name it quotes exists in the code."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "architecture.md"
PACKAGE = ROOT / "launcher"
CONFIG_KEYS = {"task", "shard", "backbone", "run", "hydra", "cfg"}  # `shard.idx` is config
FILE_TYPES = {"py", "json", "jsonl", "yaml", "md", "html", "toml", "txt", "log", "lock", "sh"}
ROOTS = ("launcher/", "hydra_plugins/", "tests/", "bench/", "docs/", "scripts/")


def _quoted(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", text)


def _modules() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py"))


def _named_in_table(text: str) -> set[str]:
    """The package files the table names: in full, or by a name under the row's folder."""
    named = set()
    for row in (line for line in text.splitlines() if line.startswith("| `")):
        first, rest = row.split("|")[1], "|".join(row.split("|")[2:])
        folders = [q for q in _quoted(first) if q.endswith("/")]
        for q in _quoted(row):
            named.add(q)
            named.update(f"{folder}{q}" for folder in folders if q.endswith(".py"))
        named.update(f"{f}{q}" for f in folders for q in _quoted(rest))
    return named


def test_every_module_file_is_named_in_the_table():
    named = _named_in_table(PAGE.read_text(encoding="utf-8"))
    missing = [m for m in _modules() if m not in named]
    assert not missing, f"docs/architecture.md's table does not name: {missing}"


def test_every_quoted_file_exists():
    files = {str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if ".git" not in p.parts}
    folders = {f"{f}/" for f in files if (ROOT / f).is_dir()}
    missing = []
    for q in set(_quoted(PAGE.read_text(encoding="utf-8"))):
        name = q.split(" ")[0]
        if (
            name.startswith(ROOTS)
            and name not in files | folders
            or re.fullmatch(r"[\w/]+\.py", name)
            and not any(f == name or f.endswith("/" + name) for f in files)
        ):
            missing.append(q)
    assert not missing, f"docs/architecture.md quotes files that do not exist: {missing}"


def _module(dotted: str) -> object | None:
    """``launcher.<dotted>`` or the one module of the package whose path ends so."""
    modules = _dotted_modules()
    if f"launcher.{dotted}" in modules:
        return importlib.import_module(f"launcher.{dotted}")
    candidates = [m for m in modules if m.endswith("." + dotted)]
    return importlib.import_module(candidates[0]) if len(candidates) == 1 else None


def _dotted_modules() -> list[str]:
    return [
        ".".join(Path(m).with_suffix("").parts).removesuffix(".__init__")
        for m in _modules()
        if "/examples/" not in m
    ]


def _classes() -> dict[str, object]:
    found: dict[str, object] = {}
    for name in _dotted_modules():
        for attr, value in vars(importlib.import_module(name)).items():
            if inspect.isclass(value) and value.__module__ == name:
                found[attr] = value
    return found


def _resolves(dotted: str, classes: dict[str, object]) -> bool | None:
    """Whether ``a.b.c`` names something of the code; None when it names no module or class
    of ours (a config key, another library)."""
    parts = dotted.split(".")
    if parts[0] in CONFIG_KEYS:
        return None
    for cut in range(len(parts), 0, -1):
        head = ".".join(parts[:cut])
        where = _module(head.removeprefix("launcher.")) if head != "launcher" else None
        if where is None and cut == 1:
            where = classes.get(head)
        if where is None and head == "launcher":
            where = importlib.import_module("launcher")
        if where is not None:
            break
    else:
        return None
    for attr in parts[cut:]:
        value = getattr(where, attr, None)
        if value is None and inspect.isclass(where):
            value = _instance_attribute(where, attr)
        if value is None:
            return False
        where = value
    return True


def _instance_attribute(cls: type, attr: str) -> object | None:
    """An attribute the class's methods set on ``self`` (or a dataclass field)."""
    fields = getattr(cls, "__dataclass_fields__", {})
    if attr in fields:
        return fields[attr]
    source = inspect.getsource(cls)
    return attr if re.search(rf"self\.{re.escape(attr)}\b[^=\n]*=", source) else None


def test_every_quoted_name_exists():
    classes = _classes()
    wrong = []
    for q in set(_quoted(PAGE.read_text(encoding="utf-8"))):
        name = re.sub(r"\(.*$", "", q)
        if "." not in name or not re.fullmatch(r"[A-Za-z_][\w.]*", name):
            continue
        if name.rpartition(".")[2] in FILE_TYPES:  # a file's name, not a dotted one
            continue
        if _resolves(name, classes) is False:
            wrong.append(q)
    assert not wrong, f"docs/architecture.md names what the code does not have: {wrong}"


def test_the_checks_see_a_stale_page():
    classes = _classes()
    assert _resolves("launcher.compose", classes) is False
    assert _resolves("Plan.error", classes) is False
    assert _resolves("Plan.exhausted", classes) is True
    assert _resolves("app._JobRun.build", classes) is True
    assert _resolves("shard.idx", classes) is None
    assert "launcher/backbones/batching.py" not in _named_in_table("| `launcher/backbones/` | x |")
