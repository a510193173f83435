"""``python -m launcher status DIR [--json] [--watch [S]] [--failed] [--table|--grid]``,
``--serve [--port N] [--host H]`` or ``--html FILE``.

Where a run or sweep stands. DIR is a job directory (``report.json``,
``progress.json``) or a sweep directory: one launched by the local or SLURM
launcher (its ``.launcher/sweep.json`` lists every shard, ids and logs), or
any other multirun directory (its job subdirectories are read). Per shard:
state (pending, held, running, done, failed, or stale: a heartbeat older than
a few of its own intervals), items done/total, items/s, ETA; then totals and
an overall ETA. SLURM's own view (``squeue``, ``sacct``) is merged in when
those commands exist. Shards a relaunch skipped because they were done
before are counted from their completion markers, so the totals stay right
across relaunches.

One module per job, in the order data flows:

- :mod:`.sweep`, :mod:`.jobfiles`: the records on disk, read into dataclasses;
- :mod:`.slurm`: SLURM's view of each element;
- :mod:`.infer`: the state of one shard from those facts (a pure function);
- :mod:`.collect`: gathers the facts of every shard into a :class:`.Summary`;
- :mod:`.summary`: the rows, totals and summary dataclasses;
- :mod:`.render`, :mod:`.grid`, :mod:`.failures`: what people read;
- :mod:`.document`: the ``--json`` document, which the page shows too;
- :mod:`.page` (with ``web/``), :mod:`.serve`: the page, ``--html`` and ``--serve``;
- :mod:`.cli`: the command line and its exit codes.
"""

from launcher.status.cli import exit_code, main, render
from launcher.status.collect import collect
from launcher.status.infer import Facts, Verdict, infer
from launcher.status.summary import ShardRow, Summary, Totals

__all__ = [
    "Facts",
    "ShardRow",
    "Summary",
    "Totals",
    "Verdict",
    "collect",
    "exit_code",
    "infer",
    "main",
    "render",
]
