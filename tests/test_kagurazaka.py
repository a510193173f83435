"""kagurazaka task files, unmodified, through ``task=kagurazaka``: real runs of ``launch.py``.

Where kagurazaka's own CLI can run the same file (CPU tasks, fork start
method) the outputs must be identical; its torch backbone needs CUDA, so the
torch forms are checked against the sums they must write.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from launcher.errors import ConfigError
from tests.conftest import failures, files, report

pytest.importorskip(
    "kagurazaka", reason="kagurazaka is not installed: pip install -e '.[kagurazaka]'"
)

TASKS = Path(__file__).resolve().parent / "kagurazaka_tasks"
NORMAL, TORCH = TASKS / "normal_tasks.py", TASKS / "torch_tasks.py"


def kg(file: Path, name: str, *extra: str) -> list[str]:
    return ["task=kagurazaka", f"task.file={file}", f"task.name={name}", *extra]


def paths(src: Path, out: Path) -> list[str]:
    """The mixin that fills the test templates' placeholders."""
    return [
        f"task.mixin.hard_shard_mode.input_path={src}",
        f"task.mixin.hard_shard_mode.output_path={out}",
    ]


def texts(root: Path, nested: bool = True) -> Path:
    """20 text files (and one in a subfolder), plus a file the templates' input mode skips."""
    root.mkdir(parents=True)
    for i in range(20):
        (root / f"doc{i:02d}.txt").write_text(" ".join(["w"] * (i + 1)))
    (root / "notes.md").write_text("not a text file")
    if nested:
        (root / "sub").mkdir()
        (root / "sub" / "deep.txt").write_text("one two three")
    return root


def numbers(root: Path, n: int) -> dict[str, str]:
    """``n`` files of 4 numbers; returns the sum each output must hold."""
    root.mkdir(parents=True)
    for i in range(n):
        (root / f"{i:04d}.txt").write_text(f"{i + 100} 1 2 3")
    return {f"{i:04d}.txt.sum": f"{i + 106}\n" for i in range(n)}


def kagurazaka_cli(*argv: str, cwd: Path) -> None:
    """kagurazaka's own CLI on its mp backbone (fork: the only start method it works with)."""
    cmd = [sys.executable, "-c", "from kagurazaka.main import main; main()", *argv]
    r = subprocess.run(
        [*cmd, "--num_process", "2"], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr


def text(root: Path) -> dict[str, str]:
    return {k: v.decode() for k, v in files(root).items()}


def test_a_plain_task_writes_what_the_kagurazaka_cli_writes(launch, tmp_path):
    src, ours = texts(tmp_path / "in", nested=False), tmp_path / "ours"
    argv = f"task.args=[--input,{src},--output,{ours},--label,n]"
    args = ["backbone=mp", "backbone.num_workers=2", argv]
    r = launch(*kg(NORMAL, "WordCount", *args))
    assert r.returncode == 0, r.stderr + r.stdout
    rep = report(launch.job_dir)
    assert (rep["total"], rep["processed"], rep["failed"]) == (21, 21, 0)
    assert rep["backbone"]["start_method"] == "forkserver"  # the adapter crossed a pickle
    cli = ["--input", str(src), "--output", str(tmp_path / "cli"), "--label", "n"]
    kagurazaka_cli(str(NORMAL), "WordCount", *cli, cwd=tmp_path)
    assert files(ours) == files(tmp_path / "cli") and len(files(ours)) == 21

    (ours / "doc03.txt.count").unlink()
    assert launch(*kg(NORMAL, "WordCount", *args, "backbone.start_method=fork")).returncode == 0
    rep = report(launch.job_dir)
    assert (rep["skipped"], rep["processed"]) == (20, 1)  # its is_executed, in the planner
    assert files(ours) == files(tmp_path / "cli")


def test_a_decorated_task_matches_the_cli_and_its_shards_add_up(launch, tmp_path):
    src = texts(tmp_path / "in")
    kagurazaka_cli(
        str(NORMAL),
        "TemplateWordCount",
        "--mixin",
        f"hard_shard_mode.input_path={src}",
        f"hard_shard_mode.output_path={tmp_path / 'cli'}",
        "--label",
        "n",
        cwd=tmp_path,
    )
    label, fork = "task.args=[--label,n]", "backbone.start_method=fork"
    r = launch(*kg(NORMAL, "TemplateWordCount", *paths(src, tmp_path / "whole"), label, fork))
    assert r.returncode == 0, r.stderr + r.stdout
    assert report(launch.job_dir)["processed"] == 21
    assert text(tmp_path / "whole") == text(tmp_path / "cli")
    assert text(tmp_path / "cli")["sub/deep.txt.count"] == "n 3\n"

    sharded = [*paths(src, tmp_path / "sharded"), label, fork, "backbone.num_workers=1"]
    r = launch(*kg(NORMAL, "TemplateWordCount", *sharded, "shard.num=2"), multirun=True)
    assert r.returncode == 0, r.stderr + r.stdout
    reports = [report(launch.job_dir / str(i)) for i in range(2)]
    assert [rep["processed"] for rep in reports] == [11, 10]  # modulo: SoftShard's split
    assert files(tmp_path / "sharded") == files(tmp_path / "whole")


def test_an_unfilled_placeholder_stops_the_job_before_any_work(launch, tmp_path):
    src = texts(tmp_path / "in")
    r = launch(*kg(NORMAL, "TemplateWordCount", f"task.mixin.hard_shard_mode.input_path={src}"))
    log = r.stdout + r.stderr
    assert r.returncode == 2, log
    assert "KAGURAZAKA_MIXIN_PLACEHOLDER" in log and "task.mixin.hard_shard_mode.output_path" in log
    assert "hard_shard_mode.input_path" not in log.split("unfilled:")[1]
    rep = report(launch.job_dir)  # the job started, so its report says how it ended
    assert (rep["state"], rep["exit_code"], rep["processed"]) == ("failed", 2, 0)


TORCH_FORMS = {
    # process option A, is_each_executed, the torch backbone with DataLoader workers
    "SumEach": ["backbone=torch", "backbone.num_workers=2"],
    # process option B, is_executed(batch), get_dataloader(), on the mp backbone
    "SumBatch": ["backbone=mp", "backbone.num_workers=2", "backbone.start_method=fork"],
    # the template: input_mode, load_data, output_mode, finish check; auto picks torch
    "TemplateSum": ["backbone=auto"],
}


@pytest.mark.parametrize("name", list(TORCH_FORMS))
def test_each_torch_form_writes_every_sum_and_skips_what_is_done(launch, tmp_path, name):
    expected = numbers(tmp_path / "in", 30)
    src, out = tmp_path / "in", tmp_path / "out"
    where = (
        paths(src, out) if name == "TemplateSum" else [f"task.args=[--input,{src},--output,{out}]"]
    )
    args = kg(TORCH, name, *where, *TORCH_FORMS[name], "backbone.batch_size=4")
    r = launch(*args)
    assert r.returncode == 0, r.stderr + r.stdout
    assert report(launch.job_dir)["processed"] == 30
    assert text(out) == expected

    (out / "0003.txt.sum").write_text("kept\n")
    (out / "0004.txt.sum").unlink()
    r = launch(*args)
    assert r.returncode == 0, r.stderr + r.stdout
    assert text(out) == {**expected, "0003.txt.sum": "kept\n"}  # done items were not redone
    if name == "TemplateSum":  # items from an input mode are checked before they load
        assert report(launch.job_dir)["skipped"] == 29


def test_process_option_c_and_a_bad_sample_that_fails_alone(launch, tmp_path):
    expected = numbers(tmp_path / "in", 12)
    (tmp_path / "in" / "0005.txt").write_text("1 2 3")  # 3 numbers: the model refuses it
    del expected["0005.txt.sum"]
    out = tmp_path / "out"
    args = [f"task.args=[--input,{tmp_path / 'in'},--output,{out}]", "backbone=torch"]
    r = launch(*kg(TORCH, "SumStep", *args, "backbone.num_workers=0", "backbone.batch_size=4"))
    assert r.returncode == 1, r.stderr + r.stdout
    rep = report(launch.job_dir)
    assert (rep["processed"], rep["failed"]) == (11, 1)
    assert [f["item"] for f in failures(launch.job_dir)] == ["5"]  # its position in the dataset
    assert text(out) == expected


def test_mixins_never_leak_between_tasks_or_into_kagurazaka_defaults(tmp_path):
    from kagurazaka.template.io import SoftShard
    from kagurazaka.template.task.normal import template_normal

    from launcher.compat.kagurazaka import from_file

    src = texts(tmp_path / "in")
    mixin = {"hard_shard_mode": {"input_path": str(src), "output_path": str(tmp_path / "o")}}
    task = from_file(str(NORMAL), "TemplateWordCount", mixin=mixin)
    assert len(list(task.generate_tasks())) == 21  # no soft shard of its own
    with pytest.raises(ConfigError, match=r"task\.mixin\.hard_shard_mode\.input_path"):
        from_file(str(NORMAL), "TemplateWordCount")  # the first task's paths did not stick
    with pytest.raises(ConfigError, match="shard.num=N shard.idx=I"):
        from_file(str(NORMAL), "TemplateWordCount", mixin={"soft_shard": {"shard_idx": 1}})
    with pytest.raises(ConfigError, match="NoHardShard has no field 'input_pth'"):
        from_file(str(NORMAL), "TemplateWordCount", mixin={"hard_shard_mode": {"input_pth": "x"}})
    assert template_normal.__defaults__[0] == SoftShard(shard_idx=0, shard_num=1)


def test_task_mixin_overrides_a_kagurazaka_mixin_cfg_file(tmp_path):
    from launcher.compat.kagurazaka import from_file

    src = texts(tmp_path / "in")
    cfg = tmp_path / "mixin.yaml"
    cfg.write_text(f"hard_shard_mode:\n  input_path: {src}\n  output_path: {tmp_path / 'file'}\n")
    mixin = {"hard_shard_mode": {"output_path": str(tmp_path / "cli")}}
    task = from_file(str(NORMAL), "TemplateWordCount", mixin=mixin, mixin_cfg=str(cfg))
    assert task.output_dir == str(tmp_path / "cli")
    assert len(list(task.generate_tasks())) == 21


def test_a_template_applied_at_import_loses_its_own_soft_shard(caplog):
    from launcher.compat.kagurazaka import from_file

    task = from_file(str(NORMAL), "PresetShard")  # its SoftShard(0 of 2) would keep half
    keys = sorted(task.item_key(item) for item in task.generate_tasks())
    assert keys == sorted(p.name for p in TASKS.glob("*.py"))
    assert "replaced by shard.*" in caplog.text
    with pytest.raises(ConfigError, match="is a class: only a @moemoecue_"):
        from_file(str(NORMAL), "PresetShard", mixin={"input_mode": {"exts": [".txt"]}})


def test_the_adapter_pickles_as_its_recipe_and_keeps_its_hard_shard(tmp_path):
    from launcher.compat.kagurazaka import from_file
    from launcher.driving import Driven
    from launcher.shard import Shard, Strategy

    texts(tmp_path / "part_1")
    mixin = {
        "hard_shard_mode": {
            "input_path": str(tmp_path / "part_{shard_idx}"),
            "output_path": str(tmp_path / "out_{shard_idx}"),
        }
    }
    task = from_file(str(NORMAL), "TemplateWordCount", args=["--label", "n"], mixin=mixin)
    bound = Driven.of(task, Shard(2, frozenset({1}), Strategy.hard)).task
    assert task.output_dir == str(tmp_path / "out_{shard_idx}")  # the task given stays as built
    clone = pickle.loads(pickle.dumps(bound))
    items = list(clone.generate_tasks())
    assert clone.item_key(items[-1]) == "sub/deep.txt"
    assert clone.output_dir == str(tmp_path / "out_1")
    clone.process(**items[-1])
    assert (tmp_path / "out_1" / "sub" / "deep.txt.count").read_text() == "n 3\n"


def test_a_torch_adapter_pickles_and_runs_in_a_fresh_worker(tmp_path):
    from launcher.compat.kagurazaka import from_file
    from launcher.driving import Driven

    expected = numbers(tmp_path / "in", 6)
    args = ["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")]
    task = from_file(str(TORCH), "SumBatch", args=args)
    shipped = Driven.of(task).worker_side(num_workers=1, batch_size=4)
    worker = pickle.loads(pickle.dumps(shipped))  # what a spawn or forkserver worker receives
    worker.setup_worker(0)
    assert worker.process_batch(list(worker.task.generate_tasks())) == []
    assert text(tmp_path / "out") == expected


def test_task_args_take_the_forms_kagurazaka_users_have():
    from launcher.compat.kagurazaka import cli_args

    assert cli_args(["--lang", "en", 3]) == ("--lang", "en", "3")
    assert cli_args("--lang en --fast") == ("--lang", "en", "--fast")
    mapping = {"lang": "en", "fast": "store_true", "sizes": [1, 2], "prompts": {"a": "b"}}
    assert cli_args(mapping) == (
        "--lang",
        "en",
        "--fast",
        "--sizes",
        "1",
        "2",
        "--prompts",
        '{"a": "b"}',
    )


def test_a_job_of_another_task_does_not_import_the_adapter(tmp_path):
    """Our entry point registers ``task=kagurazaka``'s base node without importing
    ``launcher.compat.kagurazaka``, so that other jobs do not pay for it at start."""
    code = (
        "import sys\n"
        "from launcher.cli import run_hydra\n"
        "sys.argv = ['launch.py', 'task=squares', 'run.progress=off', *sys.argv[1:]]\n"
        "code = run_hydra()\n"
        "print(code, 'launcher.compat.kagurazaka' in sys.modules)\n"
    )
    conf = Path(__file__).resolve().parent / "conf"
    args = [f"hydra.searchpath=[file://{conf}]", f"task.output_dir={tmp_path / 'out'}"]
    args.append(f"hydra.run.dir={tmp_path / 'job'}")
    repo = conf.parent.parent
    r = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=repo, capture_output=True, text=True
    )
    assert r.stdout.splitlines()[-1:] == ["0 False"], r.stderr + r.stdout
