"""What the local and SLURM launchers share: plan the arrays once, print, launch, maybe wait.

A backend implements :meth:`ShardLauncher.start` (launch the elements to do,
filling in their ids and log paths) and :meth:`ShardLauncher.wait` (block
until they end, return their exit codes).
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher

from launcher.command import status_command
from launcher.errors import ConfigError, UserError
from launcher.launchers import arrays as arr
from launcher.launchers import general
from launcher.launchers.config import LaunchConfig
from launcher.layout import SweepDir

if TYPE_CHECKING:
    from hydra.types import HydraContext, TaskFunction
    from omegaconf import DictConfig

    from launcher.outcome import Outcome

log = logging.getLogger("launcher")


def to_options(cls: type, params: dict[str, Any]) -> Any:
    """The typed options from Hydra's instantiate kwargs, checked against ``cls`` by name.

    Hydra composes ``hydra.launcher`` from an untyped YAML file, so an added key
    (``+hydra.launcher.partiton=x``) or a value of the wrong type reaches us
    unchecked: refuse it here, naming the key.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    names = [f.name for f in dataclasses.fields(cls) if f.name != "_target_"]
    unknown = sorted(k for k in params if k not in names and k != "_target_")
    if unknown:
        raise ConfigError(
            f"hydra.launcher.{unknown[0]}: no such option of this launcher "
            f"(options: {', '.join(names)})."
        )
    typed = OmegaConf.structured(cls)
    for k, v in params.items():
        if k == "_target_":
            continue
        try:
            typed[k] = v
        except OmegaConfBaseException as e:
            raise ConfigError(f"hydra.launcher.{k}={v}: {e.msg}.") from None
    return cls(**{k: v for k, v in OmegaConf.to_container(typed).items() if k != "_target_"})


@dataclasses.dataclass
class Launched:
    """What :meth:`ShardLauncher.start` launched, as the sweep record and the user see it;
    backends add what their :meth:`~ShardLauncher.wait` needs to follow it."""

    record: dict[str, Any]  # extra fields for the sweep record
    headline: str  # what was launched, in one line
    ids: list[str] = dataclasses.field(default_factory=list)  # a line per backend job
    stopped_by: int | None = None  # the signal that stopped the sweep while it was waited for


class ShardLauncher(Launcher):
    """A Hydra launcher: our app's shard sweeps as arrays (:mod:`launcher.launchers.arrays`),
    any other app's jobs one process each (:mod:`launcher.launchers.general`)."""

    backend: ClassVar[str]
    options_class: ClassVar[type[LaunchConfig]] = LaunchConfig
    wait_default: ClassVar[bool]

    def __init__(self, **params: Any) -> None:
        # a bad option is reported when launching (Hydra would wrap it in a traceback here)
        self.bad_options: ConfigError | None = None
        try:
            self.opts = to_options(self.options_class, params)
        except ConfigError as e:
            self.opts, self.bad_options = self.options_class(), e
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None
        self.outcome: Outcome | None = None  # our app's: where the sweep's exit code goes
        self.ours = False

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from launcher.outcome import AppTask

        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function
        # our app gets the shard fast path; any other app Hydra's job-by-job contract
        self.outcome = task_function.outcome if isinstance(task_function, AppTask) else None
        self.ours = self.outcome is not None

    @property
    def waits(self) -> bool:
        return self.wait_default if self.opts.wait is None else bool(self.opts.wait)

    # -- Hydra's contract ----------------------------------------------------------------------

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        """Any app's jobs (:mod:`~launcher.launchers.general`); ours from another sweeper as
        arrays of one element that keep their own shard selection."""
        if not self.ours:
            return general.launch(self, job_overrides, initial_job_idx)
        specs = [
            arr.ArraySpec(list(o), None, [initial_job_idx + i]) for i, o in enumerate(job_overrides)
        ]
        return self.launch_arrays(specs)

    # -- arrays ----------------------------------------------------------------------------------

    def launch_arrays(self, specs: list[arr.ArraySpec]) -> list[JobReturn]:
        """Plan, launch and (if waiting) collect the sweep; its exit code goes to the
        command's outcome (errors a user caused: 2)."""
        assert self.outcome is not None
        self.outcome.started = True  # from here on the exit code is ours, not Hydra's
        try:
            if not specs:
                raise ConfigError(
                    "the sweep expands to no job at all: shard.num must be an integer >= 1 "
                    "(shard.idx sweeps range(0,shard.num))."
                )
            self.preflight()
            code, returns = self._launch_arrays(specs)
        except UserError as e:
            log.error("%s", e)
            code, returns = e.exit_code, []
        self.outcome.note(code)
        return returns

    def _launch_arrays(self, specs: list[arr.ArraySpec]) -> tuple[int, list[JobReturn]]:
        """The sweep's exit code (1 when a shard failed, 130 when Ctrl-C stopped the
        wait, 128+N when signal N stopped a local sweep) and, once waited for, each
        launched job's return."""
        from hydra.core.hydra_config import HydraConfig

        assert self.config is not None and self.hydra_context is not None
        arr.check_options(self.opts)
        hydra_cfg = HydraConfig.instance().cfg
        try:
            arrays = arr.plan_sweep(self.hydra_context, self.config, specs, self.opts.skip_done)
        finally:
            HydraConfig.instance().cfg = hydra_cfg  # plan_sweep() sets each array's
        directory = arr.sweep_dir(self.config)
        todo = sum(len(a.todo) for a in arrays)
        total = sum(len(a.elements) for a in arrays)
        if self.opts.dry_run:
            print(self.describe(arrays, directory), flush=True)
            return 0, []
        if not todo:
            print(
                f"Nothing to launch: all {total} shard(s) already completed for this task config "
                "(hydra.launcher.skip_done=false launches them again).",
                flush=True,
            )
            return 0, []
        os.makedirs(directory, exist_ok=True)
        with arr.claim(directory):
            arr.write_specs(arrays)
            launched = self.start(arrays, directory)
            arr.write_record(directory, self.backend, arrays, **launched.record)
        try:  # a Ctrl-C from the moment the shards are launched stops only our wait
            print(self.started_message(launched, directory), flush=True)
            codes = self.wait(launched, directory) if self.waits else None
        except KeyboardInterrupt:
            follow = status_command(directory)
            print(f"Stopped waiting; the shards go on. Follow them with: {follow}", flush=True)
            return 130, []
        if codes is None:
            return 0, []
        from launcher.status import collect, render
        from launcher.status.collect import NotARun

        try:
            summary = collect(directory)
        except NotARun:  # never recreated: each element said so in its .err, in the moved dir
            print(
                f"The sweep dir {directory} was moved or deleted while its shards ran; "
                "nothing is summarized here.",
                file=sys.stderr,
                flush=True,
            )
        else:
            print(render(summary, failed=summary.totals.shards["failed"] > 0), flush=True)
        returns = []
        for a in arrays:
            for e in a.todo:
                ret = JobReturn(overrides=a.spec.overrides, status=JobStatus.COMPLETED)
                ret.return_value = codes.get((a.index, e.shard), 1)
                returns.append(ret)
        if launched.stopped_by:
            return 128 + launched.stopped_by, returns
        return (1 if any(r.return_value for r in returns) else 0), returns

    # -- messages ---------------------------------------------------------------------------------

    def describe(self, arrays: list[arr.Array], directory: str) -> str:
        """The dry run: what would be launched, and what is skipped as done."""
        lines = [f"Dry run ({self.backend}): nothing launched. Sweep dir would be {directory}"]
        for a in arrays:
            todo = [e.shard for e in a.todo]
            done = [e.shard for e in a.elements if not e.launched]
            what = " ".join(a.shown) or "(no overrides)"
            lines.append(f"  array {a.index}: {what}  [config {a.key}]")
            lines.append(f"    launch {len(todo)} shard(s): {_shards(todo)}")
            if done:
                lines.append(f"    skip {len(done)} shard(s) completed before: {_shards(done)}")
        lines.extend(self.describe_backend(arrays, directory))
        return "\n".join(lines)

    def started_message(self, launched: Launched, directory: str) -> str:
        lines = [launched.headline, *launched.ids]
        lines.append(f"Sweep dir: {directory}")
        lines.append(f"Logs:      {SweepDir(directory).logs}/")
        lines.append(f"Status:    {status_command(directory)}")
        return "\n".join(lines)

    # -- backend hooks ----------------------------------------------------------------------------

    def preflight(self) -> None:
        """Refuse, in one paragraph, what makes launching impossible (bad options, no cluster)."""
        if self.bad_options is not None:
            raise self.bad_options

    @abc.abstractmethod
    def start(self, arrays: list[arr.Array], directory: str) -> Launched:
        """Launch every element to do; say what was launched."""

    @abc.abstractmethod
    def wait(self, launched: Launched, directory: str) -> dict[tuple[int, int | None], int]:
        """Block until every launched element ended; exit code by (array, shard)."""

    def describe_backend(self, arrays: list[arr.Array], directory: str) -> list[str]:
        return []


def counts(arrays: list[arr.Array]) -> tuple[int, int]:
    """How many shards are launched, and how many were skipped as done."""
    todo = sum(len(a.todo) for a in arrays)
    return todo, sum(len(a.elements) for a in arrays) - todo


def _shards(values: list[int | None]) -> str:
    if values == [None]:
        return "(the job's own shard selection)"
    return arr.ranges([v for v in values if v is not None]) or "-"
