"""Locations: the bundled modes, done checks, atomic writes and records at an fsspec URL
(``memory://``, in this process) give what the same tree gives on a disk."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import fsspec
import pytest

from launcher import (
    AppendExtension,
    ByExtensions,
    ByGlob,
    BySubdir,
    FromJsonl,
    InputError,
    PerInputFolder,
    Task,
    atomic_write,
    location,
)
from launcher.driving import Driven
from launcher.io import open as open_location
from launcher.layout import StateDir
from launcher.records import (
    LockedError,
    ShardLock,
    done_shards,
    failed_keys,
    mark_shard_done,
)

# names whose order differs between a sort of whole paths and a sort per folder
TREE = [
    "a/x.txt",
    "a/deeper/y.TXT",
    "a-1/x.txt",
    "a.b/x.txt",
    "a.b/z.png",
    "b.txt",
    "Z.txt",
    "c/d/e/f.txt",
    "c/d/g.jpg",
    "c/h/i.txt",
]


@pytest.fixture
def trees(tmp_path: Path) -> tuple[str, str]:
    """The same tree on a disk and at a fresh ``memory://`` prefix."""
    disk = tmp_path / "in"
    url = f"memory://t-{uuid.uuid4().hex[:8]}/in"
    fs = fsspec.filesystem("memory")
    for rel in TREE:
        (disk / rel).parent.mkdir(parents=True, exist_ok=True)
        (disk / rel).write_bytes(rel.encode())
        fs.pipe_file(f"{url}/{rel}", rel.encode())
    return str(disk), url


@pytest.mark.parametrize(
    "mode",
    [ByExtensions([".txt"]), ByGlob("c/*"), ByGlob("*.png"), BySubdir(1), BySubdir(2)],
    ids=["ext", "glob-folder", "glob-png", "subdir1", "subdir2"],
)
def test_modes_list_a_url_as_the_same_tree_on_disk(trees: tuple[str, str], mode) -> None:
    disk, url = trees
    on_disk = list(mode.entries(disk))
    at_url = list(mode.entries(url))
    assert on_disk, "the mode lists something"
    assert [k for k, _ in at_url] == [k for k, _ in on_disk]
    assert [p for _, p in at_url] == [f"{url}/{k}" for k, _ in on_disk]


def test_output_prefix_inside_the_inputs_is_not_listed(trees: tuple[str, str]) -> None:
    _, url = trees
    fsspec.filesystem("memory").pipe_file(f"{url}/out/b.txt.up", b"done")
    task = Task(url, f"{url}/out", ByExtensions([".txt", ".up"]), AppendExtension(".up"))
    keys = [it["key"] for it in task.generate_tasks()]
    assert "out/b.txt.up" not in keys
    assert "b.txt" in keys


def test_done_check_at_a_url_reads_one_listing_per_prefix(trees: tuple[str, str]) -> None:
    _, url = trees
    out = url.replace("/in", "/out")
    fs = fsspec.filesystem("memory")
    fs.pipe_file(f"{out}/a/x.txt.up", b"done")
    fs.pipe_file(f"{out}/b.txt.up", b"done")
    task = Task(url, out, ByExtensions([".txt"]), AppendExtension(".up"))
    items = list(task.generate_tasks())
    pending = Driven.of(task).unfinished_filter()(items)
    assert {it["key"] for it in items} - {it["key"] for it in pending} == {"a/x.txt", "b.txt"}


def test_per_input_folder_is_done_when_all_its_files_are_there(trees: tuple[str, str]) -> None:
    _, url = trees
    out = url.replace("/in", "/out")
    fs = fsspec.filesystem("memory")
    fs.pipe_file(f"{out}/a/meta.json", b"{}")
    fs.pipe_file(f"{out}/a/result.txt", b"r")
    fs.pipe_file(f"{out}/c/meta.json", b"{}")  # half done
    task = Task(url, out, BySubdir(1), PerInputFolder(["meta.json", "result.txt"]))
    pending = Driven.of(task).unfinished_filter()(list(task.generate_tasks()))
    assert [it["key"] for it in pending] == ["a-1", "a.b", "c"]


def test_from_jsonl_at_a_url_resolves_lines_against_the_list_prefix() -> None:
    base = f"memory://l-{uuid.uuid4().hex[:8]}/lists"
    fs = fsspec.filesystem("memory")
    lines = ['"x/one.txt"', '{"input": "../two.txt"}', '{"key": "k3", "input": "s3://b/3"}']
    fs.pipe_file(f"{base}/list.jsonl", "\n".join(lines).encode())
    mode = FromJsonl()
    mode.check(f"{base}/list.jsonl", "task.input_dir")
    got = list(mode.entries(f"{base}/list.jsonl"))
    root = base.rsplit("/", 1)[0]
    assert got == [
        ("x/one.txt", f"{base}/x/one.txt"),
        (f"{root.partition('://')[2]}/two.txt", f"{root}/two.txt"),
        ("k3", "s3://b/3"),
    ]


def test_check_inputs_names_the_key_of_a_missing_prefix_or_an_object() -> None:
    url = f"memory://c-{uuid.uuid4().hex[:8]}"
    fsspec.filesystem("memory").pipe_file(f"{url}/file.txt", b"x")
    with pytest.raises(InputError, match=r"task.input_dir=.*does not exist"):
        Driven.of(Task(f"{url}/nothing", None, ByExtensions([".txt"]))).check_inputs()
    with pytest.raises(InputError, match=r"task.input_dir=.*is an object, not a prefix"):
        Driven.of(Task(f"{url}/file.txt", None, ByExtensions([".txt"]))).check_inputs()


def test_atomic_write_at_a_url_uploads_only_on_success() -> None:
    url = f"memory://w-{uuid.uuid4().hex[:8]}"
    with atomic_write(f"{url}/ok.bin") as f:
        f.write(b"whole")
    with pytest.raises(RuntimeError), atomic_write(f"{url}/bad.bin") as f:
        f.write(b"half")
        raise RuntimeError("the item failed")
    fs = fsspec.filesystem("memory")
    assert fs.cat_file(f"{url}/ok.bin") == b"whole"
    assert not fs.exists(f"{url}/bad.bin")
    with open_location(f"{url}/ok.bin") as f:
        assert f.read() == b"whole"


def test_records_at_a_url(tmp_path: Path) -> None:
    state = f"memory://s-{uuid.uuid4().hex[:8]}/.launcher"
    lock = ShardLock(state, "shard-0-of-2", stale_s=120)
    lock.acquire()
    holder = {**lock.me, "pid": os.getppid()}  # a live job of this host, not this process
    fsspec.filesystem("memory").pipe_file(lock.path, json.dumps(holder).encode())
    lock.me = holder
    with pytest.raises(LockedError, match="already running this shard"):
        ShardLock(state, "shard-0-of-2", stale_s=120).acquire()
    lock.refresh()
    lock.release()
    ShardLock(state, "shard-0-of-2", stale_s=120).acquire()  # free again

    fs = fsspec.filesystem("memory")
    for task, shard, item in (("t", "0-of-2", "a"), ("t", "1-of-2", "b"), ("u", "0-of-2", "c")):
        fs.pipe_file(
            StateDir(state).shard_failures(task, "s", shard), json.dumps({"item": item}).encode()
        )
    assert failed_keys(state, "t") == {"a", "b"}

    assert done_shards(state, "k") == set()
    mark_shard_done(state, "k", "shard-1-of-2", {"total": 3})
    assert done_shards(state, "k") == {"shard-1-of-2"}


def test_is_url_tells_urls_from_paths() -> None:
    assert location.is_url("s3://bucket/key")
    assert location.is_url("memory://x")
    assert not location.is_url("/data/s3:/x")
    assert not location.is_url("relative/path")
    assert not location.is_url("C:/x")


def test_a_process_opens_one_filesystem_per_scheme() -> None:
    """Workers reuse one filesystem (and its connections) for every item's URL."""
    first, path = location.filesystem("memory://a/x.txt")
    second, _ = location.filesystem("memory://b/y.txt")
    assert first is second and path == "/a/x.txt"


def test_a_hash_named_output_prefix_keeps_its_params_at_the_url() -> None:
    from launcher.resolvers import config_hash, write_hash_params

    digest = config_hash(128, "jpeg")
    root = f"memory://h-{uuid.uuid4().hex[:8]}"
    path = write_hash_params(f"{root}/{digest}/part", "${hash:${.size},${.format}}", [128, "jpeg"])
    assert path == f"{root}/{digest}/params.json"
    with open_location(path, "r") as f:
        record = json.load(f)
    assert record["params"] == {"size": 128, "format": "jpeg"}


def test_file_urls_work_like_paths(tmp_path: Path) -> None:
    url = f"file://{tmp_path}"
    with atomic_write(f"{url}/in/a/x.txt") as f:
        f.write(b"x")
    (tmp_path / "in" / "b.txt").write_bytes(b"b")
    assert [k for k, _ in ByExtensions([".txt"]).entries(f"{url}/in")] == ["a/x.txt", "b.txt"]
    assert (tmp_path / "in" / "a" / "x.txt").read_bytes() == b"x"
