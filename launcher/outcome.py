"""What one command's jobs ended with, handed back to the command line explicitly.

Hydra 1.3's ``hydra.main`` discards what the task function and the sweep return.
So the command line owns an :class:`Outcome` and gives Hydra a task function
bound to it (:class:`AppTask`); Hydra passes that task function on to the
sweeper and the launcher, so a job notes its exit code there, and a shard
launcher its sweep's. Nothing outlives the command: a second command in the
same process starts from a new ``Outcome``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omegaconf import DictConfig


@dataclass
class Outcome:
    """The worst exit code of one command's jobs, and whether any of our code ran."""

    started: bool = False  # from here on an error is ours to code, not Hydra's config error
    exit_code: int = 0

    def note(self, code: int) -> None:
        self.exit_code = max(self.exit_code, code)


class AppTask:
    """Hydra's task function for our app: one job (:func:`launcher.app.run`), its exit
    code noted in the command's :class:`Outcome`. Shard launchers recognise our app by
    this class and note a sweep's exit code in :attr:`outcome`."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome

    def __call__(self, cfg: DictConfig) -> int:
        from launcher import app

        self.outcome.started = True
        code = app.run(cfg)
        self.outcome.note(code)
        return code
