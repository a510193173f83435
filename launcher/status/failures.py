"""``status --failed``: failed items by error type, with a first example, and failed shards."""

from __future__ import annotations

from typing import Any

from launcher.layout import ERR, JobDir
from launcher.records import read_failures
from launcher.status.summary import Summary


def failures_digest(summary: Summary) -> dict[str, Any]:
    """Failed items by error type (count, shards, first example), their files, failed shards."""
    by_error: dict[str, dict[str, Any]] = {}
    files, damaged = [], {}
    for r in summary.shards:
        if not r.launched or not r.job_dir:
            continue
        path = JobDir(r.job_dir).failures
        try:
            records, bad = read_failures(path)
        except OSError:
            continue
        if records or bad:
            files.append(path)
        if bad:
            damaged[path] = bad
        for rec in records:
            error = str(rec.get("error", "?"))
            entry = by_error.setdefault(error, {"count": 0, "shards": set(), "first": None})
            entry["count"] += 1
            entry["shards"].add(r.tag)
            if entry["first"] is None:
                entry["first"] = {**rec, "shard": r.tag, "file": path}
    failed_shards = [
        {
            "array": r.array,
            "shard": r.shard,
            "tag": r.tag,
            "slurm_id": r.slurm_id,
            "slurm_state": r.slurm_state,
            "note": r.note,
            "log": r.log,
        }
        for r in summary.shards
        if r.state == "failed"
    ]
    for v in by_error.values():
        v["shards"] = sorted(v["shards"])
    return {"errors": by_error, "files": files, "damaged": damaged, "failed_shards": failed_shards}


def render_failed(summary: Summary) -> str:
    digest = failures_digest(summary)
    out = []
    errors = sorted(digest["errors"].items(), key=lambda kv: -kv[1]["count"])
    if errors:
        out.append("failed items by error type:")
    for error, v in errors:
        first = v["first"]
        out.append(f"  {error}: {v['count']} item(s) in {len(v['shards'])} shard(s)")
        message = first.get("message", "")
        out.append(f"    first: item {first.get('item', '?')} ({first['shard']}): {message}")
        tb = str(first.get("traceback") or "").rstrip().splitlines()[-6:]
        out.extend("      " + x for x in tb)
    if digest["files"]:
        out.append("failures files:")
        for path in digest["files"]:
            bad = digest["damaged"].get(path)
            if bad:
                lines = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
                path += f" ({len(bad)} damaged line(s) skipped: {lines})"
            out.append(f"  {path}")
    if digest["failed_shards"]:
        out.append("failed shards:")
        for s in digest["failed_shards"]:
            where = f" log {s['log']}{ERR}" if s.get("log") else ""
            out.append(f"  {s['tag']}: {s['note'] or 'failed'}{where}")
    return "\n".join(out) if out else "no failures"
