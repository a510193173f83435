"""``python -m bench [--quick] [--only W1,W2] [--reps N]``: run the workloads, print the table,
write ``bench/results/<date>-<host>.json``.

Progress goes to stderr, the table to stdout. Re-running some workloads with
``--only`` the same day merges them into that day's file, replacing only them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import report, targets
from bench.harness import Options, repeat, summarize
from bench.load import QUIET_CPUS, cpu_count, others_busy
from bench.suites import WORKLOADS, Mode, Workload


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes, few repetitions (CI smoke)")
    p.add_argument(
        "--only", default="", help="comma-separated workloads or prefixes, e.g. W1,W4,S1"
    )
    p.add_argument(
        "--reps", type=int, default=None, help="repetitions per workload (default 2 quick, 5 full)"
    )
    p.add_argument(
        "--retries",
        type=int,
        default=None,
        help="re-runs of a disturbed repetition (0 quick, 2 full)",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=None,
        help="before each repetition, wait up to this many seconds for other processes to go idle "
        "(0 quick, 10 full)",
    )
    p.add_argument("--out", type=Path, default=report.RESULTS, help="results directory")
    p.add_argument("--list", action="store_true", help="list the workloads and exit")
    return p.parse_args(argv)


def select(only: str) -> list[Workload]:
    if not only:
        return WORKLOADS
    wanted = [w.strip().upper() for w in only.split(",") if w.strip()]
    chosen = [w for w in WORKLOADS if any(w.name.upper().startswith(x) for x in wanted)]
    unknown = [x for x in wanted if not any(w.name.upper().startswith(x) for w in WORKLOADS)]
    if unknown:
        names = ", ".join(w.name for w in WORKLOADS)
        raise SystemExit(f"--only: unknown workload(s) {unknown}; choose from {names}")
    return chosen


def run_workload(w: Workload, mode: Mode, opts: Options) -> dict[str, Any] | None:
    """Run one workload and print its table; None when it cannot run here (it says why)."""
    print(f"{w.name}: {w.title}", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    built = w.build(mode)
    if built.skip:
        print(f"\n{w.name}: {w.title}\n  skipped: {built.skip}", flush=True)
        return None
    reps = Options(
        built.reps or opts.reps,
        opts.retries if built.cpu_bound else 0,
        opts.wait_quiet_s if built.cpu_bound else 0.0,
    )
    runs = repeat(w.name, built.contenders, reps)
    summaries, clean = summarize(runs)
    clean = clean or not built.cpu_bound  # busy CPUs do not move a memory peak
    checked = targets.check(w.name, summaries)
    notes = {c.name: c.note for c in built.contenders}
    print(
        report.table(w.name, w.title, w.unit, w.higher_is_better, summaries, notes, clean, checked)
    )
    sys.stdout.flush()
    print(f"  ({w.name} took {time.monotonic() - t0:.0f}s)", file=sys.stderr, flush=True)
    return {
        "title": w.title,
        "unit": w.unit,
        "higher_is_better": w.higher_is_better,
        "info": built.info,
        "contenders": {c.name: {"note": c.note, **c.info} for c in built.contenders},
        "summary": {s.contender: s.as_dict() for s in summaries},
        "clean": clean,
        "targets": checked,
        "runs": [r.as_dict() for r in runs],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.list:
        for w in WORKLOADS:
            print(f"{w.name:<9}{w.title} [{w.unit}]")
        return 0
    mode = Mode(quick=args.quick, reps=args.reps)
    opts = Options(
        reps=args.reps or mode.pick(2, 5),
        retries=args.retries if args.retries is not None else mode.pick(0, 2),
        wait_quiet_s=args.wait_quiet if args.wait_quiet is not None else mode.pick(0.0, 10.0),
    )
    chosen = select(args.only)
    busy = others_busy(1.0)
    print(
        f"bench: {'quick' if args.quick else 'full'} mode, {cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f}, "
        f"other processes using {busy:.2f} CPUs now (runs above {QUIET_CPUS} are flagged)",
        file=sys.stderr,
        flush=True,
    )
    results: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": report.machine(),
        "options": {"reps": opts.reps, "retries": opts.retries, "wait_quiet_s": opts.wait_quiet_s},
        "workloads": {},
    }
    failed = []
    for w in chosen:
        stamp = {
            "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "git": results["machine"]["git"],
        }
        try:
            entry = run_workload(w, mode, opts)
        except Exception:  # noqa: BLE001 - one broken workload must not lose the others
            failed.append(w.name)
            print(f"{w.name} failed:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
            continue
        if entry is None:  # not run: an earlier result in today's file stays
            continue
        results["workloads"][w.name] = {**stamp, **entry}
        results["ended_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        _save(results, args.out, args.quick)  # after each workload: a crash loses only one
    if failed:
        print(f"bench: {', '.join(failed)} failed (see above)", file=sys.stderr)
    return 1 if failed else 0


def _save(results: dict[str, Any], out_dir: Path, quick: bool) -> None:
    """Merge into today's file for this host and mode: re-run workloads replace their old entry
    (each workload carries its own ``measured_at`` and ``git``)."""
    path = report.result_path(out_dir, quick)
    merged = dict(results)
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = {}
        if old.get("mode") == results["mode"]:
            merged["workloads"] = {**old.get("workloads", {}), **results["workloads"]}
    report.write(merged, path)
