"""The command the user started us with, for messages that tell them what to run next.

One entry point serves ``shard-launcher`` (the console script), ``python -m
launcher`` and ``python launch.py`` in a checkout; a message that says "run
``python launch.py ...``" to someone who typed ``shard-launcher`` in their own
project sends them to a file they do not have. Read from the process's own
command line (the interpreter by its name, as on a PATH), nothing is stored.
"""

from __future__ import annotations

import os
import shlex
import sys

API = "launcher.run"


def user_command() -> str:
    """``shard-launcher``, ``python -m launcher`` or ``python launch.py`` as this process
    was started; ``launcher.run`` when none of them started it (a script, a notebook)."""
    script = sys.argv[0] if sys.argv else ""
    python = os.path.basename(sys.orig_argv[0]) if sys.orig_argv else "python"
    name = os.path.basename(script)
    if name == "shard-launcher":
        return "shard-launcher"
    if name == "__main__.py" and os.path.basename(os.path.dirname(script)) == "launcher":
        return f"{python} -m launcher"
    if name == "launch.py":
        return f"{python} {shlex.quote(script)}"
    return API


def how_to_set(overrides: list[str]) -> str:
    """``e.g. `shard-launcher a=... b=...` `` in the user's own command, or the keyword
    argument of ``launcher.run`` that takes them."""
    command = user_command()
    if command == API:
        return f"e.g. launcher.run(..., overrides={overrides!r})"
    return f"e.g. `{command} {' '.join(overrides)}`"


def launcher_command() -> str:
    """The user's command line tool: :func:`user_command`, or ``python -m launcher`` of
    this interpreter when none of ours started this process (an element, another app)."""
    command = user_command()
    return f"{shlex.quote(sys.executable)} -m launcher" if command == API else command


def status_command(directory: str) -> str:
    """``status`` of a sweep, in the command the user launched it with."""
    return f"{launcher_command()} status {shlex.quote(directory)}"
