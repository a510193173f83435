"""Errors a user can cause: they stop a job before any work, with exit code 2."""

from __future__ import annotations


class UserError(Exception):
    """A bad config value or input; the message names the key or the item."""

    exit_code = 2


class ConfigError(UserError):
    """A config value is missing, out of range or of the wrong kind."""


class InputError(UserError):
    """The task's input is missing, unreadable or empty."""
