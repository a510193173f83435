"""Unit tests of the pure parts: sharding, modes, atomic writes, the hash resolver, the API."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

import launcher
from launcher.driving import Driven
from launcher.errors import ConfigError
from launcher.io import atomic_write
from launcher.modes import (
    AppendExtension,
    ByExtensions,
    ByGlob,
    BySubdir,
    DirListings,
    FromJsonl,
    PerInputFolder,
    join,
    walk_sorted,
)
from launcher.plan import Plan
from launcher.resolvers import config_hash, register_resolvers
from launcher.shard import Shard, Strategy, stable_hash
from launcher.stats import Stats
from launcher.task import Task


def shard(num=1, idx=0, strategy="modulo", sub_num=1, sub_idx=0) -> Shard:
    return Shard.from_config(
        SimpleNamespace(num=num, idx=idx, strategy=strategy, sub_num=sub_num, sub_idx=sub_idx)
    )


def owned(s: Shard, keys: list[str]) -> list[str]:
    items = [{"key": k} for k in keys]
    select = s.selector(lambda it: it["key"], count=len(items))
    return [it["key"] for pos, it in enumerate(items) if select is None or select(pos, it)]


KEYS = [f"k{i:04d}" for i in range(1000)]


@pytest.mark.parametrize("strategy", ["modulo", "contiguous", "hash"])
def test_shards_partition_the_items(strategy):
    parts = [owned(shard(7, i, strategy), KEYS) for i in range(7)]
    assert sorted(sum(parts, [])) == KEYS
    assert all(len(p) > 100 for p in parts)


def test_modulo_is_position_based_like_kagurazaka():
    assert owned(shard(3, 1), KEYS[:10]) == ["k0001", "k0004", "k0007"]


def test_contiguous_gives_ranges():
    assert owned(shard(4, 1, "contiguous"), KEYS[:10]) == ["k0002", "k0003", "k0004"]


def test_hash_sharding_keeps_items_in_place_when_inputs_grow():
    before = {k: i for i in range(4) for k in owned(shard(4, i, "hash"), KEYS[:500])}
    after = {k: i for i in range(4) for k in owned(shard(4, i, "hash"), KEYS)}
    assert all(after[k] == before[k] for k in before)
    assert stable_hash("abc") == 0xD8BB14D833D59559  # pinned: must never change across releases


def test_index_list_and_sub_shards_partition():
    assert owned(shard(4, [0, 2]), KEYS) == sorted(
        owned(shard(4, 0), KEYS) + owned(shard(4, 2), KEYS)
    )
    subs = [owned(shard(4, 1, sub_num=3, sub_idx=j), KEYS) for j in range(3)]
    assert sorted(sum(subs, [])) == owned(shard(4, 1), KEYS)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num": 4, "idx": 4}, "shard.idx=4 is out of range for shard.num=4"),
        ({"num": 4, "idx": -1}, "shard.idx=-1 is out of range"),
        ({"num": 0}, "shard.num=0"),
        ({"num": 2, "idx": "a"}, "shard.idx='a'"),
        ({"num": 2, "sub_num": 2, "sub_idx": 5}, "shard.sub_idx=5 is out of range"),
        ({"num": 2, "idx": [0, 1], "strategy": "hard"}, "shard=hard takes one shard.idx"),
    ],
)
def test_bad_shards_are_refused_by_name(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        shard(**kwargs)


def test_shard_tag_and_description():
    s = shard(8, 3, "hash")
    assert s.tag() == "shard-3-of-8"
    assert s.describe() == {"idx": 3, "num": 8, "strategy": "hash"}
    assert shard(8, 3, "hard").strategy is Strategy.hard


@pytest.fixture
def tree(tmp_path):
    for rel in [
        "b/2.jpg",
        "b/1.PNG",
        "a/z/9.jpg",
        "a/3.txt",
        "c.webp",
        ".hidden.jpg",
        "a/y/x/deep.jpg",
    ]:
        p = tmp_path / "in" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(rel)
    return tmp_path / "in"


def test_walk_is_sorted_at_every_level(tree):
    assert list(walk_sorted(str(tree))) == [
        ".hidden.jpg",
        "a/3.txt",
        "a/y/x/deep.jpg",
        "a/z/9.jpg",
        "b/1.PNG",
        "b/2.jpg",
        "c.webp",
    ]


def test_input_modes(tree, tmp_path):
    root = str(tree)
    assert [k for k, _ in ByExtensions(["jpg", ".png"]).entries(root)] == [
        "a/y/x/deep.jpg",
        "a/z/9.jpg",
        "b/1.PNG",
        "b/2.jpg",
    ]
    assert [k for k, _ in ByGlob("b/*").entries(root)] == ["b/1.PNG", "b/2.jpg"]
    assert [k for k, _ in BySubdir(1).entries(root)] == ["a", "b"]
    assert [k for k, _ in BySubdir(2).entries(root)] == ["a/y", "a/z"]
    lst = tmp_path / "list.jsonl"
    lst.write_text('"in/c.webp"\n\n{"key": "k1", "input": "in/b/2.jpg", "lang": "en"}\n')
    entries = list(FromJsonl().entries(str(lst)))
    assert entries == [
        ("in/c.webp", str(tmp_path / "in/c.webp")),
        ("k1", str(tmp_path / "in/b/2.jpg")),
    ]


def test_output_modes_and_bulk_existence(tmp_path):
    out = str(tmp_path / "out")
    assert AppendExtension(".txt").path(out, "a/b.jpg") == f"{out}/a/b.jpg.txt"
    assert AppendExtension(".txt", replace_suffix=True).path(out, "a/b.jpg") == f"{out}/a/b.txt"
    os.makedirs(f"{out}/a")
    open(f"{out}/a/b.jpg.txt", "w").close()
    listings = DirListings()
    assert AppendExtension(".txt").is_done(f"{out}/a/b.jpg.txt", listings)
    assert not AppendExtension(".txt").is_done(f"{out}/a/c.jpg.txt", listings)
    assert not AppendExtension(".txt").is_done(f"{out}/missing/c.jpg.txt", listings)
    folder = PerInputFolder(["text.txt", "boxes.json"])
    os.makedirs(f"{out}/s1")
    open(f"{out}/s1/text.txt", "w").close()
    assert not folder.is_done(folder.path(out, "s1"), DirListings())
    open(f"{out}/s1/boxes.json", "w").close()
    assert folder.is_done(folder.path(out, "s1"), DirListings())


@pytest.mark.parametrize(
    "root,rel", [("/o", "a/b"), ("/o/", "a"), ("o", "a"), ("", "a/b"), ("/o", "/abs/x"), ("/", "a")]
)
def test_join_is_os_path_join(root, rel):
    assert join(root, rel) == os.path.join(root, rel)


def test_listing_check_splits_paths_like_os_path(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").touch()
    listings = DirListings()
    assert listings.exists(f"{tmp_path}/d/f") and listings.exists(f"{tmp_path}//d/f")
    assert not listings.exists(f"{tmp_path}/d/g") and not listings.exists("f")
    assert listings.exists(str(tmp_path)) == os.path.exists(str(tmp_path))


class Numbers(Task):
    """``{"x": i}`` for i < n, done when ``i % 3 == 0``; listing or checking may fail at one."""

    def __init__(self, n: int, list_fails_at: int = -1, check_fails_at: int = -1) -> None:
        super().__init__()
        self.n, self.list_fails_at, self.check_fails_at = n, list_fails_at, check_fails_at

    def generate_tasks(self):
        for i in range(self.n):
            if i == self.list_fails_at:
                raise OSError(f"listing broke at {i}")
            yield {"x": i}

    def is_executed(self, x: int) -> bool:
        if x == self.check_fails_at:
            raise OSError(f"check broke at {x}")
        return x % 3 == 0


def drain(plan: Plan, sizes: list[int]) -> list[int]:
    out: list[int] = []
    plan.has_pending()
    while batch := plan.take(sizes[len(out) % len(sizes)]):
        out += [it["x"] for it in batch]
    return out


@pytest.mark.parametrize("sizes", [[1], [7, 1, 4096], [5000]])
def test_plan_yields_each_pending_item_once_in_order(sizes):
    stats = Stats()
    plan = Plan(Driven.of(Numbers(5000)), shard(), stats)
    assert drain(plan, sizes) == [x for x in range(5000) if x % 3]
    assert (stats.total, stats.skipped, stats.planned, plan.generated) == (5000, 1667, True, 5000)


@pytest.mark.parametrize("size", [1, 7, 4096, 5000])
@pytest.mark.parametrize("where", [None, "list_fails_at", "check_fails_at"])
def test_plan_is_exhausted_only_once_every_pending_item_was_taken(size, where):
    """What the mp scheduler stops asking (and shrinks its last chunks) on."""
    errors: list[Exception] = []
    plan = Plan(
        Driven.of(Numbers(5000, **({where: 100} if where else {}))),
        shard(),
        Stats(),
        on_error=errors.append,
    )
    taken: list[int] = []
    while not plan.exhausted():
        taken += [it["x"] for it in plan.take(size)]
    assert taken == [x for x in range(5000 if where is None else 100) if x % 3]
    assert plan.take(size) == [] and plan.exhausted()


def test_plan_with_a_shard_and_a_limit_counts_only_what_it_planned():
    stats = Stats()
    plan = Plan(Driven.of(Numbers(5000)), shard(num=2, idx=1), stats, limit=10)
    assert drain(plan, [4]) == [1, 5, 7, 11, 13, 17, 19, 23, 25, 29]
    assert (stats.total, stats.skipped) == (15, 5)  # owned items up to 29: 1, 3, 5, ..., 29


@pytest.mark.parametrize("where", ["list_fails_at", "check_fails_at"])
def test_plan_keeps_the_items_before_a_listing_or_check_error(where):
    stats = Stats()
    errors: list[Exception] = []
    plan = Plan(Driven.of(Numbers(5000, **{where: 100})), shard(), stats, on_error=errors.append)
    assert drain(plan, [64]) == [x for x in range(100) if x % 3]
    (error,) = errors
    assert isinstance(error, OSError) and "broke at 100" in str(error)
    assert (stats.total, stats.skipped) == (100, 34)


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "x.bin"
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write(b"half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with atomic_write(target, "w") as f:
        f.write("whole")
    assert target.read_text() == "whole"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]


def test_hash_resolver_names_outputs_by_parameters():
    register_resolvers()
    cfg = OmegaConf.create(
        {"task": {"size": 128, "fmt": "jpeg", "out": "o/${hash:${.size},${.fmt}}", "p": {"a": 1}}}
    )
    first = cfg.task.out
    assert first == f"o/{config_hash(128, 'jpeg')}" and len(first) == 12
    cfg.task.size = 64
    assert cfg.task.out != first
    assert config_hash(OmegaConf.create({"a": 1})) == config_hash({"a": 1})


def test_public_api_is_pinned():
    assert launcher.__all__ == [
        "AppendExtension",
        "ByExtensions",
        "ByGlob",
        "BySubdir",
        "ConfigError",
        "FromJsonl",
        "InputError",
        "InputMode",
        "Item",
        "OutputMode",
        "PerInputFolder",
        "Task",
        "TorchTask",
        "UserError",
        "atomic_write",
        "run",
        "write_json_atomic",
    ]
    assert all(hasattr(launcher, name) for name in launcher.__all__)


def test_walk_leaves_out_excluded_folders_and_enters_each_real_folder_once(tree):
    (tree / "a" / "loop").symlink_to(tree)
    (tree / "zz").symlink_to(tree / "b")
    assert list(walk_sorted(str(tree), exclude=[str(tree / "a")])) == [
        ".hidden.jpg",
        "b/1.PNG",
        "b/2.jpg",
        "c.webp",
    ]
    errors = []
    assert "b/2.jpg" in list(walk_sorted(str(tree), on_error=lambda rel, e: errors.append(rel)))
    assert errors == []


def test_jsonl_keys_of_paths_stay_relative(tmp_path):
    lst = tmp_path / "list.jsonl"
    lst.write_text('"sub/a.png"\n"/data/b.png"\n"../c.png"\n{"input": "d.png", "key": "k"}\n')
    keys = [k for k, _ in FromJsonl().entries(str(lst))]
    assert keys == ["sub/a.png", "data/b.png", str(tmp_path.parent / "c.png").lstrip("/"), "k"]


def test_only_output_modes_that_can_collide_are_checked():
    assert AppendExtension(".txt").injective and PerInputFolder(["a"]).injective
    assert not AppendExtension(".txt", replace_suffix=True).injective


@pytest.mark.parametrize(
    "value, ok", [(1, True), (0, False), (-1, False), (None, True), (float("nan"), False)]
)
def test_check_bounds_names_the_key_and_range(value, ok):
    from launcher.composed import check_bounds

    values = SimpleNamespace(n=value)
    if ok:
        check_bounds("run", values, {"n": ">= 1"})
    else:
        with pytest.raises(ConfigError, match=r"run\.n=.* is out of range: must be >= 1"):
            check_bounds("run", values, {"n": ">= 1"})


def test_stable_hash_takes_undecodable_file_names():
    name = os.fsdecode(b"\xff\xfe.png")
    assert stable_hash(name) == stable_hash(os.fsdecode(b"\xff\xfe.png")) != stable_hash("x")
