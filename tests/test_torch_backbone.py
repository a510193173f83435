"""TorchTasks on the torch backbone (CPU here) and on the mp backbone, end to end."""

from __future__ import annotations

import gc
import pickle
import re
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import pytest

from tests.conftest import TEST_CONF, failures, files, report

pytest.importorskip("torch")

import torch  # noqa: E402 - after the torch check

from launcher.backbones.loading import frozen_heap  # noqa: E402
from launcher.backbones.prefetch import Prefetch  # noqa: E402
from launcher.backbones.torch import INLINE_S, REPROBE_EVERY, Placement  # noqa: E402
from launcher.batch_transfer import INLINE_BYTES  # noqa: E402
from launcher.batching import Loaded, collate  # noqa: E402
from launcher.driving import Driven  # noqa: E402
from launcher.machine import available_cpus  # noqa: E402
from launcher.task import Task  # noqa: E402


def make_inputs(root: Path, n: int, bad: dict[int, str] | None = None) -> dict[str, str]:
    """``n`` files of 4 numbers; returns the expected output text per output name."""
    root.mkdir(parents=True, exist_ok=True)
    expected = {}
    for i in range(n):
        row = [i + 100, 1, 2, 3]
        text = (bad or {}).get(i, " ".join(map(str, row)))
        (root / f"{i:04d}.txt").write_text(text)
        expected[f"{i:04d}.txt.sum"] = f"{sum(row):g}\n"
    return expected


def args(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "task=sum_model",
        f"task.input_dir={tmp_path / 'in'}",
        f"task.output_dir={tmp_path / 'out'}",
        *extra,
    ]


@pytest.mark.parametrize("mode", ["each", "batch", "process"])
def test_each_process_option_writes_every_result(launch, tmp_path, mode):
    expected = make_inputs(tmp_path / "in", 70)
    r = launch(*args(tmp_path, f"task.mode={mode}", "backbone=torch", "backbone.batch_size=8"))
    assert r.returncode == 0, r.stderr + r.stdout
    rep = report(launch.job_dir)
    assert (rep["processed"], rep["failed"]) == (70, 0)
    assert rep["backbone"]["name"] == "torch" and rep["backbone"]["device"] == "cpu"
    assert "torch" in rep["versions"]
    assert {k: v.decode() for k, v in files(tmp_path / "out").items()} == expected


def test_auto_picks_torch_for_a_torch_task_and_bad_items_fail_alone(launch, tmp_path):
    # item 5 cannot load, item 13's row holds 13 (inference fails), item 93 sums to 99
    bad = {5: "corrupt", 13: "13 1 2 3", 93: "93 1 2 3"}
    expected = make_inputs(tmp_path / "in", 100, bad=bad)
    r = launch(*args(tmp_path, "backbone.batch_size=8", "backbone.num_workers=2"))
    assert r.returncode == 1, r.stderr
    rep = report(launch.job_dir)
    assert rep["backbone"]["name"] == "torch"
    assert (rep["processed"], rep["failed"]) == (97, 3)
    by_item = {f["item"]: f for f in failures(launch.job_dir)}
    assert (
        by_item["0005.txt"]["error"] == "ValueError" and "corrupt" in by_item["0005.txt"]["message"]
    )
    assert by_item["0013.txt"]["error"] == "RuntimeError"
    assert (
        by_item["0093.txt"]["error"] == "OSError"
        and "Traceback" in by_item["0093.txt"]["traceback"]
    )
    out = {k: v.decode() for k, v in files(tmp_path / "out").items()}
    assert out == {
        k: v
        for k, v in expected.items()
        if k not in ("0005.txt.sum", "0013.txt.sum", "0093.txt.sum")
    }

    r = launch(*args(tmp_path))
    rep = report(launch.job_dir)
    assert (rep["skipped"], rep["processed"], rep["failed"]) == (97, 0, 3)


def test_slow_postprocess_under_the_thread_pool_loses_nothing(launch, tmp_path):
    expected = make_inputs(tmp_path / "in", 60)
    r = launch(
        *args(
            tmp_path,
            "task.slow_s=0.01",
            "backbone=torch",
            "backbone.batch_size=4",
            "backbone.postprocess_workers=3",
            "backbone.num_workers=0",
        )
    )
    assert r.returncode == 0, r.stderr
    assert report(launch.job_dir)["processed"] == 60
    assert {k: v.decode() for k, v in files(tmp_path / "out").items()} == expected


def test_slow_postprocessing_goes_to_the_pool_and_waiting_steps_get_a_loader_thread(
    launch, tmp_path
):
    expected = make_inputs(tmp_path / "in", 64)
    log = tmp_path / "threads"
    extra = ["task.slow_s=0.02", f"task.thread_log={log}", "backbone=torch"]
    r = launch(*args(tmp_path, *extra, "backbone.batch_size=4", "backbone.num_workers=0"))
    assert r.returncode == 0, r.stderr
    assert {k: v.decode() for k, v in files(tmp_path / "out").items()} == expected
    lines = log.read_text().split()
    loads = [line[5:] for line in lines if line.startswith("load:")]
    writes = [line[6:] for line in lines if line.startswith("write:")]
    assert len(loads) == len(writes) == 64
    # the first three postprocess calls (4 items each) are timed in the model's thread
    assert writes[:12] == ["MainThread"] * 12
    assert all(name.startswith("postprocess") for name in writes[12:])
    # the first five steps are timed with the batches loaded here, then a thread loads them
    # (both are decided after a fixed count of calls, on times a busy machine only lengthens:
    # each step sleeps 20 ms with the GIL released, each item's write 5 ms)
    assert loads == ["MainThread"] * 20 + ["loader"] * 44


def test_postprocessing_placement_follows_the_timed_calls():
    fast, slow = INLINE_S / 10, INLINE_S * 10
    cheap = Placement()
    for _ in range(300):
        assert cheap.here()
        cheap.took(fast)
    costly = Placement()
    here = []
    for _ in range(600):
        here.append(costly.here())
        if here[-1]:
            costly.took(slow)
    assert [i + 1 for i, h in enumerate(here) if h] == [1, 2, 3, REPROBE_EVERY, 2 * REPROBE_EVERY]
    mixed = Placement()
    for t in (fast, fast, fast, slow):  # one slow call is not a trend
        mixed.here()
        mixed.took(t)
    assert mixed.here()
    mixed.took(slow)  # two of the last three are
    assert not mixed.here()


@pytest.mark.parametrize(
    "wall, cpu, threaded",
    [(0.010, 0.001, True), (0.002, 0.0019, False), (0.0005, 0.0001, False)],
)
def test_a_loader_thread_starts_only_for_steps_that_mostly_wait(wall, cpu, threaded):
    batches = Prefetch(iter(range(50)))
    seen = []
    probing = []
    for batch in batches:
        seen.append(batch)
        probing.append(batches.probing)
        batches.observe(wall, cpu)
    batches.close()
    assert seen == list(range(50))
    assert batches.threaded == threaded
    assert probing == [True] * 5 + [False] * 45  # the steps after the decision are not timed


def test_a_loader_thread_hands_the_loaders_error_to_the_model_thread():
    def broken():
        yield from range(10)
        raise OSError("worker died")

    batches = Prefetch(broken())
    got = []
    with pytest.raises(OSError, match="worker died"):
        for batch in batches:
            got.append(batch)
            batches.observe(0.010, 0.0)
    batches.close()
    assert got == list(range(10)) and batches.threaded


def test_the_same_torch_task_on_the_mp_backbone_gives_the_same_outputs(launch, tmp_path):
    expected = make_inputs(tmp_path / "in", 50, bad={7: "corrupt"})
    r = launch(*args(tmp_path, "backbone=mp", "backbone.num_workers=2", "backbone.batch_size=4"))
    assert r.returncode == 1, r.stderr
    rep = report(launch.job_dir)
    assert rep["backbone"]["name"] == "mp" and (rep["processed"], rep["failed"]) == (49, 1)
    assert [f["item"] for f in failures(launch.job_dir)] == ["0007.txt"]
    del expected["0007.txt.sum"]
    assert {k: v.decode() for k, v in files(tmp_path / "out").items()} == expected


def test_torch_shard_sweep_union_equals_a_single_run(launch, tmp_path):
    expected = make_inputs(tmp_path / "in", 40)
    r = launch(
        *args(tmp_path, "backbone=torch", "backbone.num_workers=0", "shard.num=2"), multirun=True
    )
    assert r.returncode == 0, r.stderr
    assert [report(launch.job_dir / str(i))["processed"] for i in range(2)] == [20, 20]
    assert {k: v.decode() for k, v in files(tmp_path / "out").items()} == expected


def test_plain_task_on_auto_uses_mp_and_never_imports_torch(launch, tmp_path):
    r = launch("task=squares", f"task.output_dir={tmp_path / 'o'}", "task.n=10")
    assert r.returncode == 0
    rep = report(launch.job_dir)
    assert rep["backbone"]["name"] == "mp" and "torch" not in rep["versions"]


def test_cuda_that_is_not_there_is_a_config_error(launch, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    make_inputs(tmp_path / "in", 3)
    r = launch(*args(tmp_path, "backbone=torch", "backbone.device=cuda"))
    assert (
        r.returncode == 2
        and "backbone.device='cuda' but CUDA is not available" in r.stdout + r.stderr
    )


def test_plain_task_on_torch_backbone_is_refused(launch, tmp_path):
    r = launch("task=squares", f"task.output_dir={tmp_path / 'o'}", "backbone=torch")
    assert r.returncode == 2 and "backbone=torch needs a launcher.TorchTask" in r.stdout + r.stderr


def test_a_batch_leaves_a_worker_with_small_tensors_inline_and_arrives_whole():
    """As a DataLoader worker sends a batch: every tensor comes back equal (dtype, shape,
    values, writable); the small ones inside the message, the big one in shared memory."""
    big = torch.arange(INLINE_BYTES // 4 + 1, dtype=torch.float32)
    samples = [
        (
            {"key": f"k{i}"},
            {
                "x": torch.full((3, 2), float(i)),
                "half": torch.tensor([i, 0.5], dtype=torch.bfloat16),
                "mask": torch.tensor(i % 2 == 0),
                "strided": torch.arange(6).reshape(2, 3).t() + i,
                "ragged": torch.ones(i + 1),  # shapes differ: kept as a list of tensors
                "column": torch.arange(8.0).reshape(4, 2)[: i + 1, 1],  # a view, stride 2
                "complex": torch.full((2,), i + 1j),
                "empty": torch.zeros(0, 2),
                "big": big + i,
                "name": f"n{i}",
            },
        )
        for i in range(3)
    ]
    sent = collate(samples)
    got = pickle.loads(ForkingPickler.dumps(sent))
    assert isinstance(got, Loaded) and got.items == [{"key": f"k{i}"} for i in range(3)]
    (_, batch), (_, want) = got.parts[0], sent.parts[0]
    assert batch.keys() == want.keys() and batch["name"] == ["n0", "n1", "n2"]
    for key in ("x", "half", "mask", "strided", "complex", "empty", "big"):
        assert batch[key].dtype == want[key].dtype and torch.equal(batch[key], want[key]), key
    for key in ("ragged", "column"):
        assert all(map(torch.equal, batch[key], want[key])), key
    assert not batch["x"].is_shared() and batch["big"].is_shared()
    batch["x"].add_(1)  # the bytes it was rebuilt from are its own, writable


@pytest.mark.skipif(not hasattr(torch, "uint4"), reason="this torch has no uint4")
def test_a_small_tensor_bytes_cannot_hold_leaves_a_worker_by_shared_memory():
    sent = Loaded([([{"key": "k"}], {"u": torch.zeros(1, 4, dtype=torch.uint4)})])
    (_, batch) = pickle.loads(ForkingPickler.dumps(sent)).parts[0]
    assert batch["u"].dtype == torch.uint4 and batch["u"].shape == (1, 4)
    assert batch["u"].is_shared()


def test_item_keys_match_item_key_whatever_the_items():
    class Named(Task):
        def item_key(self, item):
            return f"n{item.get('i')}"

    plain = [{"key": "a", "i": 1}, {"key": "b", "i": 2}]
    mixed = [{"key": "a"}, {"i": 2}]  # the second has no key: item_key makes one
    for task in (Task(), Named()):
        for items in (plain, mixed, []):
            assert Driven.of(task).item_keys(items) == [task.item_key(it) for it in items]


def test_a_freeze_around_forks_is_undone_and_a_tasks_own_freeze_kept():
    assert gc.get_freeze_count() == 0
    with frozen_heap():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with frozen_heap():
            pass
        # not unfrozen (an unfreeze empties it; other threads of this test process may free
        # or add a frozen object meanwhile, so the count itself may move by one)
        assert frozen > 0 and gc.get_freeze_count() > frozen // 2
    finally:
        gc.unfreeze()


def test_dataloader_workers_start_before_the_model_with_the_jobs_objects_frozen(launch, tmp_path):
    """Workers fork before ``load_model`` (they load while the model loads, and hold no
    copy of it), and their collections never walk (and copy) the parent's objects."""
    make_inputs(tmp_path / "in", 12)
    log = tmp_path / "threads"
    r = launch(
        *args(
            tmp_path,
            f"task.thread_log={log}",
            "backbone=torch",
            "backbone.batch_size=4",
            "backbone.num_workers=2",
        )
    )
    assert r.returncode == 0, r.stderr
    lines = log.read_text().split()
    assert [line for line in lines if line.startswith("frozen:")] == ["frozen:True"] * 12
    assert lines.count("loader-had-model:False") == 12
    assert "teardown-frozen:False" in lines


def spinning_loaders(
    tmp_path: Path, log: Path, load_spin_s: float, *extra: str, step_s: float = 0.05
) -> list[str]:
    """A torch run whose loading keeps a CPU busy ``load_spin_s`` per item, against model
    steps of ``step_s`` in batches of 4, its threads logged to ``log``."""
    return args(
        tmp_path,
        f"task.thread_log={log}",
        f"task.load_spin_s={load_spin_s}",
        f"task.slow_s={step_s}",
        "backbone=torch",
        "backbone.batch_size=4",
        *extra,
    )


@pytest.mark.parametrize("load_spin_s", [0.0, 0.05])
def test_on_the_cpu_loading_starts_in_the_models_process_and_moves_to_workers_when_it_costs(
    launch, tmp_path, load_spin_s
):
    """By default, on the CPU, batches load in the model's process (a worker beside the
    model costs more than cheap loading: bench T2, T3); loading measured to take more than
    a tenth of the time (here 200 ms of CPU a batch against 100 ms model steps) moves to
    DataLoader workers: the log says so, the report names them, no item is lost or run
    twice; the model's threads leave the workers their CPUs from then on. Cheap loading (a
    small file per item) stays in the model's process."""
    expected = make_inputs(tmp_path / "in", 80)
    log = tmp_path / "threads"
    r = launch(*spinning_loaders(tmp_path, log, load_spin_s, step_s=0.1))
    assert r.returncode == 0, r.stderr
    rep = report(launch.job_dir)
    assert (rep["processed"], rep["failed"]) == (80, 0)
    assert {k: v.decode() for k, v in files(tmp_path / "out").items()} == expected
    lines = log.read_text().split()  # the job's process: its main or its loader thread
    here = lines.count("load:MainThread") + lines.count("load:loader")
    moved = "moving it to" in r.stdout
    assert moved == bool(load_spin_s), r.stdout
    if moved:
        workers = max(1, min(8, available_cpus() - 1))
        assert rep["backbone"]["num_workers"] == workers
        assert 4 * 9 <= here < 80  # the first window, timed here, then the workers'
        every = min(torch.get_num_threads(), available_cpus())
        assert rep["backbone"]["cpu_threads"] <= max(1, every - workers)
    else:
        assert (rep["backbone"]["num_workers"], here) == (0, 80)


def test_a_torch_job_from_python_leaves_the_callers_garbage_collector_as_it_was(tmp_path):
    """``launcher.run`` in a user's process: collection, paused while torch imports and the
    model loads, is on again after, and nothing is left frozen (only the command line
    freezes its heap, as it exits); a caller that turned collection off finds it off."""
    import launcher

    make_inputs(tmp_path / "in", 8)
    frozen = gc.get_freeze_count()
    for enabled in (True, False):
        out = tmp_path / f"out-{enabled}"
        overrides = [f"hydra.searchpath=[file://{TEST_CONF}]", f"task.input_dir={tmp_path / 'in'}"]
        if not enabled:
            gc.disable()
        try:
            rep = launcher.run(
                "sum_model",
                backbone="torch",
                run={"progress": "off"},
                job_dir=tmp_path / f"job-{enabled}",
                overrides=[*overrides, f"task.output_dir={out}"],
            )
            assert (rep["processed"], gc.isenabled()) == (8, enabled)
        finally:
            gc.enable()
        assert gc.get_freeze_count() == frozen


@pytest.mark.parametrize("timeout", [None, 30])
def test_on_the_cpu_a_set_item_timeout_loads_in_workers_from_the_start(launch, tmp_path, timeout):
    """``run.item_timeout_s`` can stop only a load in a worker: with it, the default loads
    in workers from the first batch; without it, in the model's process."""
    make_inputs(tmp_path / "in", 12)
    extra = [] if timeout is None else [f"run.item_timeout_s={timeout}"]
    r = launch(*args(tmp_path, "backbone=torch", "backbone.batch_size=4"), *extra)
    assert r.returncode == 0, r.stderr
    rep = report(launch.job_dir)
    assert rep["processed"] == 12
    assert rep["backbone"]["num_workers"] == (
        0 if timeout is None else max(1, min(8, available_cpus() - 1))
    )


@pytest.mark.parametrize(
    ("cpu_threads", "load_spin_s"), [(None, 0.0), (None, 0.05), (2, 0.0), (2, 0.05)]
)
def test_a_cpu_model_gets_the_cpus_its_loaders_do_not_need(
    launch, tmp_path, cpu_threads, load_spin_s
):
    """By default the model starts with the CPUs its loader workers leave (torch's own count
    at most): a loader that must keep up needs its CPU from the first batch. Loaders
    measured to keep a CPU busy (50 ms of CPU per item, 200 ms a batch, against model steps
    of 50-100 ms) keep it, as threads that outnumber the CPUs wait for each other at every
    parallel step; loaders measured idle give it back, unless other processes are measured
    busy on the same CPUs (this machine may be shared). ``backbone.cpu_threads`` is kept as
    set; the job's own setting comes back after the run."""
    make_inputs(tmp_path / "in", 100)  # 25 steps: past the first decision, even under load
    log = tmp_path / "threads"
    extra = [] if cpu_threads is None else [f"backbone.cpu_threads={cpu_threads}"]
    r = launch(*spinning_loaders(tmp_path, log, load_spin_s, "backbone.num_workers=1"), *extra)
    assert r.returncode == 0, r.stderr
    default = torch.get_num_threads()
    every = min(default, available_cpus())
    start = cpu_threads or max(1, every - 1)
    got = report(launch.job_dir)["backbone"]["cpu_threads"]
    lines = log.read_text().split()
    assert f"model-threads:{start}" in lines
    assert f"teardown-threads:{default}" in lines
    if cpu_threads is not None or available_cpus() == 1:
        assert got == start
        return
    assert "loader workers need" in r.stdout  # the decision is logged
    if load_spin_s:
        assert got <= max(1, every - 1)
    else:  # loaders that need next to nothing: only other processes can keep CPUs away
        others = re.findall(r"other processes use ([\d.]+)", r.stdout)
        assert got == every or (others and float(others[-1]) >= 0.5), r.stdout


def test_items_of_similar_size_share_a_batch_and_every_item_runs_once(launch, tmp_path):
    """A task that declares ``item_size`` gets batches cut from a window of the plan sorted
    by size, largest first: 70 items of sizes 0-4 in batches of 4 (one window holds them all) run in
    batches of one size, or of two neighbouring ones where a size runs out; every item is
    written once, with its own result."""
    expected = make_inputs(tmp_path / "in", 70)
    log = tmp_path / "threads"
    r = launch(
        *args(
            tmp_path,
            "task.mode=sized",
            f"task.thread_log={log}",
            "backbone=torch",
            "backbone.batch_size=4",
        )
    )
    assert r.returncode == 0, r.stderr
    assert {k: v.decode() for k, v in files(tmp_path / "out").items()} == expected
    batches = [
        [int(v) for v in line.removeprefix("batch:").split(",")]
        for line in log.read_text().split()
        if line.startswith("batch:")
    ]
    largest_first = sorted((i % 5 for i in range(70)), reverse=True)
    assert [size for batch in batches for size in batch] == largest_first
    assert all(max(b) - min(b) <= 1 for b in batches), batches


def test_pinning_a_loaded_batch_pins_its_tensors(monkeypatch):
    """``pin_memory=True`` (the default on CUDA) reaches the tensors of a :class:`Loaded`,
    those in list fields too, and leaves other fields as they are; ``Tensor.pin_memory``,
    which needs a GPU, is the one thing replaced."""
    from torch.utils.data._utils.pin_memory import pin_memory

    pinned = []

    def pin(self):
        pinned.append(self)
        return self.clone()

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin)
    x, line = torch.ones(2, 3), torch.zeros(1, 5)
    loaded = Loaded([([{"key": "a"}, {"key": "b"}], {"x": x, "lines": [line], "key": ["a", "b"]})])
    out = pin_memory(loaded)  # what the DataLoader's pinning thread calls
    assert isinstance(out, Loaded) and out.items == loaded.items
    batch = out.parts[0][1]
    assert [id(t) for t in pinned] == [id(x), id(line)]
    assert batch["x"] is not x and torch.equal(batch["x"], x)
    assert batch["lines"][0] is not line and batch["key"] == ["a", "b"]
