"""Every path of a sweep, a job and a state dir is named in ``launcher/layout.py`` alone:
no other module spells a record's name, so a reader finds them all in one file."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from launcher import layout

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [*(ROOT / "launcher").rglob("*.py"), *(ROOT / "hydra_plugins").rglob("*.py")]
OWNER = ROOT / "launcher" / "layout.py"

NAMES = [  # a record's or a launch file's name, anywhere in a string
    r"report\.json",
    r"failures\.jsonl",
    r"progress\.json",
    r"sweep\.json",
    r"summary\.json",
    r"params\.json",
    r"exits\.jsonl",
    r"local-queue\.json",
    r"local-scheduler\.log",
    r"inflight-",
    r"_submitted\.pkl",
    r"_result\.pkl",
    r"_log\b",
    r"\.(pkl|sbatch|lock)$",
    r"(^|/)\.launcher(/|$)",
    r"^\.(out|err|log)$",
    r"^(array|batch)-",
    r"%A_%a",
]
FOLDERS = {"locks", "done", "failures", "logs", "submitit", "jobs"}  # joined into a path


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the docstring nodes: prose may name the records."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _spelt(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            found += [f"{node.lineno}: {node.value!r}" for p in NAMES if re.search(p, node.value)]
        joined = []
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "join":
            joined = node.args
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            joined = [node.right]
        for arg in joined:
            if isinstance(arg, ast.Constant) and str(arg.value).split("/")[0] in FOLDERS:
                found.append(f"{arg.lineno}: {arg.value!r} joined into a path")
    return found


def test_no_module_but_layout_spells_a_record_name():
    spelt = {str(p.relative_to(ROOT)): hits for p in SOURCES if p != OWNER and (hits := _spelt(p))}
    assert not spelt, f"use launcher.layout for these paths: {spelt}"


def test_the_scan_sees_a_spelt_name(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        '"""report.json in a docstring is prose."""\n'
        'import os\nos.path.join(d, "report.json")\nos.path.join(d, "locks", "x")\n'
    )
    assert len(_spelt(bad)) == 2


def test_state_dir_paths_stay_urls():
    state = layout.StateDir("s3://bucket/out/.launcher")
    assert state.lock("shard-0-of-2") == "s3://bucket/out/.launcher/locks/shard-0-of-2.lock"
    assert state.marker("k", "shard-1-of-2") == "s3://bucket/out/.launcher/done/k/shard-1-of-2.json"
    assert state.shard_failures("t", "s", "shard-0-of-2").startswith(
        "s3://bucket/out/.launcher/failures/t/"
    )
    assert layout.default_state_dir("s3://bucket/out") == "s3://bucket/out/.launcher"
    assert layout.inflight("s3://bucket/out/.launcher", "/job", "x") == "/job/inflight-x.json"
    assert layout.inflight("/out/.launcher", "/job", "x") == "/out/.launcher/inflight-x.json"


def test_a_marker_name_gives_back_its_tag():
    assert layout.marker_tag(layout.marker_name("shard-3-of-8")) == "shard-3-of-8"
    assert layout.marker_tag(".tmp-shard-3-of-8.json") is None


def test_a_spec_lies_in_its_sweep_dir():
    sweep = layout.SweepDir("/sweeps/a")
    assert layout.sweep_of_spec(sweep.spec("20260101-1", 3)) == "/sweeps/a"
