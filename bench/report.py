"""The table on stdout and the JSON file under ``bench/results/``: what a run leaves behind."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bench.harness import Summary
from bench.load import QUIET_CPUS, cpu_count

RESULTS = Path(__file__).resolve().parent / "results"
DISTS = (
    "shard-launcher",
    "hydra-core",
    "omegaconf",
    "psutil",
    "submitit",
    "kagurazaka",
    "pqdm",
    "mtasklite",
    "hydra-submitit-launcher",
)


def _fmt(value: float, unit: str) -> str:
    if unit == "items/s":
        return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.1f}k"
    if unit == "s":
        return f"{value:.3f}s"
    return f"{value:.0f}"


def table(
    name: str,
    title: str,
    unit: str,
    higher_is_better: bool,
    summaries: list[Summary],
    notes: dict[str, str],
    clean: bool,
    targets: list[dict[str, Any]],
) -> str:
    better = "higher" if higher_is_better else "lower"
    lines = [f"\n{name}: {title}  [{unit}, {better} is better; ratio = ours/contender]"]
    if not clean:
        lines.append("  !! every repetition was disturbed by other processes: figures are noisy")
    w = max([15, *(len(s.contender) + 2 for s in summaries)])
    lines.append(
        f"  {'contender':<{w}}{'median':>10}{'min-max':>22}{'ratio':>8}{'reps':>6}{'busy':>6}  note"
    )
    for s in summaries:
        ratio = "" if s.ratio is None or s.contender == "ours" else f"{s.ratio:.2f}x"
        span = f"{_fmt(s.low, unit)}-{_fmt(s.high, unit)}"
        lines.append(
            f"  {s.contender:<{w}}{_fmt(s.median, unit):>10}{span:>22}{ratio:>8}{s.reps:>6}"
            f"{s.flagged:>6}  {notes.get(s.contender, '')}"
        )
        if s.contender == "serial" and unit == "items/s":
            lines.append(
                f"  {'ideal':<{w}}{_fmt(s.median * 2, unit):>10}{'':>42}  serial x 2 workers"
            )
    for t in targets:
        status = "met" if t["met"] else f"MISSED ({t['shortfall']})"
        lines.append(f"  target {t['target']}: {t['measured']:.3g} -> {status}")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), ""
            )
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for dist in DISTS:
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = None
    return {
        "host": socket.gethostname(),
        "cpus": cpu_count(),
        "cpu_model": model,
        "platform": platform.platform(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "versions": versions,
        "git": _git(),
        "busy_threshold_cpus": QUIET_CPUS,
    }


def _git() -> dict[str, Any]:
    repo = Path(__file__).resolve().parent.parent

    def run(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10)
        return out.stdout.strip()

    try:
        return {
            "commit": run("rev-parse", "HEAD"),
            "dirty": bool(run("status", "--porcelain", "--", "launcher")),
        }
    except (OSError, subprocess.SubprocessError):
        return {}


def result_path(out_dir: Path, quick: bool) -> Path:
    """``<date>-<host>.json`` for a full run; quick runs get ``-quick`` (git-ignored)."""
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    return out_dir / f"{day}-{socket.gethostname()}{'-quick' if quick else ''}.json"


def write(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1, default=str) + "\n")
    os.replace(tmp, path)
    print(f"\nresults: {os.path.relpath(path)}", file=sys.stderr)
