"""Every framework internal the launcher relies on, behind one door.

Each one is here because no public API does the same thing; everything else in
the package imports only public API (``tests/test_imports.py`` refuses a private
import anywhere else), and ``tests/test_internals.py`` pins each of these
against the installed versions, so an upgrade that changes one fails there,
naming it, rather than in a user's sweep:

- Hydra: ``run_job`` needs a ``HydraContext`` whose callbacks are the private
  ``hydra._internal.callbacks.Callbacks``; a failed ``JobReturn`` keeps its
  exception in ``_return_value`` (``return_value`` re-raises it); ``hydra.main``
  composes a plain run's config twice (``Hydra.get_mode``, then ``Hydra.run``).
- submitit: its job runner ``submitit.core.submission.process_job``, its
  ``cloudpickle_dump``, and its file names (``JobPaths``) for the pickles its
  runner and ``SlurmJob`` read.
- torch: which ``RuntimeError`` of a DataLoader means a worker died or timed
  out (only its text says), and a DataLoader iterator's worker processes.
- fsspec: a file system's own idea of a path's parent folder.
- Python: which ``TypeError`` of a constructor means an unexpected keyword
  (only its text says).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hydra.core.utils import JobReturn
    from omegaconf import DictConfig

# -- Hydra ---------------------------------------------------------------------------------------


def run_job_here(
    cfg: DictConfig,
    task_function: Callable[[DictConfig], Any],
    job_dir_key: str,
    job_subdir_key: str | None,
    configure_logging: bool = True,
) -> JobReturn:
    """Hydra's ``run_job`` outside a Hydra launcher (an array element, ``launcher.run``):
    no public API builds the callbacks its ``HydraContext`` is typed with."""
    from hydra._internal.callbacks import Callbacks
    from hydra.core.utils import run_job
    from hydra.types import HydraContext

    return run_job(
        hydra_context=HydraContext(config_loader=None, callbacks=Callbacks(cfg)),
        task_function=task_function,
        config=cfg,
        job_dir_key=job_dir_key,
        job_subdir_key=job_subdir_key,
        configure_logging=configure_logging,
    )


def job_exception(ret: JobReturn) -> BaseException:
    """The exception a FAILED ``JobReturn`` holds (``return_value`` would raise it, wrapped
    in nothing: this hands it over to be raised where the caller chooses)."""
    return ret._return_value


def failed_return(overrides: list[str], exc: BaseException) -> JobReturn:
    """A FAILED ``JobReturn`` for a job that never ran its task function: Hydra's
    constructor takes no exception, so it goes where Hydra keeps a failed job's."""
    from hydra.core.utils import JobReturn, JobStatus

    ret = JobReturn(overrides=overrides, status=JobStatus.FAILED)
    ret._return_value = exc
    return ret


@contextlib.contextmanager
def plain_run_composed_once() -> Iterator[None]:
    """Within: ``hydra.main`` composes a run without ``--multirun`` once, not twice.

    Hydra's ``get_mode`` composes the whole config in multirun mode only to read
    ``hydra.mode``, then ``Hydra.run`` composes it again (each ~0.07 CPU-s here, a
    tenth of a job's fixed cost). Here ``get_mode`` composes it the way ``run`` will,
    reads the mode from that, and hands that config to ``run``'s one load. A config
    that sets ``hydra.mode`` to a sweep, or one that fails to compose, goes Hydra's
    own way (the failure is then reported as Hydra reports it)."""
    from hydra._internal.hydra import Hydra
    from hydra.types import RunMode

    original = Hydra.get_mode

    def get_mode(self: Hydra, config_name: str | None, overrides: list[str]) -> Any:
        loader = self.config_loader
        load = dict(config_name=config_name, overrides=list(overrides), run_mode=RunMode.RUN)
        load.update(from_shell=True, validate_sweep_overrides=True)  # what Hydra.run passes
        try:
            cfg = loader.load_configuration(**load)
        except Exception:
            return original(self, config_name, overrides)
        if cfg.hydra.mode not in (None, RunMode.RUN):
            return cfg.hydra.mode

        def load_once(**kwargs: Any) -> DictConfig:
            del loader.load_configuration  # back to the class's own
            return cfg if kwargs == load else loader.load_configuration(**kwargs)

        loader.load_configuration = load_once
        return RunMode.RUN

    Hydra.get_mode = get_mode
    try:
        yield
    finally:
        Hydra.get_mode = original


# -- submitit ------------------------------------------------------------------------------------


def process_job(folder: str) -> None:
    """Run submitit's job runner on ``folder`` (requeue on USR2, checkpoint, results)."""
    from submitit.core.submission import process_job as run

    run(folder)


def cloudpickle_dump(obj: Any, path: str) -> None:
    """Pickle ``obj`` with cloudpickle, the way submitit writes its results."""
    from submitit.core.utils import cloudpickle_dump as dump

    dump(obj, path)


def submitit_paths(folder: str | Path, job_id: str) -> Any:
    """submitit's ``JobPaths``: the names its runner and ``SlurmJob`` read in ``folder``
    for job ``job_id`` (``submitted_pickle``, ``result_pickle``, ``stdout``, ``stderr``)."""
    from submitit.core.utils import JobPaths

    return JobPaths(folder, job_id=job_id)


# -- torch ---------------------------------------------------------------------------------------


def loader_failure(exc: BaseException) -> str | None:
    """``"died"`` or ``"timeout"`` for the errors a DataLoader raises when a worker dies
    or delivers nothing in time; None for any other error."""
    message = str(exc)
    if not isinstance(exc, RuntimeError) or "DataLoader" not in message:
        return None
    if "timed out" in message:
        return "timeout"
    if "exited unexpectedly" in message or "killed by signal" in message:
        return "died"
    return None


def loader_worker_pids(iterator: Any) -> tuple[int, ...]:
    """The worker processes of a DataLoader iterator (none before it starts, or without
    workers)."""
    return tuple(w.pid for w in getattr(iterator, "_workers", ()) if w.pid)


def stop_loader_workers(iterator: Any) -> None:
    """Stop a DataLoader iterator's workers now (a hung one would take seconds to join)."""
    for w in getattr(iterator, "_workers", ()):
        if w.is_alive():
            w.kill()
    shutdown = getattr(iterator, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


# -- fsspec --------------------------------------------------------------------------------------


def parent_of(fs: Any, path: str) -> str:
    """The parent folder of ``path`` as the file system ``fs`` spells it (its protocol
    stripped): fsspec keeps this per file system, in a private method."""
    return fs._parent(path)


# -- Python --------------------------------------------------------------------------------------

_UNEXPECTED_KEYWORD = re.compile(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'")


def unexpected_keyword(error: TypeError) -> tuple[str, str] | None:
    """``(class name, key)`` when ``error`` says a constructor got a keyword it does not
    take; None for any other TypeError."""
    match = _UNEXPECTED_KEYWORD.search(str(error))
    return None if match is None else (match.group(1), match.group(2))
