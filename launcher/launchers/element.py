"""One array element: load the array's config, bind this element's shard, run the job.

Run by the local launcher (``python -m launcher.launchers.element --local SPEC SHARD``)
and by SLURM (``--slurm CHUNK``, which hands over to submitit's job runner so
that its requeue machinery applies). On SLURM the shard is
``offset + SLURM_ARRAY_TASK_ID``: one array, one pickled config, no per-element
files at submission time.

Preemption and time limits: SLURM (or ``job._interrupt()``) sends USR2. The
element stops taking items, lets items in flight finish (``run.grace_s``),
writes its records, and only then lets submitit checkpoint and requeue it; the
requeued element skips what is done. The exit code is the job's own (1 when
items failed, 2 for a bad config), so SLURM marks the element FAILED, and the
first traceback of each error type goes to the element's ``.err`` log.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
from typing import Any

from launcher.layout import JobDir, submitted_pickle, sweep_of_spec
from launcher.records import read_failures

USR2_AFTER_TERM_S = 3.0
EXIT_MEANING = {1: "items failed or the job stopped on an error", 2: "bad config or input"}


def run_element(spec_path: str, shard: int | None, job_id: str | None = None) -> int:
    """Run the element's job in this process; return its exit code."""
    from hydra.core.utils import JobStatus, setup_globals

    from launcher import app
    from launcher.internals import job_exception, run_job_here
    from launcher.launchers.arrays import bind, load_spec
    from launcher.resolvers import register_resolvers

    if not os.path.exists(spec_path):  # never recreate a moved sweep dir's old path
        print(moved(spec_path), file=sys.stderr, flush=True)
        return 2
    spec = load_spec(spec_path)
    for path in reversed(spec["sys_path"]):
        if path not in sys.path:
            sys.path.insert(0, path)
    cfg = spec["config"]
    os.chdir(cfg.hydra.runtime.cwd)  # relative paths in the config mean what they did at launch
    setup_globals()
    register_resolvers()
    num = spec["job_nums"][shard]
    bind(cfg, shard, num, job_id or str(num))
    ret = run_job_here(cfg, app.run, "hydra.sweep.dir", "hydra.sweep.subdir")
    if ret.status is JobStatus.FAILED:
        raise job_exception(ret)  # a bug, not a failed item: the traceback goes to .err
    code = int(ret.return_value or 0)
    job_dir = cfg.hydra.runtime.output_dir
    if code and os.path.isdir(job_dir):  # a job whose dir went away has said so itself
        print(failure_summary(job_dir, code), file=sys.stderr, flush=True)
    return code


def moved(spec_path: str) -> str:
    sweep = sweep_of_spec(spec_path)
    return (
        f"{spec_path} is gone: the sweep dir {sweep} was moved or deleted after this element "
        "was launched, and elements find their config, job dir and logs by absolute path. "
        "Nothing was run. Move a sweep dir only once every element has ended; to go on, run the "
        "same command again (with hydra.sweep.dir=NEW): only shards without a completion marker "
        "are launched."
    )


def failure_summary(job_dir: str, code: int, examples: int = 3) -> str:
    """For the ``.err`` log: why the element failed, with the first traceback per error type."""
    lines = [f"job in {job_dir} exited with code {code}"]
    if code in EXIT_MEANING:
        lines[0] += f" ({EXIT_MEANING[code]})"
    try:
        with open(JobDir(job_dir).report, encoding="utf-8") as f:
            report = json.load(f)
        lines.append(
            f"processed {report['processed']}, skipped {report['skipped']}, "
            f"failed {report['failed']} of {report['total']} items"
        )
        for k in ("stop_reason", "error"):
            if report.get(k):
                lines.append(f"{k}: {report[k]}")
    except (OSError, ValueError, KeyError):
        pass
    seen: dict[str, int] = {}
    path = JobDir(job_dir).failures
    try:
        records, _ = read_failures(path)
    except OSError:
        records = []
    for rec in records:
        error = str(rec.get("error"))
        n = seen[error] = seen.get(error, 0) + 1
        if n == 1 and len(seen) <= examples:
            lines.append(f"--- first {error}, item {rec.get('item')}:")
            lines.append(
                str(rec.get("traceback") or "").rstrip() or f"{error}: {rec.get('message')}"
            )
    log = JobDir(job_dir).log()
    if seen:
        counts = ", ".join(f"{n} {err}" for err, n in seen.items())
        lines.append(f"failed items: {counts}; all of them in {path}")
    else:  # no failed item: the reason is in the log (a bad config names its key there)
        try:
            with open(log, encoding="utf-8") as f:
                lines += ["--- end of the log:", *f.read().splitlines()[-5:]]
        except OSError:
            pass
    lines.append(f"log: {log}")
    return "\n".join(lines)


class ShardElement:
    """The callable submitit runs in each element of a SLURM array (a Checkpointable)."""

    def __init__(self, spec_path: str, offset: int | None) -> None:
        self.spec_path = spec_path
        self.offset = offset  # None: a job that keeps its own shard selection

    def __call__(self) -> int:
        task_id = int(os.environ["SLURM_ARRAY_TASK_ID"])
        shard = None if self.offset is None else self.offset + task_id
        job_id = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{task_id}"
        usr2 = _Usr2.instance()
        code = run_element(self.spec_path, shard, job_id)
        if code >= 128 and not usr2.received.is_set():
            usr2.received.wait(USR2_AFTER_TERM_S)  # a preemption may send SIGTERM, then USR2
        if code >= 128 and usr2.received.is_set():  # stopped early: submitit requeues us
            usr2.deliver()
        if code:
            sys.exit(code)  # SLURM marks the element FAILED, with our exit code
        return code

    def checkpoint(self) -> Any:
        """Requeue the same element; item-level finish checks make it resume."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(ShardElement(self.spec_path, self.offset))


class _Usr2:
    """Turns USR2 (time limit near, preemption) into the job's graceful stop.

    SLURM signals every process of the step, and submitit's handler requeues
    right away: workers would die mid-item and the records would be cut short.
    Instead USR2 is blocked from the start, so every thread and worker process
    inherits the block; one thread waits for it and stops the job the way
    SIGTERM does, and submitit's handler runs once the records are written.
    """

    _instance: _Usr2 | None = None

    def __init__(self) -> None:
        self.received = threading.Event()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
        threading.Thread(target=self._watch, name="usr2", daemon=True).start()

    @classmethod
    def instance(cls) -> _Usr2:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def deliver(self) -> None:
        """Let USR2 reach, in this thread, the handler submitit installed for it (which
        checkpoints and requeues), as if it had never been held back."""
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR2})
        signal.raise_signal(signal.SIGUSR2)

    def _watch(self) -> None:
        from launcher import stops

        signal.sigwait({signal.SIGUSR2})
        self.received.set()
        stops.request(signal.SIGUSR2)


def _slurm_main(chunk_pickle: str) -> None:
    """Give this element the chunk's submitit pickle (once: a requeue keeps its own), run it."""
    _Usr2.instance()  # before any thread exists (submitit imports numpy, which starts some)
    from launcher.internals import process_job

    folder = os.path.dirname(chunk_pickle)
    job_id = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    target = submitted_pickle(folder, job_id)
    if not os.path.exists(target):
        tmp = f"{target}.{os.getpid()}.tmp"
        try:
            os.link(chunk_pickle, tmp)
        except OSError:  # a file system without hard links
            shutil.copyfile(chunk_pickle, tmp)
        os.replace(tmp, target)
    process_job(folder)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m launcher.launchers.element")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--slurm", metavar="CHUNK_PICKLE", help="run as an element of a SLURM array")
    mode.add_argument("--local", nargs=2, metavar=("SPEC", "SHARD"), help="run one shard here")
    args = parser.parse_args(argv)
    if args.slurm:
        from launcher.launchers import element  # not __main__: ShardElement's module

        element._slurm_main(args.slurm)
        return
    spec, shard = args.local
    sys.exit(run_element(spec, None if shard == "-" else int(shard)))


if __name__ == "__main__":
    main()
