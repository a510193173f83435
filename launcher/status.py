"""``python -m launcher status DIR [--json] [--watch [S]] [--failed]``: where a run or sweep stands.

DIR is a job directory (``report.json``/``progress.json``) or a sweep
directory: one launched by the local or SLURM launcher (its
``.launcher/sweep.json`` lists every shard, ids and logs), or any other
multirun directory (its job subdirectories are read). Per shard: state
(pending, running, done, failed, or stale: a heartbeat older than a few
intervals, likely killed), items done/total, items/s, ETA; then totals and an
overall ETA. SLURM's own view (``squeue``, ``sacct``) is merged in when those
commands exist. Only files and the SLURM client commands are read; the
merged view is written to ``DIR/summary.json``. Shards a relaunch skipped
because they were done before are counted from their completion markers, so
the totals stay right across relaunches.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any

from launcher.io import write_json_atomic
from launcher.progress import format_duration
from launcher.records import FAILURES, PROGRESS, REPORT, marker_path, now_iso

SWEEP_RECORD = os.path.join(".launcher", "sweep.json")
LOCAL_EXITS = os.path.join(".launcher", "exits.jsonl")
SUMMARY = "summary.json"
STATES = ("pending", "running", "done", "failed", "stale")
ACTIVE = {
    "PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING",
    "COMPLETING", "RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT",
    "RESV_DEL_HOLD", "SPECIAL_EXIT",
}  # fmt: skip
STALE_BEATS = 4  # a heartbeat older than this many intervals is stale
MIN_STALE_S = 10.0
LOST_S = 15.0  # out of squeue, unknown to sacct and no report for this long: ended


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# -- SLURM's view --------------------------------------------------------------------------------


def _expand(job_id: str) -> list[str]:
    """``12_[3,5-7%2]`` -> ``12_3 12_5 12_6 12_7`` (how squeue/sacct show pending elements)."""
    if "_[" not in job_id:
        return [job_id]
    main, spec = job_id.split("_[", 1)
    out = []
    for part in spec.rstrip("]").split("%")[0].split(","):
        lo, _, hi = part.partition("-")
        out += [f"{main}_{i}" for i in range(int(lo), int(hi or lo) + 1)]
    return out


def _run(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout if r.returncode == 0 else None


def slurm_states(array_job_ids: list[str]) -> tuple[dict[str, dict[str, str]], bool]:
    """SLURM's state of each element (``"A_a"``), squeue over sacct; and whether squeue answered."""
    if not array_job_ids:
        return {}, False
    ids = ",".join(sorted(set(array_job_ids)))
    states: dict[str, dict[str, str]] = {}
    acct = _run(["sacct", "-n", "-P", "-X", "-j", ids, "-o", "JobID,State,ExitCode"])
    for line in (acct or "").splitlines():
        parts = line.split("|")
        if len(parts) >= 3:
            for jid in _expand(parts[0]):
                states[jid] = {"state": parts[1].split()[0], "exit": parts[2], "source": "sacct"}
    queue = _run(["squeue", "-h", "-r", "-j", ids, "-o", "%i|%T|%r"])
    for line in (queue or "").splitlines():
        parts = line.split("|")
        if len(parts) >= 3:
            for jid in _expand(parts[0]):
                states[jid] = {"state": parts[1], "reason": parts[2], "source": "squeue"}
    return states, queue is not None


# -- one shard -------------------------------------------------------------------------------------


def _numbers(rec: dict[str, Any]) -> dict[str, Any]:
    total = rec.get("total")
    done = (rec.get("skipped") or 0) + (rec.get("processed") or 0)
    return {
        "total": total,
        "done": done,
        "processed": rec.get("processed") or 0,
        "skipped": rec.get("skipped") or 0,
        "failed_items": rec.get("failed") or 0,
        "planned": rec.get("planned", True),
        "items_per_s": rec.get("items_per_s"),
        "eta_s": rec.get("eta_s"),
    }


def shard_row(
    job_dir: str,
    heartbeat_s: float,
    slurm: dict[str, str] | None = None,
    exit_code: int | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The state and counters of one job, from its files and (if any) SLURM's state."""
    now = time.time() if now is None else now
    report = _read_json(os.path.join(job_dir, REPORT))
    progress = _read_json(os.path.join(job_dir, PROGRESS))
    row: dict[str, Any] = {"job_dir": job_dir, "note": ""}
    age = None
    if progress is not None:
        age = max(0.0, now - float(progress.get("updated_unix", now)))
    row["heartbeat_age_s"] = None if age is None else round(age, 1)
    stale = age is not None and age > max(STALE_BEATS * heartbeat_s, MIN_STALE_S)
    s = (slurm or {}).get("state")
    live = progress if progress is not None and (report is None or s == "RUNNING") else None
    row.update(_numbers(live or report or progress or {}))
    if report is not None and live is None:
        row["exit_code"] = report.get("exit_code")
        row["items_per_s"], row["eta_s"] = report.get("items_per_s"), None
    else:
        row["exit_code"] = exit_code
    if s in ACTIVE:
        if s == "RUNNING":
            state = "stale" if stale and report is None else "running"
            if state == "stale":
                row["note"] = f"SLURM says RUNNING, no heartbeat for {age:.0f}s"
        else:
            state = "pending"
            if report is not None or progress is not None:
                row["note"] = f"requeued ({(slurm or {}).get('reason', '')})".replace(" ()", "")
        row["final"] = False
    elif s is not None:  # ended, by SLURM's account
        state = "done" if s == "COMPLETED" and (report or {}).get("exit_code", 0) == 0 else "failed"
        if s != "COMPLETED":
            row["note"] = f"SLURM: {s}" + (f" (exit {slurm['exit']})" if slurm.get("exit") else "")
        row["final"] = True
    elif report is not None:
        ok = report.get("exit_code") == 0 and report.get("state") in ("completed", "dry_run")
        state = "done" if ok else "failed"
        if not ok:
            why = report.get("stop_reason") or report.get("error") or report.get("state")
            row["note"] = f"exit {report.get('exit_code')}: {why}"
        row["final"] = True
    elif exit_code is not None:
        state, row["final"] = ("done" if exit_code == 0 else "failed"), True
        row["note"] = f"exit {exit_code} before writing report.json"
    elif progress is not None:
        state = "stale" if stale else "running"
        if stale:
            row["note"] = f"no heartbeat for {age:.0f}s: likely killed"
        row["final"] = False
    else:
        state, row["final"] = "pending", False
    row["state"] = state
    if state not in ("running", "stale"):
        row["eta_s"] = None
    return row


# -- a sweep ---------------------------------------------------------------------------------------


def _local_exits(directory: str) -> dict[tuple[int, Any], int]:
    out = {}
    try:
        with open(os.path.join(directory, LOCAL_EXITS), encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                out[(rec["array"], rec["shard"])] = rec["exit_code"]
    except (OSError, ValueError):
        pass
    return out


def _mtime(path: str | None, suffix: str = ".err") -> float:
    try:
        return os.path.getmtime(path + suffix) if path else 0.0
    except OSError:
        return 0.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _launched_rows(record: dict[str, Any], directory: str) -> list[dict[str, Any]]:
    backend = record.get("backend")
    slurm_ids = [
        e["slurm_id"].split("_")[0]
        for a in record["arrays"]
        for e in a["elements"]
        if e.get("slurm_id")
    ]
    slurm, queue_ok = slurm_states(slurm_ids) if backend == "slurm" else ({}, False)
    exits = _local_exits(directory) if backend == "local" else {}
    sched = record.get("scheduler") or {}
    sched_gone = (
        bool(sched) and sched.get("host") == os.uname().nodename and not _alive(sched["pid"])
    )
    now = time.time()
    rows = []
    for a in record["arrays"]:
        for e in a["elements"]:
            base = {
                "array": a["index"],
                "shard": e["shard"],
                "tag": e["tag"],
                "launched": e["launched"],
                "slurm_id": e.get("slurm_id"),
                "slurm_state": None,
                "log": os.path.join(directory, e["log"]) if e.get("log") else None,
            }
            if not e["launched"]:
                rows.append({**base, **_earlier(e, a["key"])})
                continue
            st = slurm.get(e.get("slurm_id") or "")
            job_dir = os.path.join(directory, e["job_dir"])
            row = shard_row(job_dir, a["heartbeat_s"], st, exits.get((a["index"], e["shard"])), now)
            row.update(base, slurm_state=st["state"] if st else None)
            if backend == "slurm" and st is None and queue_ok and not row["final"]:
                # out of the queue, unknown to sacct (yet: it lags a few seconds), no report
                since = max(_mtime(os.path.join(directory, SWEEP_RECORD), ""), _mtime(row["log"]))
                if now - since > LOST_S:
                    row.update(state="failed", final=True, note="left the SLURM queue, no report")
            if sched_gone and row["state"] == "pending":
                row.update(state="failed", final=True, note="never started: scheduler is gone")
            if row["state"] in ("failed", "stale"):
                _maybe_done_later(row, e, a["key"], record.get("created_at", ""))
            rows.append(row)
    return rows


def _earlier(element: dict[str, Any], key: str) -> dict[str, Any]:
    """A shard skipped by a relaunch: its numbers from its completion marker."""
    marker = None
    if element.get("state_dir"):
        marker = _read_json(marker_path(element["state_dir"], key, element["tag"]))
    row = {"state": "done", "final": True, "exit_code": 0, "heartbeat_age_s": None}
    row.update(_numbers(marker or {}), eta_s=None, items_per_s=None)
    row["job_dir"] = (marker or {}).get("job_dir")
    row["note"] = f"done before, in {row['job_dir']}" if marker else "done before"
    return row


def _maybe_done_later(row: dict[str, Any], element: dict[str, Any], key: str, since: str) -> None:
    """A shard that failed here but completed in a later relaunch counts as done."""
    if not element.get("state_dir"):
        return
    marker = _read_json(marker_path(element["state_dir"], key, element["tag"]))
    if marker and marker.get("ended_at", "") > since:
        row.update(_numbers(marker), state="done", final=True, eta_s=None)
        why = row["note"] or row["state"]
        row["note"] = f"failed here ({why}), done later in {marker['job_dir']}"


def _plain_rows(directory: str) -> list[dict[str, Any]]:
    """A directory without a sweep record: itself if it is a job dir, else its job subdirs."""
    if any(os.path.exists(os.path.join(directory, f)) for f in (REPORT, PROGRESS)):
        dirs = [directory]
    else:
        subs = [d for d in os.listdir(directory) if os.path.isdir(os.path.join(directory, d))]
        subs.sort(key=lambda d: (not d.isdigit(), int(d) if d.isdigit() else 0, d))
        dirs = [
            os.path.join(directory, d)
            for d in subs
            if any(os.path.exists(os.path.join(directory, d, f)) for f in (REPORT, PROGRESS))
        ]
    rows = []
    for d in dirs:
        row = shard_row(d, heartbeat_s=5.0)
        info = _read_json(os.path.join(d, REPORT)) or _read_json(os.path.join(d, PROGRESS)) or {}
        shard = (info.get("shard") or {}) if isinstance(info.get("shard"), dict) else {}
        tag = f"shard-{shard.get('idx')}-of-{shard.get('num')}" if shard else os.path.basename(d)
        row.update(array=0, shard=shard.get("idx"), tag=tag, launched=True, slurm_id=None)
        row.update(slurm_state=None, log=None)
        rows.append(row)
    return rows


def collect(directory: str, write: bool = True) -> dict[str, Any]:
    """The merged view of a run or sweep directory; also written to ``summary.json``."""
    directory = os.path.abspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory}: no such directory")
    record = _read_json(os.path.join(directory, SWEEP_RECORD))
    rows = _launched_rows(record, directory) if record else _plain_rows(directory)
    if not rows:
        raise FileNotFoundError(
            f"{directory} is neither a run directory (report.json, progress.json) "
            "nor a sweep directory (.launcher/sweep.json or job subdirectories)."
        )
    summary = {
        "dir": directory,
        "backend": (record or {}).get("backend", "in-process"),
        "updated_at": now_iso(),
        "arrays": [
            {"index": a["index"], "overrides": a["overrides"], "key": a["key"]}
            for a in (record or {}).get("arrays", [])
        ],
        "totals": totals(rows),
        "shards": rows,
    }
    if write and (record is not None or len(rows) > 1):
        write_json_atomic(os.path.join(directory, SUMMARY), summary)
    return summary


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Shards by state, items, the current rate and the overall ETA.

    Shards that have not counted their items yet are assumed to be as large as
    the average shard that has, so the ETA covers them too.
    """
    by_state = {s: 0 for s in STATES}
    for r in rows:
        by_state[r["state"]] += 1
    known = [r for r in rows if r.get("total") is not None and r.get("planned", True)]
    total = sum(r["total"] for r in known)
    done = sum(r["done"] for r in rows)
    failed = sum(r["failed_items"] for r in rows)
    unknown = len(rows) - len(known)
    avg = total / len(known) if known else None
    estimated_total = total + (unknown * avg if avg is not None else 0)
    rate = sum(r["items_per_s"] or 0 for r in rows if r["state"] == "running")
    remaining = max(0.0, estimated_total - done - failed)
    eta = remaining / rate if rate > 0 else None
    return {
        "shards": {"total": len(rows), **by_state},
        "items": {
            "total": total,
            "estimated_total": round(estimated_total),
            "done": done,
            "processed": sum(r["processed"] for r in rows),
            "skipped": sum(r["skipped"] for r in rows),
            "failed": failed,
        },
        "items_per_s": round(rate, 3),
        "eta_s": None if eta is None else round(eta, 1),
        "finished": all(r["final"] for r in rows),
    }


# -- for people ------------------------------------------------------------------------------------


def _dur(seconds: float | None) -> str:
    return format_duration(seconds, "-")


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render(summary: dict[str, Any], failed: bool = False) -> str:
    """The per-shard table, totals and overall ETA (and the failure digest with ``failed``)."""
    rows, t = summary["shards"], summary["totals"]
    multi = len(summary["arrays"]) > 1
    slurm = any(r["slurm_id"] for r in rows)
    header = ["array"] * multi + ["shard", "state"] + ["slurm", "job"] * slurm
    header += ["done/total", "failed", "items/s", "ETA", "note"]
    table = [header]
    for r in rows:
        shard = r["tag"] if r["shard"] is None else str(r["shard"])
        total = "?" if r["total"] is None else f"{r['total']}{'' if r['planned'] else '+'}"
        line = [str(r["array"])] * multi + [shard, r["state"]]
        line += [r["slurm_state"] or "-", r["slurm_id"] or "-"] * slurm
        line += [f"{r['done']}/{total}", str(r["failed_items"]), _rate(r["items_per_s"])]
        line += [_dur(r["eta_s"]), r["note"]]
        table.append(line)
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    out = [f"{summary['dir']} ({summary['backend']})"]
    for a in summary["arrays"] if multi else []:
        out.append(f"  array {a['index']}: {' '.join(a['overrides']) or '(no overrides)'}")
    for row in table:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)] + [row[-1]]
        out.append("  ".join(cells).rstrip())
    n, it = t["shards"], t["items"]
    states = ", ".join(f"{n[s]} {s}" for s in STATES if n[s])
    out.append(f"shards: {n['total']} ({states})")
    est = "" if it["estimated_total"] == it["total"] else f" (~{it['estimated_total']} estimated)"
    out.append(
        f"items: {it['done']}/{it['total']}{est} done, {it['failed']} failed; "
        f"{t['items_per_s']:.1f} items/s; ETA {_dur(t['eta_s']) if not t['finished'] else '-'}"
    )
    if failed:
        out.append(render_failed(summary))
    return "\n".join(out)


def failures_digest(summary: dict[str, Any]) -> dict[str, Any]:
    """Failed items by error type (count, shards, first example) and failed shards."""
    by_error: dict[str, dict[str, Any]] = {}
    files = []
    for r in summary["shards"]:
        if not r["launched"] or not r.get("job_dir"):
            continue
        path = os.path.join(r["job_dir"], FAILURES)
        try:
            with open(path, encoding="utf-8") as f:
                lines = [json.loads(x) for x in f if x.strip()]
        except (OSError, ValueError):
            continue
        if lines:
            files.append(path)
        for rec in lines:
            entry = by_error.setdefault(
                rec.get("error", "?"), {"count": 0, "shards": set(), "first": None}
            )
            entry["count"] += 1
            entry["shards"].add(r["tag"])
            if entry["first"] is None:
                entry["first"] = {**rec, "shard": r["tag"], "file": path}
    failed_shards = [
        {k: r.get(k) for k in ("array", "shard", "tag", "slurm_id", "slurm_state", "note", "log")}
        for r in summary["shards"]
        if r["state"] == "failed"
    ]
    for v in by_error.values():
        v["shards"] = sorted(v["shards"])
    return {"errors": by_error, "files": files, "failed_shards": failed_shards}


def render_failed(summary: dict[str, Any]) -> str:
    digest = failures_digest(summary)
    out = []
    errors = sorted(digest["errors"].items(), key=lambda kv: -kv[1]["count"])
    if errors:
        out.append("failed items by error type:")
    for error, v in errors:
        first = v["first"]
        out.append(f"  {error}: {v['count']} item(s) in {len(v['shards'])} shard(s)")
        message = first.get("message", "")
        out.append(f"    first: item {first['item']} ({first['shard']}): {message}")
        tb = (first.get("traceback") or "").rstrip().splitlines()[-6:]
        out.extend("      " + x for x in tb)
    if digest["files"]:
        out.append("failures files:")
        out.extend("  " + p for p in digest["files"])
    if digest["failed_shards"]:
        out.append("failed shards:")
        for s in digest["failed_shards"]:
            where = f" log {s['log']}.err" if s.get("log") else ""
            out.append(f"  {s['tag']}: {s['note'] or 'failed'}{where}")
    return "\n".join(out) if out else "no failures"


def main(argv: list[str]) -> int:
    """Exit code: 0 nothing failed (so far), 1 a shard failed, 2 DIR is not a run or sweep."""
    parser = argparse.ArgumentParser(
        prog="python -m launcher status",
        description="Per-shard state, progress and ETA of a run or sweep directory.",
    )
    parser.add_argument("dir", help="a job directory or a sweep (multirun) directory")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=5.0,
        metavar="SECONDS",
        help="refresh every SECONDS (default 5) until every shard has ended",
    )
    parser.add_argument(
        "--failed", action="store_true", help="failed items by error type, first example, files"
    )
    args = parser.parse_args(argv)
    try:
        while True:
            summary = collect(args.dir)
            if args.json:
                if args.failed:
                    summary["failures"] = failures_digest(summary)
                text = json.dumps(summary, indent=2, default=str)
            else:
                text = render(summary, failed=args.failed)
            if args.watch and sys.stdout.isatty():
                text = "\033[H\033[J" + text
            print(text, flush=True)
            if not args.watch or summary["totals"]["finished"]:
                break
            time.sleep(args.watch)
    except FileNotFoundError as e:
        print(f"status: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `status DIR | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 1 if summary["totals"]["shards"]["failed"] else 0
