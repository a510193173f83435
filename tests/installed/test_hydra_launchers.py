"""Hydra's own launcher conformance suites against ``hydra/launcher=local`` and ``slurm``.

hydra-core ships them (``hydra.test_utils.launcher_common_tests``) with their
fixtures (its pytest plugin); hydra-submitit-launcher runs them the same way.
They run apps that are not ours: our launchers must run any ``task_function``.

This file runs against an *installed* shard-launcher, from a directory outside
the checkout, with no ``PYTHONPATH``: ``tests/test_hydra_conformance.py`` copies it
into a temporary folder and runs it with the pytest of a fresh venv, once with the
README's editable install and once with a built wheel, so it imports nothing of
``tests/`` (the main suite does not collect it: ``collect_ignore`` in tests/conftest.py).
The SLURM suites need the real cluster (``scripts/slurm/cluster.sh``) and wait for
their jobs; they are skipped with the reason where no controller answers
(``REQUIRE_SLURM=1`` makes that a failure).
"""

from __future__ import annotations

import os

import pytest
from hydra.test_utils.launcher_common_tests import (
    BatchedSweeperTestSuite,
    IntegrationTestSuite,
    LauncherTestSuite,
)

from launcher.launchers.probe import no_controller

pytestmark = pytest.mark.timeout(300)

SLURM = ["hydra.launcher.wait=true", "hydra.launcher.timeout_min=5"]


@pytest.fixture(autouse=True)
def unset_version_base() -> None:
    """Hydra's suites expect no version base: any ``@hydra.main`` run earlier in the session
    (or imported: the decorator sets it) leaves its own in Hydra's singletons."""
    from hydra.core.singleton import Singleton
    from hydra.version import VersionBase

    state = Singleton.get_state()
    state["instances"] = {k: v for k, v in state["instances"].items() if k is not VersionBase}
    Singleton.set_state(state)


@pytest.fixture
def slurm_cluster() -> None:
    reason = no_controller()
    if reason is None:
        return
    message = f"no SLURM cluster ({reason})"
    if os.environ.get("REQUIRE_SLURM") == "1":
        pytest.fail(message)
    pytest.skip(message)


ON_SLURM = pytest.mark.usefixtures("slurm_cluster")


@pytest.mark.parametrize("launcher_name, overrides", [("local", [])])
class TestLocalLauncher(LauncherTestSuite):
    pass


@pytest.mark.parametrize(
    "launcher_name, overrides", [("local", ["hydra.sweeper.max_batch_size=2"])]
)
class TestLocalBatched(BatchedSweeperTestSuite):
    pass


@pytest.mark.parametrize("task_launcher_cfg, extra_flags", [({}, ["-m", "hydra/launcher=local"])])
class TestLocalIntegration(IntegrationTestSuite):
    pass


@pytest.mark.parametrize("launcher_name, overrides", [("slurm", SLURM)])
class TestSlurmLauncher(LauncherTestSuite):
    pytestmark = ON_SLURM


@pytest.mark.parametrize(
    "launcher_name, overrides", [("slurm", [*SLURM, "hydra.sweeper.max_batch_size=2"])]
)
class TestSlurmBatched(BatchedSweeperTestSuite):
    pytestmark = ON_SLURM


@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags", [({}, ["-m", "hydra/launcher=slurm", *SLURM])]
)
class TestSlurmIntegration(IntegrationTestSuite):
    pytestmark = ON_SLURM
