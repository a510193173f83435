"""Hydra's own launcher conformance suites against ``hydra/launcher=local`` and ``slurm``.

hydra-core ships them (``hydra.test_utils.launcher_common_tests``) with their
fixtures (its pytest plugin); hydra-submitit-launcher runs them the same way.
They run apps that are not ours: our launchers must run any ``task_function``.
The SLURM ones need the real cluster (``scripts/slurm/cluster.sh``) and wait for
their jobs; they are skipped with the reason where no controller answers.
"""

from __future__ import annotations

import os

import pytest
from hydra.test_utils.launcher_common_tests import (
    BatchedSweeperTestSuite,
    IntegrationTestSuite,
    LauncherTestSuite,
)

from tests.conftest import REPO, need_slurm

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


@pytest.fixture(autouse=True)
def plugins_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The integration suite runs its apps from temporary folders in new processes. An
    editable install (setuptools' import hook) does not extend the ``hydra_plugins``
    namespace that Hydra scans there, so put the checkout on their path, as a wheel
    install would put our plugin in site-packages."""
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    )


@pytest.fixture
def slurm_cluster() -> None:
    need_slurm()


ON_SLURM = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]


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
