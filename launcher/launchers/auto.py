"""``hydra/launcher=auto``, the default for ``-m``: SLURM when a controller answers, else local.

Stricter than submitit's AutoExecutor (``sbatch`` on PATH): machines with
SLURM's client and no reachable controller are common, and there every sweep
would fail. The choice and its reason are logged; SLURM-only options set while
running locally are named in a warning rather than silently dropped.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from launcher.launchers import arrays as arr
from launcher.launchers import probe
from launcher.launchers.base import Launched, ShardLauncher
from launcher.launchers.config import AutoConfig, LocalConfig
from launcher.launchers.local import LocalLauncher
from launcher.launchers.slurm import SlurmLauncher

log = logging.getLogger("launcher")


class AutoLauncher(ShardLauncher):
    options_class = AutoConfig

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.why_local: str | None = None  # why not SLURM, said once the app is known
        why_not = probe.no_controller()
        if why_not is None:
            self.impl: ShardLauncher = SlurmLauncher(**params)
            log.info("hydra/launcher=auto: a SLURM controller answers, submitting to SLURM")
            return
        local = {f.name for f in dataclasses.fields(LocalConfig)}
        slurm_only = {f.name for f in dataclasses.fields(AutoConfig)} - local
        # an unknown key goes on, so that the local launcher refuses it by name
        self.impl = LocalLauncher(**{k: v for k, v in params.items() if k not in slurm_only})
        if why_not.startswith("scontrol"):
            why_not = f"no SLURM controller answered ({why_not})"
        self.why_local = why_not
        for f in dataclasses.fields(AutoConfig):
            if f.name not in local and getattr(self.opts, f.name) != _default(f):
                log.warning("hydra.launcher.%s is SLURM-only: ignored here", f.name)

    @property
    def backend(self) -> str:  # type: ignore[override]
        return self.impl.backend

    def setup(self, **kwargs: Any) -> None:
        super().setup(**kwargs)
        self.impl.setup(**kwargs)
        if self.why_local is not None:  # our app sweeps shards; any other app, jobs
            what = "shards" if self.outcome is not None else "jobs"
            log.info("hydra/launcher=auto: %s, running %s locally", self.why_local, what)

    def launch_arrays(self, specs: list[arr.ArraySpec]) -> list:
        return self.impl.launch_arrays(specs)

    def launch(self, job_overrides: Any, initial_job_idx: int) -> Any:
        return self.impl.launch(job_overrides, initial_job_idx)

    def start(self, arrays: list[arr.Array], directory: str) -> Launched:
        return self.impl.start(arrays, directory)

    def wait(self, launched: Launched, directory: str) -> dict[tuple[int, int | None], int]:
        return self.impl.wait(launched, directory)


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default
