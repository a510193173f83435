"""What a user sees around a job: where the results are, progress that reads, failures
grouped, and mistakes refused. Each test runs the real command and reads what it
printed or wrote."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO, TEST_CONF, report


def squares(out, *more):
    return ["task=squares", f"task.output_dir={out}", *more]


def summary_line(text: str) -> str:
    (line,) = [ln for ln in text.splitlines() if "records in " in ln]
    return line


def test_summary_and_report_name_the_output_folder_and_the_records(launch, tmp_path):
    thumbs = tmp_path / "thumbs"
    r = launch(
        "task=thumbnail",
        "task.size=24",
        f"task.output_dir='{thumbs}/${{hash:${{.size}},${{.format}},${{.quality}}}}'",
    )
    assert r.returncode == 0, r.stderr
    rep = report(launch.job_dir)
    (folder,) = thumbs.iterdir()
    assert re.fullmatch(r"[0-9a-f]{10}", folder.name)
    assert rep["output_dir"] == str(folder) and rep["job_dir"] == str(launch.job_dir)
    line = summary_line(r.stdout + r.stderr)
    assert f"outputs in {folder}, records in {launch.job_dir}" in line
    # the hash-named folder says which parameters named it
    assert rep["output_params"] == str(folder / "params.json")
    params = json.loads((folder / "params.json").read_text())
    assert params["hash"] == folder.name
    assert params["params"] == {"size": 24, "format": "jpeg", "quality": 85}
    assert "${hash:" in params["output_dir"]


def test_dry_run_says_pending_and_done_and_a_limit_says_what_is_left(launch, tmp_path):
    out = tmp_path / "out"
    r = launch(*squares(out, "task.n=36"), "run.limit=6")
    assert r.returncode == 0, r.stderr
    line = summary_line(r.stdout + r.stderr)
    assert "processed 6, skipped 0, failed 0 of 6" in line
    assert "run.limit=6 reached, 30 item(s) left" in line
    assert report(launch.job_dir)["items_left"] == 30

    r = launch(*squares(out, "task.n=36"), "run.dry_run=true")
    assert r.returncode == 0, r.stderr
    assert "dry run: 30 pending, 6 done of 36" in summary_line(r.stdout + r.stderr)
    assert report(launch.job_dir)["state"] == "dry_run"


def test_start_line_and_report_agree_on_workers_started(launch, tmp_path):
    r = launch(*squares(tmp_path / "out", "task.n=20"), "backbone=mp", "backbone.num_workers=2")
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert "workers_started" not in out  # the start line is written before any worker starts
    assert report(launch.job_dir)["backbone"]["workers_started"] == 2
    # until items flow, the log says what the job is doing
    assert "listing items and checking which are done" in out
    assert "starting 2 workers" in out


def test_a_bug_that_fails_every_item_stops_early_with_one_paragraph(launch, tmp_path):
    fault = tmp_path / "fault"
    fault.write_text("")
    args = squares(tmp_path / "out", "task.n=300", "task.fail_mod=1", f"task.fault_file={fault}")
    r = launch(*args)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    rep = report(launch.job_dir)
    assert rep["state"] == "aborted" and 20 <= rep["failed"] < 300
    assert "the first 20 items all failed with ValueError" in rep["stop_reason"]
    assert "the first 20 items all failed with ValueError" in out
    # the first failure's traceback (which item fails first depends on the workers' order)
    assert "Traceback (most recent call last)" in out and re.search(r"bad item \d+", out)
    assert "run.systematic_failures=null" in out
    assert len(re.findall(r"item \S+ failed: ValueError", out)) == 1  # one line, not one per item

    r = launch(*args, "run.systematic_failures=null", "run.log_interval_s=3600")
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    rep = report(launch.job_dir)
    assert (rep["state"], rep["failed"]) == ("completed", 300)
    assert len(re.findall(r"failed: ValueError", out)) == 1
    assert "failed 300 (ValueError 300) of 300" in summary_line(out)


def test_repeated_failures_are_counted_periodically(launch, tmp_path):
    fault = tmp_path / "fault"
    fault.write_text("")
    args = squares(tmp_path / "out", "task.n=60", "task.fail_mod=2", f"task.fault_file={fault}")
    args.append("task.slow_s=0.02")
    r = launch(*args, "run.log_interval_s=0.1", "backbone.num_workers=1")
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert report(launch.job_dir)["failed"] == 30  # items succeed too: no early stop
    assert len(re.findall(r"failed: ValueError", out)) == 1
    assert re.search(r"\d+ item\(s\) failed so far: ValueError \d+", out)


@pytest.mark.parametrize("chunk_hook", [False, True], ids=["per-item", "process_chunk"])
def test_failures_that_arrive_before_their_chunk_mates_successes_are_not_systematic(
    launch, tmp_path, chunk_hook
):
    """One chunk of 60, every other item fails: the 30 failures reach the parent before the
    chunk's successes are counted; the early stop must still see that items succeeded."""
    fault = tmp_path / "fault"
    fault.write_text("")
    args = squares(tmp_path / "out", "task.n=60", "task.fail_mod=2", f"task.fault_file={fault}")
    if chunk_hook:
        args.append("task._target_=tests.speed_tasks.ChunkSquares")
    r = launch(*args, "backbone.num_workers=1", "backbone.chunksize=60")
    assert r.returncode == 1, r.stdout + r.stderr
    rep = report(launch.job_dir)
    assert (rep["state"], rep["processed"], rep["failed"]) == ("completed", 30, 30)


def test_systematic_failures_is_checked_like_the_other_run_numbers(launch, tmp_path):
    r = launch(*squares(tmp_path / "out"), "run.systematic_failures=0")
    assert r.returncode == 2
    assert "run.systematic_failures=0 is out of range: must be >= 1" in r.stdout + r.stderr


def test_on_error_raise_shows_the_items_traceback(launch, tmp_path):
    fault = tmp_path / "fault"
    fault.write_text("")
    args = squares(tmp_path / "out", "task.n=10", "task.fail_mod=3", f"task.fault_file={fault}")
    r = launch(*args, "run.on_error=raise")
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "Traceback (most recent call last)" in out
    assert 'raise ValueError(f"bad item {x}")' in out
    assert "run.on_error=raise" in out


@pytest.mark.parametrize(
    ("override", "hint"),
    [
        ("+backbone.num_worker=4", "Did you mean num_workers?"),
        ("backbone.num_worker=4", "Did you mean num_workers?"),
        ("+shard.idxx=1", "Did you mean idx?"),
        ("shard.idxx=1", "Did you mean idx?"),
        ("+run.dry_rum=true", "Did you mean dry_run?"),
        ("run.dry_rum=true", "Did you mean dry_run?"),
        ("+task.nn=3", "Did you mean n?"),
        ("+bakbone=1", "Did you mean backbone?"),
    ],
)
def test_unknown_keys_are_refused_with_or_without_a_plus(launch, tmp_path, override, hint):
    """Without ``+`` Hydra would advise adding the key with ``+``, which would then be
    refused: the refusal names the key and the nearest one either way."""
    r = launch(*squares(tmp_path / "out", "task.n=5"), override)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    key = override.lstrip("+").split("=")[0]
    assert f"{key}: no such key" in out and hint in out
    assert "To append to your config" not in out
    assert not (tmp_path / "out").exists()


def test_one_shard_of_many_without_an_index_or_m_is_refused(launch, tmp_path):
    r = launch(*squares(tmp_path / "out", "task.n=8"), "shard.num=4")
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "shard.num=4 without shard.idx" in out and "Add -m" in out and "shard.idx=I" in out
    assert not launch.job_dir.exists() and not (tmp_path / "out").exists()
    r = launch(*squares(tmp_path / "out", "task.n=8"), "shard.num=4", "shard.idx=1")
    assert r.returncode == 0 and report(launch.job_dir)["processed"] == 2


@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux `script`")
def test_a_bar_under_a_pseudo_terminal_with_log_lines_above_it(tmp_path):
    argv = [
        sys.executable,
        str(REPO / "launch.py"),
        f"hydra.searchpath=[file://{TEST_CONF}]",
        *squares(tmp_path / "out", "task.n=40"),
        f"hydra.run.dir={tmp_path / 'job'}",
    ]
    r = subprocess.run(
        ["script", "-qec", shlex.join(argv), "/dev/null"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout
    segments = re.split(r"[\r\n]", r.stdout)
    assert any("40/40" in s for s in segments), r.stdout  # the bar, drawn to its end
    assert any("starting" in s and "item" in s for s in segments)  # the stage, on the bar
    logs = [s for s in segments if "][launcher" in s]
    assert logs and all(s.startswith("[") and "item/s" not in s for s in logs), logs


def test_a_local_sweep_shows_overall_progress_while_it_runs(launch, tmp_path):
    args = squares(tmp_path / "out", "task.n=240", "task.slow_s=0.01", "shard.num=4")
    args += ["hydra.launcher.array_parallelism=1", "backbone.num_workers=1"]
    r = launch(*args, "run.log_interval_s=0.3", multirun=True)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    lines = [ln for ln in out.splitlines() if "sweep: shards: 4 (" in ln]
    assert len(lines) >= 2, out  # periodic lines while the shards run, not one at the end
    rate = re.compile(r"items: \d+/\d+ .*done, 0 failed; [\d.]+ items/s; ETA")
    assert any(rate.search(ln) for ln in lines)
    # between shards and at the end: no "0.0 items/s; ETA -"
    assert not re.search(r"(?<![\d.])0\.0 items/s", out) and "ETA -" not in out  # not 70.0
    assert "items: 240/240 done, 0 failed" in out


def test_the_ocr_check_compares_outputs_with_the_bundled_truth(tmp_path):
    truth = json.loads((REPO / "launcher/examples/samples/ocr/truth.json").read_text())
    out = tmp_path / "ocr"
    out.mkdir()
    for name, lines in truth.items():
        (out / (name.rsplit(".", 1)[0] + ".txt")).write_text("\n".join(lines) + "\n")
    first = sorted(truth)[0]
    wrong = truth[first][0].replace("quick", "quack")
    (out / (first.rsplit(".", 1)[0] + ".txt")).write_text("\n".join([wrong, *truth[first][1:]]))
    check = [sys.executable, "-m", "launcher.examples.check_ocr", str(out)]
    r = subprocess.run(check, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    n = sum(len(lines) for lines in truth.values())
    assert r.returncode == 0, r.stderr
    assert f"{n - 1}/{n} lines read exactly" in r.stdout
    assert f"{len(truth)}/{len(truth)} pages" in r.stdout
    assert f"{first} line 1: expected {truth[first][0]!r}, read {wrong!r}" in r.stdout

    (out / (first.rsplit(".", 1)[0] + ".txt")).unlink()
    r = subprocess.run(check, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "1 page(s) have no .txt yet" in r.stdout
    r = subprocess.run([*check[:-1], str(tmp_path / "none")], capture_output=True, text=True)
    assert r.returncode == 2 and "run `python -m launcher task=ocr` first" in r.stderr


@pytest.mark.parametrize("entry", ["launch.py", "-m launcher"])
def test_a_missing_value_is_asked_for_in_the_users_own_command(tmp_path, entry):
    """``python launch.py ...`` in the checkout, ``python -m launcher ...`` anywhere (the
    console script and launcher.run: tests/test_install.py and tests/test_api.py)."""
    argv = [
        sys.executable,
        *([str(REPO / "launch.py")] if entry == "launch.py" else ["-m", "launcher"]),
    ]
    argv += [f"hydra.searchpath=[file://{TEST_CONF}]", "task=squares"]
    r = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    python = os.path.basename(sys.executable)
    command = f"{python} {REPO / 'launch.py'}" if entry == "launch.py" else f"{python} -m launcher"
    assert f"e.g. `{command} task.output_dir=...`" in out, out


def cfg(*args: str) -> dict:
    """What ``--cfg`` prints, as the user would run it."""
    import yaml

    argv = [sys.executable, "launch.py", "task=thumbnail", *args]
    r = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)


def test_every_default_the_readme_states_is_the_codes():
    defaults: dict[str, list] = {}
    for node in [
        cfg("backbone=mp", "--cfg", "job")["backbone"],
        *(cfg("backbone=torch", "--cfg", "job")[g] for g in ("backbone", "shard", "run")),
        cfg("hydra/launcher=slurm", "--cfg", "hydra", "--package", "hydra.launcher"),
    ]:
        for key, value in node.items():
            defaults.setdefault(key, []).append(value)
    readme = (REPO / "README.md").read_text()
    literal = r"`(\w+)` \((?:`([^`]+)`|(\d+(?:\.\d+)?|true|false|none))[);:,]"
    stated = [(k, a or b) for k, a, b in re.findall(literal, readme) if k in defaults]
    assert len(stated) >= 20, stated
    wrong = []
    for key, text in stated:
        if not any(same(text, d) for d in defaults[key]):
            wrong.append(f"{key}: README {text!r}, code {defaults[key]}")
    assert not wrong, wrong
    assert "mem" in defaults and defaults["mem"] == [None]  # no --mem unless asked for


def same(text: str, value) -> bool:
    """``30`` is 30.0, ``none`` is null, ``false`` is False, ``off`` is 'off'."""
    if value is None or isinstance(value, bool):
        return text == str(value).lower()
    if isinstance(value, (int, float)):
        return re.fullmatch(r"\d+(\.\d+)?", text) is not None and float(text) == value
    return text == str(value)


def test_the_readme_names_every_task_and_shard_strategy():
    readme = (REPO / "README.md").read_text()
    (row,) = [ln for ln in readme.splitlines() if ln.startswith("| `task` |")]
    for name in ("thumbnail", "ocr", "embed", "kagurazaka"):
        assert f"`{name}`" in row
    assert "your own" in row
    assert {p.stem for p in (REPO / "launcher/conf/task").glob("*.yaml")} == {
        "thumbnail",
        "ocr",
        "embed",
        "kagurazaka",
    }
    r = subprocess.run(
        [sys.executable, "launch.py", "task=thumbnail", "shard.strategy=bogus"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    (listed,) = re.findall(r"expected one of \[([^\]]+)\]", r.stderr)
    (row,) = [ln for ln in readme.splitlines() if ln.startswith("| `shard` |")]
    for value in listed.split(", "):
        assert f"`{value}`" in row, value


def test_a_torch_job_says_it_loads_the_model_before_items_flow(launch, tmp_path):
    pytest.importorskip("torch")
    (tmp_path / "in").mkdir()
    for i in range(6):
        (tmp_path / "in" / f"{i}.txt").write_text(f"{i} 1 2 3")
    r = launch(
        "task=sum_model",
        f"task.input_dir={tmp_path / 'in'}",
        f"task.output_dir={tmp_path / 'out'}",
        "backbone=torch",
        "backbone.num_workers=0",
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    stages = ["listing items and checking which are done", "loading the model on cpu"]
    assert all(s in out for s in stages), out
    assert out.index(stages[0]) < out.index(stages[1]) < out.index("processed 6,")


def test_an_unknown_key_of_a_nested_mode_is_named_by_its_path(launch, tmp_path):
    out = tmp_path / "out"
    r = launch("task=thumbnail", f"task.output_dir={out}", "+task.output.extensio=.png")
    text = r.stdout + r.stderr
    assert r.returncode == 2, text
    assert "task.output.extensio: no such key in task.output.*" in text
    assert "Did you mean extension?" in text and not out.exists()
