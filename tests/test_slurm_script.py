"""The SLURM launcher's pure parts, no cluster needed: the exact sbatch script it
writes, array splitting, the refusal of impossible requests, sweep numbering."""

from __future__ import annotations

import pytest
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from launcher.errors import ConfigError
from launcher.launchers.arrays import Array, ArraySpec, Element, ranges
from launcher.launchers.cluster import (
    Cluster,
    Node,
    _gpus,
    _minutes,
    check_request,
    sbatch_options,
    sbatch_script,
)
from launcher.launchers.config import SlurmConfig
from launcher.launchers.slurm import chunks
from launcher.launchers.sweeper import array_specs, axes

GOLDEN = """\
#!/bin/bash
# shard-launcher: array 0 of /sweep; shard.idx = SLURM_ARRAY_TASK_ID + 0
#SBATCH --job-name=thumbnail
#SBATCH --array=0-2,5%2
#SBATCH --output=/sweep/logs/%A_%a.out
#SBATCH --error=/sweep/logs/%A_%a.err
#SBATCH --open-mode=append
#SBATCH --signal=USR2@120
#SBATCH --time=30
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=4
#SBATCH --gpus-per-task=1
#SBATCH --mem=16G
#SBATCH --partition=gpu
#SBATCH --account=lab
#SBATCH --qos=high
#SBATCH --constraint=a100
#SBATCH --exclude=node7
#SBATCH --comment='two words'
#SBATCH --requeue

# setup: a line that fails ends the element, saying which
{ module load cuda
} || { echo 'shard-launcher: setup line 1 of 2 failed: module load cuda' >&2; exit 1; }
{ source ~/venv/bin/activate
} || { echo 'shard-launcher: setup line 2 of 2 failed: source ~/venv/bin/activate' >&2; exit 1; }

export SUBMITIT_EXECUTOR=slurm
srun --unbuffered --open-mode=append --output=/sweep/logs/%A_%a.out \
--error=/sweep/logs/%A_%a.err python -u -m launcher.launchers.element --slurm /sweep/a.pkl
"""


def test_the_sbatch_script_is_pinned():
    opts = SlurmConfig(
        partition="gpu",
        account="lab",
        qos="high",
        timeout_min=30,
        gpus_per_task=1,
        mem="16G",
        constraint="a100",
        exclude="node7",
        signal_delay_s=120,
        setup=["module load cuda", "source ~/venv/bin/activate"],
        additional_parameters={"comment": "two words", "requeue": True},
    )
    params = sbatch_options(opts, "thumbnail", "0-2,5%2", "/sweep/logs/%A_%a", cpus=4)
    command = ["python", "-u", "-m", "launcher.launchers.element", "--slurm", "/sweep/a.pkl"]
    note = "shard-launcher: array 0 of /sweep; shard.idx = SLURM_ARRAY_TASK_ID + 0"
    script = sbatch_script(params, opts.setup, command, note)
    assert script == GOLDEN.replace("\\\n", " ")


def test_ranges_is_slurms_array_syntax():
    assert ranges([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert ranges([3]) == "3" and ranges([]) == ""


def _array(shards: list[int]) -> Array:
    elements = [Element(i, i, f"shard-{i}", str(i), None) for i in shards]
    return Array(0, ArraySpec([], shards, shards), None, "key", 3000, elements)


def test_arrays_over_max_array_size_are_split_with_an_offset():
    parts = chunks(_array([0, 5, 1000, 1001, 2500]), max_array_size=1001)
    assert [(c.offset, c.task_ids) for c in parts] == [
        (0, [0, 5, 1000]),
        (1001, [0]),
        (2002, [498]),
    ]
    assert all(max(c.task_ids) < 1001 for c in parts)


def _cluster(cpus: int = 8, gpus: int = 0, max_time: str = "1-00:00:00") -> Cluster:
    return Cluster(
        max_array_size=1001,
        partitions={"debug": {"Default": "YES", "MaxTime": max_time}, "big": {"MaxTime": "NONE"}},
        nodes={
            "n1": Node(cpus=cpus, mem_mb=64000, gpus=gpus, partitions=["debug"]),
            "n2": Node(cpus=64, mem_mb=64000, gpus=0, partitions=["big"]),
        },
    )


@pytest.mark.parametrize(
    "opts, cpus, message",
    [
        (SlurmConfig(), 16, "cpus_per_task=16: no node in partition 'debug' has more than 8"),
        (SlurmConfig(gpus_per_task=2), None, "2 GPU(s) per task requested"),
        (SlurmConfig(gres="gpu:a100:3"), None, "3 GPU(s) per task requested"),
        (SlurmConfig(timeout_min=2000), None, "allows at most 1440 minutes"),
        (SlurmConfig(nodes=2), None, "has 1 node(s)"),
        (SlurmConfig(mem="100G"), None, "no node in partition 'debug' has more than 64000 MB"),
        (SlurmConfig(partition="nope"), None, "no such partition on this cluster"),
    ],
)
def test_requests_no_node_can_ever_satisfy_are_refused(opts, cpus, message):
    with pytest.raises(ConfigError) as e:
        check_request(opts, cpus, _cluster(gpus=1))
    assert message in str(e.value)


def test_the_cpu_hint_names_what_the_user_set():
    """Unset, cpus_per_task came from our app's backbone.num_workers; set, it is the key to
    lower (another Hydra app has no backbone)."""
    with pytest.raises(ConfigError) as e:
        check_request(SlurmConfig(), 16, _cluster())
    assert "or lower backbone.num_workers" in str(e.value)
    with pytest.raises(ConfigError) as e:
        check_request(SlurmConfig(cpus_per_task=16), 16, _cluster())
    assert "Ask for at most 8." in str(e.value) and "backbone" not in str(e.value)


def test_requests_that_fit_pass():
    check_request(SlurmConfig(), 8, _cluster())
    check_request(SlurmConfig(partition="big", timeout_min=10**6), 64, _cluster())
    check_request(SlurmConfig(gpus_per_task=1), 1, _cluster(gpus=4))
    check_request(SlurmConfig(), 1000, Cluster())  # scontrol unavailable: nothing to check


def test_slurm_value_parsing():
    assert [_minutes(x) for x in ("1-00:00:00", "2-12", "30:00", "90", "1:00:00", "NONE")] == [
        1440,
        3600,
        30,
        90,
        60,
        None,
    ]
    assert _gpus("gpu:a100:4(S:0-1),shard:8") == 4 and _gpus("(null)") == 0


def test_the_shard_sweeper_numbers_jobs_like_basic_sweeper():
    lines = ["shard.idx=range(0,3)", "task.n=10,20", "shard.num=3", "run.limit=1,2"]
    overrides = OverridesParser.create().parse_overrides(lines)
    specs = array_specs(axes(overrides))
    assert specs is not None and len(specs) == 4  # one array per combination of the others
    ours = {}
    for spec in specs:
        for shard, num in zip(spec.shards, spec.job_nums, strict=True):
            lines = list(spec.overrides)
            lines[spec.shard_pos] = f"shard.idx={shard}"
            ours[num] = lines
    (batch,) = BasicSweeper.split_arguments(overrides, None)
    assert ours == dict(enumerate(batch))


def test_a_shard_axis_that_is_not_integers_is_not_collapsed():
    overrides = OverridesParser.create().parse_overrides(["shard.idx=[0,1]", "shard.num=2"])
    assert array_specs(axes(overrides)) is None
