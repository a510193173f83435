"""Errors a user can cause: they stop a job before any work, with exit code 2."""

from __future__ import annotations


class UserError(Exception):
    """A bad config value or input; the message names the key or the item."""

    exit_code = 2


class ConfigError(UserError):
    """A config value is missing, out of range or of the wrong kind."""


class InputError(UserError):
    """The task's input is missing, unreadable or empty."""


def check_bounds(prefix: str, values: object, bounds: dict[str, str]) -> None:
    """Refuse a numeric option outside its range (``{"num_workers": ">= 1"}``), naming
    the key and the valid range. ``None`` means "the default" and is always accepted;
    a float must be finite."""
    import math
    import operator

    ops = {">=": operator.ge, ">": operator.gt}
    for name, rule in bounds.items():
        value = getattr(values, name, None)
        if value is None or isinstance(value, bool):
            continue
        op, limit = rule.split()
        finite = not isinstance(value, float) or math.isfinite(value)
        if not (finite and ops[op](value, float(limit))):
            raise ConfigError(f"{prefix}.{name}={value!r} is out of range: must be {rule}.")
