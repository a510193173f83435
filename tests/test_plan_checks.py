"""The planner's per-block item checks (dict, own key, own output, inside the output folder)
answer exactly as the per-item checks do: same refusals, same state, for any block."""

from __future__ import annotations

import random

import pytest

from launcher import plan
from launcher.driving import Driven
from launcher.errors import InputError
from launcher.plan import _Checks
from launcher.task import Task

ROOT = "/out"


class Listed(Task):
    def __init__(self) -> None:
        super().__init__(output_dir=ROOT)


class OwnKeys(Listed):
    def item_key(self, item: dict) -> str:
        return f"k:{item.get('key')}"


def random_item(rng: random.Random) -> object:
    folder = rng.choice(["", "a/", "b/", "a/c/", "/", "//"])
    key: object = f"{folder}{rng.randrange(60)}"
    if rng.random() < 0.02:
        key = rng.choice([None, 7, ("t",)])
    item: dict = {"key": key, "x": 1}
    roll = rng.random()
    if roll < 0.8:
        item["output"] = f"{ROOT}/{key}.txt"
    elif roll < 0.83:
        item["output"] = rng.choice(["/elsewhere/x", f"{ROOT}/../x", f"{ROOT}/a/../b", 3])
    elif roll < 0.85:
        return rng.choice([["not", "a", "dict"], None])
    return item


def state(checks: _Checks) -> tuple:
    return tuple(
        (seen.size, seen.head, {h: dict(g) for h, g in seen.groups.items()})
        for seen in (checks.keys, checks.outputs)
    )


def outcome(checks: _Checks, block: list, per_item: bool) -> str | None:
    try:
        if per_item:
            if not all(isinstance(it, dict) for it in block):
                checks.block(block)  # the dict refusal, shared by both paths
            for it in block:
                checks.item(it)
        else:
            checks.block(block)
    except InputError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("task", [Listed, OwnKeys])
@pytest.mark.parametrize("max_seen", [40, 1 << 20])
def test_block_checks_equal_per_item_checks(seed, task, max_seen, monkeypatch):
    monkeypatch.setattr(plan, "MAX_SEEN", max_seen)
    rng = random.Random(seed)
    fast, slow = _Checks(Driven.of(task())), _Checks(Driven.of(task()))
    dup_rate = rng.choice([0.0, 0.001, 0.05])
    for _ in range(30):
        size = rng.choice([1, 3, 16, 200])
        if dup_rate == 0.0:  # distinct keys in runs of folders: the block-at-once path's
            base = rng.randrange(1 << 30)
            folders = sorted(rng.sample(["", "a/", "b/", "a/b/", "/", "//"], rng.randint(1, 3)))
            block: list = [
                {"key": f"{f}{base}-{i}", "output": f"{ROOT}/{f}{base}-{i}.txt"}
                for f in folders
                for i in range(size)
            ]
        else:
            block = [random_item(rng) for _ in range(size)]
            if rng.random() < 0.5:
                block = [it for it in block if isinstance(it, dict)]
        got = outcome(fast, block, per_item=False)
        assert got == outcome(slow, block, per_item=True)
        assert state(fast) == state(slow)
        if got is not None:
            break


def test_the_block_path_takes_clean_blocks_and_leaves_the_rest(monkeypatch):
    checks = _Checks(Driven.of(Listed()))

    def at_once(block: list) -> bool:
        fields = [[it.get(name) for it in block] for name in ("key", "output")]
        return checks.at_once(block, *fields)

    clean = [{"key": f"a/{i}", "output": f"{ROOT}/a/{i}.txt"} for i in range(100)]
    assert at_once(clean)
    assert not at_once(clean[:1])  # met before: the per-item check names it
    assert not at_once([{"key": "b/1", "output": "/elsewhere/b/1.txt"}])
    assert not at_once([{"key": "c/1"}, {"key": "c/1"}])
    assert not at_once([{"key": "d/1"}, {"key": "e/1"}, {"key": "d/2"}])  # d comes back
    assert at_once([{"key": "d/1"}, {"key": "e/1"}, {"key": "e/f/2"}])
    assert at_once([{"x": i} for i in range(10)])  # nothing to check
