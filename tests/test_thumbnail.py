"""The thumbnail example end to end: real images, real Pillow, sweeps and hard shards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import files, report


def make_images(root: Path, n: int) -> None:
    for i in range(n):
        folder = root / f"d{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        ext, fmt = [("png", "PNG"), ("jpg", "JPEG"), ("webp", "WEBP")][i % 3]
        Image.new("RGB", (40 + i % 17, 30 + i % 11), (i % 256, 80, 160)).save(
            folder / f"{i:04d}.{ext}", fmt
        )


def test_bundled_samples_run_with_no_arguments(launch, tmp_path):
    """Run from an empty folder, so the relative output_dir lands in it, not in the repo."""
    r = launch(cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rep = report(launch.job_dir)
    assert (rep["total"], rep["processed"], rep["skipped"], rep["failed"]) == (36, 36, 0, 0)
    assert rep["task"] == "launcher.examples.thumbnail.ThumbnailTask"
    (out,) = (tmp_path / "outputs" / "thumbnail").iterdir()
    made = files(out)
    params = json.loads(made.pop("params.json"))  # the parameters that named the folder
    assert params["hash"] == out.name and len(made) == 36
    assert all(name.endswith(".jpeg") for name in made)
    r = launch(cwd=tmp_path)  # the rerun finds them all done
    assert r.returncode == 0, r.stderr
    assert (report(launch.job_dir)["processed"], report(launch.job_dir)["skipped"]) == (0, 36)


@pytest.mark.slow
def test_a_thousand_images_then_a_rerun_that_skips_them_all(launch, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    make_images(src, 1000)
    args = ["task=thumbnail", f"task.input_dir={src}", f"task.output_dir={out}", "task.size=16"]
    r = launch(*args)
    assert r.returncode == 0, r.stderr
    rep = report(launch.job_dir)
    assert (rep["total"], rep["processed"], rep["failed"]) == (1000, 1000, 0)
    thumbs = files(out)
    assert len(thumbs) == 1000 and "d3/0003.png.jpeg" in thumbs
    with Image.open(out / "d3/0003.png.jpeg") as im:
        assert im.format == "JPEG" and max(im.size) == 16

    r = launch(*args)
    rep = report(launch.job_dir)
    assert (r.returncode, rep["skipped"], rep["processed"]) == (0, 1000, 0)
    assert rep["backbone"]["workers_started"] == 0


def test_exif_orientation_is_applied(launch, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    Image.new("RGB", (200, 100), "red").save(src / "photo.jpg", "JPEG", exif=exif)
    r = launch(
        "task=thumbnail", f"task.input_dir={src}", f"task.output_dir={out}", "task.format=png"
    )
    assert r.returncode == 0, r.stderr
    with Image.open(out / "photo.jpg.png") as im:
        assert im.size == (64, 128)


def test_changing_a_parameter_writes_a_new_output_folder(launch):
    import subprocess
    import sys

    from tests.conftest import REPO

    def out_dir(*args: str) -> str:
        cmd = [sys.executable, str(REPO / "launch.py"), *args, "--cfg", "job", "--resolve"]
        text = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True).stdout
        return next(line.split(": ", 1)[1] for line in text.splitlines() if "output_dir:" in line)

    assert out_dir() == out_dir("task.quality=85")
    assert out_dir() != out_dir("task.size=64")


def test_shard_sweep_outputs_equal_a_single_run(launch, tmp_path):
    src = tmp_path / "in"
    make_images(src, 120)
    base = ["task=thumbnail", f"task.input_dir={src}", "task.size=16"]
    r = launch(*base, f"task.output_dir={tmp_path / 'sharded'}", "shard.num=4", multirun=True)
    assert r.returncode == 0, r.stderr
    assert sum(report(launch.job_dir / str(i))["processed"] for i in range(4)) == 120
    r = launch(*base, f"task.output_dir={tmp_path / 'single'}")
    assert r.returncode == 0
    assert files(tmp_path / "sharded") == files(tmp_path / "single")


def test_one_shard_by_hand(launch, tmp_path):
    src = tmp_path / "in"
    make_images(src, 40)
    r = launch(
        "task=thumbnail",
        f"task.input_dir={src}",
        f"task.output_dir={tmp_path / 'o'}",
        "shard.num=4",
        "shard.idx=2",
        "shard.strategy=hash",
    )
    assert r.returncode == 0
    rep = report(launch.job_dir)
    assert rep["shard"] == {"idx": 2, "num": 4, "strategy": "hash"}
    assert 0 < rep["processed"] == len(files(tmp_path / "o")) < 40


def test_hard_shards_read_and_write_their_own_folders(launch, tmp_path):
    for i in range(2):
        make_images(tmp_path / f"part_{i}", 6 + i)
    r = launch(
        "task=thumbnail",
        "shard=hard",
        "shard.num=2",
        f"task.input_dir='{tmp_path}/part_{{shard_idx}}'",  # quoted: braces in an override
        f"task.output_dir='{tmp_path}/out_{{shard_idx}}'",
        multirun=True,
    )
    assert r.returncode == 0, r.stderr
    assert len(files(tmp_path / "out_0")) == 6 and len(files(tmp_path / "out_1")) == 7
    assert report(launch.job_dir / "1")["shard"]["strategy"] == "hard"
