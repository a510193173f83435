"""Errors a user can cause: they stop a job before any work, with exit code 2."""

from __future__ import annotations

from collections.abc import Iterable


class UserError(Exception):
    """A bad config value or input; the message names the key or the item."""

    exit_code = 2


class ConfigError(UserError):
    """A config value is missing, out of range or of the wrong kind."""


class InputError(UserError):
    """The task's input is missing, unreadable or empty."""


def unknown_key(key: str, known: Iterable[str]) -> ConfigError:
    """The error for a key no schema has (``+backbone.num_worker=4``), with the nearest
    known key when one is close."""
    import difflib

    group, _, name = key.rpartition(".")
    near = difflib.get_close_matches(name, sorted(known), n=1)
    hint = f" Did you mean {near[0]}?" if near else ""
    where = f"{group}.*" if group else "the top level"
    return ConfigError(
        f"{key}: no such key in {where} (known: {', '.join(sorted(known))}).{hint} "
        "(A `+` can add any key to the config, but nothing would read this one.)"
    )
