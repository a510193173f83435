"""Entry point shared by ``shard-launcher``, ``python -m launcher`` and ``launch.py``.

Hydra exits with 1 on any error it catches; we map the errors it raises
before our task function starts (unknown group option, unknown key, wrong
type) to exit code 2, the code for "bad config", and exit with the job's own
code otherwise (the highest over a sweep's jobs). Hydra discards the task
function's return value, so the code comes back through the
:class:`~launcher.outcome.Outcome` this call owns and binds the task function to.

Before Hydra parses the command line: ``-m``/``--multirun`` may stand anywhere
among the overrides (argparse wants it after them), ``--version`` names our
version and Hydra's, and the current directory goes on ``sys.path`` so that a
project's own task modules import (its ``conf/`` is found by
:mod:`launcher.searchpath`).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import threading

MULTIRUN = ("-m", "--multirun")
HELP = ("-h", "--help")


def multirun_last(args: list[str]) -> list[str]:
    """The same arguments with ``-m``/``--multirun`` moved after the overrides."""
    rest = [a for a in args if a not in MULTIRUN]
    return rest + ["--multirun"] if len(rest) < len(args) else rest


def one_shard_of_many(overrides: list[str]) -> str | None:
    """The refusal of ``shard.num=4`` without ``shard.idx`` and without ``-m``."""
    from launcher.api import lone_shard_num

    num = lone_shard_num(overrides)
    if num is None:
        return None
    return (
        f"shard.num={num} without shard.idx would run only shard 0 of {num}. Add -m to run "
        f"all {num} shards (a SLURM array where sbatch exists, else local processes), or set "
        f"shard.idx=I (0..{num - 1}) to run one shard here."
    )


def version_line() -> str:
    from importlib.metadata import version

    from launcher import __version__

    return f"shard-launcher {__version__} (Hydra {version('hydra-core')})"


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["status"]:  # `python -m launcher status DIR`: no Hydra involved
        from launcher.status import main as status

        sys.exit(status(args[1:]))
    if "--version" in args:
        print(version_line())
        sys.exit(0)
    if args in (["--help"], ["-h"]):
        from launcher.help import help_text
        from launcher.searchpath import config_dirs

        print(help_text(config_dirs()), end="")
        sys.exit(0)
    overrides = [a for a in args if a not in HELP + MULTIRUN]
    asks_help = any(a in HELP for a in args)
    only_overrides = not any(a.startswith("-") for a in overrides)  # else Hydra's own page
    if asks_help and only_overrides and any(a.startswith("task=") for a in overrides):
        from launcher.help import task_help

        sys.exit(task_help(overrides))

    if not any(a in MULTIRUN for a in args) and (refused := one_shard_of_many(overrides)):
        print(refused, file=sys.stderr)
        sys.exit(2)
    from launcher.config import check_override_keys
    from launcher.errors import UserError
    from launcher.searchpath import broken_choice

    if refused := broken_choice(overrides) or unwritable_outputs(overrides):
        print(refused, file=sys.stderr)
        sys.exit(2)
    try:
        check_override_keys(overrides)
    except UserError as e:
        print(e, file=sys.stderr)
        sys.exit(e.exit_code)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # the user's own task modules; workers inherit it
    sys.argv[1:] = multirun_last(args)

    exit_process(run_hydra())


def unwritable_outputs(overrides: list[str]) -> str | None:
    """Why ``./outputs``, where the job's records go by default, cannot be made here; None
    when it can, or when ``hydra.run.dir`` / ``hydra.sweep.dir`` put them elsewhere."""
    if any(o.lstrip("+").startswith(("hydra.run.dir=", "hydra.sweep.dir=")) for o in overrides):
        return None
    if os.path.isdir("outputs"):
        return None
    import tempfile

    try:  # tried, not asked: os.access says yes to root on a read-only mount
        os.rmdir(tempfile.mkdtemp(prefix=".shard-launcher-probe-", dir="."))
    except OSError as e:
        return (
            f"shard-launcher: the working directory {os.getcwd()} cannot hold outputs/ "
            f"({e.strerror or e}), where each job's records (and by default its outputs) go. "
            "Run from a directory you can write to, or set hydra.run.dir=DIR (hydra.sweep.dir "
            "with -m) and task.output_dir=DIR."
        )
    return None


def run_hydra() -> int:
    """Hydra's run or sweep of our app; the worst exit code of its jobs."""
    import hydra

    from launcher.config import register_configs
    from launcher.internals import plain_run_composed_once
    from launcher.outcome import AppTask, Outcome
    from launcher.resolvers import register_resolvers
    from launcher.searchpath import CONFIG_DIR

    register_resolvers()
    register_configs()
    entry = hydra.main(version_base=None, config_path=str(CONFIG_DIR), config_name="config")
    outcome = Outcome()
    once = MULTIRUN[1] not in sys.argv  # a sweep composes once per job anyway
    try:
        with plain_run_composed_once() if once else contextlib.nullcontext():
            entry(AppTask(outcome))()
    except SystemExit as e:
        if e.code not in (0, None) and not outcome.started:
            sys.exit(2)
        raise
    return outcome.exit_code


def exit_process(code: int) -> None:
    """Exit with ``code``, without waiting for threads the user's code left running
    (a non-daemon thread would otherwise hold the process open for its lifetime).

    The heap is frozen first: the interpreter's last garbage collections then skip the
    objects alive now, which with torch loaded are millions and take ~0.4 s to walk
    (bench T3), while atexit handlers, finalizers and module teardown all still run."""
    gc.freeze()
    leftover = [
        t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon
    ]
    if not leftover:
        sys.exit(code)
    logging.getLogger("launcher").warning(
        "leaving %d thread(s) the task started still running: %s",
        len(leftover),
        ", ".join(t.name for t in leftover),
    )
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
