"""Our Hydra plugins in other people's apps: no side effects, options checked, a probing ``auto``.

Apps that are not ours run in subprocesses twice, with our ``hydra_plugins``
hidden and exposed, and must print the same bytes. ``hidden`` drops every
``hydra_plugins`` folder that holds ``shard_launcher`` (this worktree's and an
editable install's), which is what an environment without the package looks like
to Hydra's plugin scan.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from launcher.launchers import config as launcher_config
from tests.conftest import REPO, need_slurm

RUN_APP = """
import os, runpy, sys
import hydra_plugins
if sys.argv[1] == "hidden":
    hydra_plugins.__path__ = [
        p for p in list(hydra_plugins.__path__)
        if os.path.isdir(p) and not os.path.isdir(os.path.join(p, "shard_launcher"))
    ]
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

OWN_APP = """
from dataclasses import dataclass, field
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf


@dataclass
class Backbone:
    layers: int = 2


@dataclass
class Config:
    name: str = "mine"
    shard: Any = None
    backbone: Backbone = field(default_factory=Backbone)


cs = ConfigStore.instance()
cs.store(name="base_config", node=Config)
cs.store(group="backbone", name="small", node=Backbone(layers=2))
cs.store(group="backbone", name="mp", node=Backbone(layers=8))


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg):
    print(OmegaConf.to_yaml(cfg))


if __name__ == "__main__":
    main()
"""

OWN_CONF = {
    "config.yaml": "defaults:\n  - base_config\n  - shard: soft\n  - backbone: small\n  - _self_\n",
    "shard/soft.yaml": "my_key: 1\n",
    "shard/hard.yaml": "my_key: 2\n",
}

# Hydra's tutorial "Structured Configs > Config schema" (5.2): a schema named base_config
TUTORIAL_APP = """
from dataclasses import dataclass

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf


@dataclass
class DBConfig:
    driver: str = MISSING
    host: str = "localhost"
    port: int = MISSING
    user: str = MISSING
    password: str = MISSING


@dataclass
class MySQLConfig(DBConfig):
    driver: str = "mysql"
    port: int = 3306


@dataclass
class PostGreSQLConfig(DBConfig):
    driver: str = "postgresql"
    port: int = 5432
    timeout: int = 10


@dataclass
class Config:
    db: DBConfig = MISSING
    debug: bool = False


cs = ConfigStore.instance()
cs.store(name="base_config", node=Config)
cs.store(group="db", name="base_mysql", node=MySQLConfig)
cs.store(group="db", name="base_postgresql", node=PostGreSQLConfig)


@hydra.main(version_base=None, config_path="conf", config_name="config")
def my_app(cfg: Config) -> None:
    print(OmegaConf.to_yaml(cfg))


if __name__ == "__main__":
    my_app()
"""

TUTORIAL_CONF = {
    "config.yaml": "defaults:\n  - base_config\n  - db: mysql\n  - _self_\n\ndebug: true\n",
    "db/mysql.yaml": "defaults:\n  - base_mysql\n\nuser: omry\npassword: secret\n",
    "db/postgresql.yaml": (
        "defaults:\n  - base_postgresql\n\nuser: postgres_user\npassword: drowssap\n"
    ),
}


def write_app(root: Path, source: str, conf: dict[str, str]) -> Path:
    for rel, text in conf.items():
        (root / "conf" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "conf" / rel).write_text(text)
    (root / "app.py").write_text(textwrap.dedent(source))
    return root / "app.py"


def run_app(app: Path, plugins: str, *args: str, env: dict | None = None, cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, "-c", RUN_APP, plugins, str(app), *args],
        cwd=cwd or app.parent,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )


QUIET = ["hydra/hydra_logging=disabled", "hydra/job_logging=disabled"]
SWEEP = ["hydra.sweep.dir=sweep", *QUIET, "-m"]
RUNS = [
    ["hydra.run.dir=run"],
    ["shard=hard", "backbone=mp", "hydra.run.dir=run"],
    ["--help"],
    ["--cfg", "job"],
    ["backbone=small,mp", *SWEEP],
]
TUTORIAL_RUNS = [
    ["hydra.run.dir=run"],
    ["db=postgresql", "db.timeout=20", "hydra.run.dir=run"],
    ["--help"],
    ["db=mysql,postgresql", *SWEEP],
]


@pytest.mark.parametrize(
    "source, conf, args",
    [pytest.param(OWN_APP, OWN_CONF, a, id=f"own:{' '.join(a)}") for a in RUNS]
    + [
        pytest.param(TUTORIAL_APP, TUTORIAL_CONF, a, id=f"tutorial:{' '.join(a)}")
        for a in TUTORIAL_RUNS
    ],
)
def test_another_apps_output_is_the_same_with_and_without_our_plugins(tmp_path, source, conf, args):
    app = write_app(tmp_path, source, conf)
    hidden, exposed = (run_app(app, p, *args) for p in ("hidden", "exposed"))
    assert hidden.returncode == 0, hidden.stderr
    assert hidden.stdout.strip(), "the app printed nothing: the comparison would prove nothing"
    assert (exposed.returncode, exposed.stdout, exposed.stderr) == (0, hidden.stdout, hidden.stderr)


@pytest.mark.parametrize(
    "args",
    [
        ["hydra.run.dir=run"],
        ["db=postgresql", "hydra.run.dir=run"],
        ["--help"],
        ["db=mysql,postgresql", *SWEEP],
    ],
    ids=" ".join,
)
def test_hydras_example_app_prints_the_same_with_and_without_our_plugins(tmp_path, args):
    # Hydra's test app over its conformance configs (db_conf); not imported: @hydra.main
    # sets Hydra's version base for the whole process, which Hydra's suites then inherit
    app = Path(importlib.util.find_spec("hydra.test_utils.example_app").origin)
    hidden, exposed = (run_app(app, p, *args, cwd=tmp_path) for p in ("hidden", "exposed"))
    assert hidden.returncode == 0 and hidden.stdout.strip(), hidden.stderr
    assert (exposed.returncode, exposed.stdout, exposed.stderr) == (0, hidden.stdout, hidden.stderr)


def test_the_toggle_hides_and_exposes_our_plugins(tmp_path):
    app = write_app(tmp_path, OWN_APP, OWN_CONF)
    hidden = run_app(app, "hidden", "--hydra-help")
    exposed = run_app(app, "exposed", "--hydra-help")
    launchers = [line for line in exposed.stdout.splitlines() if line.startswith("hydra/launcher:")]
    assert launchers and "slurm" in launchers[0] and "local" in launchers[0], exposed.stdout
    assert "slurm" not in hidden.stdout and "hydra/sweeper: basic\n" in hidden.stdout


SCAN = """
import sys
from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins

def listing(node, prefix=""):
    out = []
    for k, v in node.items():
        out += listing(v, f"{prefix}{k}/") if isinstance(v, dict) else [prefix + k]
    return sorted(out)

Plugins.instance()  # Hydra's scan imports every plugin module
print("hydra_plugins.shard_launcher.plugins" in sys.modules)
print(listing(ConfigStore.instance().repo))
"""


def test_importing_and_scanning_our_plugins_registers_nothing(tmp_path):
    app = tmp_path / "scan.py"
    app.write_text(SCAN)
    hidden, exposed = (run_app(app, p) for p in ("hidden", "exposed"))
    assert hidden.returncode == 0 and exposed.returncode == 0, hidden.stderr + exposed.stderr
    assert hidden.stdout.splitlines()[0] == "False" and exposed.stdout.splitlines()[0] == "True"
    assert "hydra/launcher/basic.yaml" in hidden.stdout  # the listing shows registered nodes
    assert exposed.stdout.splitlines()[1] == hidden.stdout.splitlines()[1]


@pytest.mark.parametrize("name", ["auto", "local", "slurm"])
def test_each_launcher_yaml_mirrors_its_dataclass(name):
    cls = {"auto": "AutoConfig", "local": "LocalConfig", "slurm": "SlurmConfig"}[name]
    path = REPO / "hydra_plugins/shard_launcher/conf/hydra/launcher" / f"{name}.yaml"
    schema = OmegaConf.structured(getattr(launcher_config, cls))
    assert OmegaConf.load(path) == schema


def test_the_sweeper_yaml_mirrors_its_dataclass():
    path = REPO / "hydra_plugins/shard_launcher/conf/hydra/sweeper/shard.yaml"
    assert OmegaConf.load(path) == OmegaConf.structured(launcher_config.ShardSweeperConfig)


# -- our launchers' options, and SLURM that is not there ------------------------------------------


def squares(out: Path, *extra: str) -> list[str]:
    return ["task=squares", f"task.output_dir={out}", "backbone.num_workers=1", *extra]


@pytest.mark.parametrize(
    "args, message",
    [
        (["+hydra.launcher.partiton=gpu"], "hydra.launcher.partiton: no such option"),
        (["hydra/launcher=auto", "+hydra.launcher.x=1"], "hydra.launcher.x: no such option"),
        (["hydra.launcher.array_parallelism=many"], "hydra.launcher.array_parallelism=many"),
    ],
)
def test_a_bad_launcher_option_is_refused_by_name(launch, tmp_path, args, message):
    r = launch(*squares(tmp_path / "out", "shard.num=2"), *args, multirun=True)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert message in out and "Traceback" not in out
    assert not (tmp_path / "out").exists()


def needs_slurm_client() -> None:
    if shutil.which("sbatch") is None or shutil.which("scontrol") is None:
        pytest.skip("SLURM's client (sbatch, scontrol) is not on PATH")


@pytest.fixture
def dead_slurm_conf(tmp_path: Path) -> Path:
    """The cluster's slurm.conf where there is one, pointing at a port nobody listens on."""
    needs_slurm_client()
    src = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf"))
    lines = src.read_text().splitlines() if src.is_file() else ["SlurmctldHost=localhost"]
    lines = [x for x in lines if not x.startswith("SlurmctldPort")] + ["SlurmctldPort=1"]
    path = tmp_path / "slurm.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("conf", ["dead port", "no config"])
def test_auto_with_slurms_client_but_no_controller_runs_locally_and_says_why(
    launch, tmp_path, dead_slurm_conf, conf, monkeypatch
):
    if conf == "no config":  # the client looks at its default path, then DNS
        if Path("/etc/slurm/slurm.conf").exists():
            pytest.skip("/etc/slurm/slurm.conf exists here")
        monkeypatch.delenv("SLURM_CONF", raising=False)
    else:
        monkeypatch.setenv("SLURM_CONF", str(dead_slurm_conf))
    r = launch(*squares(tmp_path / "out", "shard.num=2"), "hydra/launcher=auto", multirun=True)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "hydra/launcher=auto: no SLURM controller answered (scontrol ping exited" in out
    assert "running shards locally" in out
    assert "Local: 2 shard(s)" in out
    assert len(list((tmp_path / "out").iterdir())) >= 100  # every item of both shards


@pytest.mark.parametrize("conf", ["dead port", "no config"])
def test_slurm_without_a_controller_is_one_paragraph_and_exit_2(
    launch, tmp_path, dead_slurm_conf, conf, monkeypatch
):
    where = f"SLURM_CONF={dead_slurm_conf}"
    if conf == "no config":
        if Path("/etc/slurm/slurm.conf").exists():
            pytest.skip("/etc/slurm/slurm.conf exists here")
        monkeypatch.delenv("SLURM_CONF", raising=False)
        where = "SLURM_CONF is not set"
    else:
        monkeypatch.setenv("SLURM_CONF", str(dead_slurm_conf))
    r = launch(*squares(tmp_path / "out", "shard.num=2"), "hydra/launcher=slurm", multirun=True)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert (
        f"hydra/launcher=slurm: no SLURM controller answered `scontrol ping` ({where}), "
        "so nothing was submitted; use hydra/launcher=local"
    ) in out
    assert "DOWN" not in out and "fatal" not in out and "Traceback" not in out
    assert not (launch.job_dir / ".launcher" / "sweep.json").exists()


def test_another_app_on_auto_without_a_controller_runs_its_jobs_here(tmp_path, dead_slurm_conf):
    app = write_app(tmp_path, OWN_APP, OWN_CONF)
    env = {"SLURM_CONF": str(dead_slurm_conf)}
    r = run_app(
        app,
        "exposed",
        "hydra/launcher=auto",
        "backbone=small,mp",
        "hydra.sweep.dir=s",
        "-m",
        env=env,
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert "running jobs locally" in out and "shards" not in out  # its jobs are not our shards
    configs = sorted((tmp_path / "s").glob("*/.hydra/config.yaml"))
    assert [OmegaConf.load(c).backbone.layers for c in configs] == [2, 8]


# -- any app's jobs, in process: what Hydra's suites do not check ----------------------------------


@pytest.mark.usefixtures("hydra_restore_singletons")
@pytest.mark.parametrize(
    "launcher",
    [
        pytest.param(["hydra/launcher=local"], id="local"),
        pytest.param(
            ["hydra/launcher=slurm", "hydra.launcher.wait=true"],
            id="slurm",
            marks=pytest.mark.slurm,
        ),
    ],
)
def test_a_failing_job_of_another_app_fails_the_sweep_with_its_exception(
    hydra_sweep_runner, tmp_path, launcher
):
    if "hydra/launcher=slurm" in launcher:
        need_slurm()

    def task(cfg):
        if cfg.a == 1:
            raise ValueError("job a=1 says no")
        return cfg.a * 10

    sweep = hydra_sweep_runner(
        calling_file=None,
        calling_module="hydra.test_utils.a_module",
        task_function=task,
        config_path="configs",
        config_name="compose",
        overrides=[*launcher, "+a=0,1"],
        temp_dir=tmp_path,
    )
    with pytest.raises(ValueError, match="job a=1 says no"), sweep:
        pass
    assert (tmp_path / "0" / ".hydra" / "config.yaml").exists()  # the other job ran


@pytest.mark.usefixtures("hydra_restore_singletons")
def test_the_shard_sweeper_survives_a_second_plugin_scan(hydra_sweep_runner, tmp_path):
    """Hydra re-executes plugin modules on a new scan; a subclass of the old BasicSweeper broke."""
    from hydra.core.plugins import Plugins
    from hydra.core.singleton import Singleton

    for scan in range(2):
        state = Singleton.get_state()
        instances = {k: v for k, v in state["instances"].items() if k is not Plugins}
        Singleton.set_state({**state, "instances": instances})  # the next use scans again
        sweep = hydra_sweep_runner(
            calling_file=None,
            calling_module="hydra.test_utils.a_module",
            task_function=lambda cfg: cfg.a,
            config_path="configs",
            config_name="compose",
            overrides=["hydra/sweeper=shard", "hydra/launcher=local", "+a=0,1"],
            temp_dir=tmp_path / str(scan),
        )
        with sweep:
            assert [r.return_value for r in sweep.returns[0]] == [0, 1]


@pytest.mark.parametrize(
    "case", ["no controller", pytest.param("impossible", marks=pytest.mark.slurm)]
)
def test_another_app_refused_on_slurm_gets_hydras_one_paragraph_and_nothing_is_written(
    tmp_path, dead_slurm_conf, case
):
    app = write_app(tmp_path, OWN_APP, OWN_CONF)
    env, args, message = {"SLURM_CONF": str(dead_slurm_conf)}, [], "no SLURM controller answered"
    if case == "impossible":
        need_slurm()
        env, args, message = {}, ["hydra.launcher.nodes=99"], "hydra.launcher.nodes=99: partition"
    r = run_app(app, "exposed", "hydra/launcher=slurm", *args, "hydra.sweep.dir=s", "-m", env=env)
    assert r.returncode == 1, r.stderr  # Hydra's code for any error it reports
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "s" / ".launcher").exists()
