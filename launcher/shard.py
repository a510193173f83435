"""Which slice of the items a job owns.

Soft sharding filters the task's item stream: ``modulo`` by position in the
(sorted) stream, as kagurazaka does; ``contiguous`` by position in equal
ranges (counts the items first); ``hash`` by a stable hash of the item key, so
adding inputs never moves existing items between shards. An optional
sub-shard splits a shard again (e.g. one SLURM element over several GPUs).
Hard sharding (``strategy=hard``) gives each shard its own input folder.
"""

from __future__ import annotations

import enum
import hashlib
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from launcher.errors import ConfigError

Strategy = enum.Enum("Strategy", ["modulo", "contiguous", "hash", "hard"])
G = TypeVar("G")  # what :meth:`Shard.owners` answers for an item's owner


@dataclass
class ShardConfig:
    """``shard.*``: ``idx`` is an int or a list of ints in ``[0, num)``."""

    num: int = 1
    idx: Any = 0
    strategy: Strategy = Strategy.modulo
    sub_num: int = 1
    sub_idx: Any = 0


def stable_hash(key: str) -> int:
    """64-bit hash that is the same in every process and Python version (a file name's
    undecodable bytes, kept by Python as surrogates, hash as those bytes)."""
    data = key.encode("utf-8", "surrogateescape")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _indices(value: Any, num: int, idx_key: str, num_key: str) -> frozenset[int]:
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ConfigError(f"{num_key}={num!r}: the number of shards must be an integer >= 1.")
    values = (
        list(value) if isinstance(value, (list, tuple)) or hasattr(value, "__iter__") else [value]
    )
    if isinstance(value, str) or not values:
        raise ConfigError(f"{idx_key}={value!r}: expected an integer or a list of integers.")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{idx_key}={value!r}: expected an integer or a list of integers.")
        if not 0 <= v < num:
            raise ConfigError(
                f"{idx_key}={v} is out of range for {num_key}={num} (valid: 0..{num - 1})."
            )
    return frozenset(values)


@dataclass(frozen=True)
class Shard:
    """A validated shard selection."""

    num: int
    idx: frozenset[int]
    strategy: Strategy
    sub_num: int = 1
    sub_idx: frozenset[int] = frozenset({0})

    @classmethod
    def from_config(cls, cfg: Any) -> Shard:
        strategy = cfg.strategy
        if not isinstance(strategy, Strategy):
            strategy = Strategy[str(strategy)]
        shard = cls(
            num=cfg.num,
            idx=_indices(cfg.idx, cfg.num, "shard.idx", "shard.num"),
            strategy=strategy,
            sub_num=cfg.sub_num,
            sub_idx=_indices(cfg.sub_idx, cfg.sub_num, "shard.sub_idx", "shard.sub_num"),
        )
        if strategy is Strategy.hard and len(shard.idx) != 1:
            raise ConfigError(f"shard=hard takes one shard.idx per job, got {sorted(shard.idx)}.")
        return shard

    @property
    def needs_count(self) -> bool:
        return self.strategy is Strategy.contiguous and self.num > 1

    def owners(
        self, key_of: Callable[[dict], str], count: int | None, groups: Mapping[int, G]
    ) -> Callable[[int, dict], G | None]:
        """The one rule of who owns an item: ``(position, item) ->`` the value ``groups``
        maps the owning shard's index to, or None (a shard not in ``groups``, or an item
        a sub-shard outside ``sub_idx`` takes). Shards mapped to one value are
        sub-sharded together, as one job holding several indices is.

        Under ``hard`` (and for one shard) every listed item is the one group's: the
        job lists only its own folder.
        """
        num = self.num
        table = [groups.get(i) for i in range(num)]  # a shard index -> its group
        if num == 1 or self.strategy is Strategy.hard:
            (only,) = set(groups.values())
            top = lambda pos, item: only  # noqa: E731
        elif self.strategy is Strategy.modulo:
            top = lambda pos, item: table[pos % num]  # noqa: E731
        elif self.strategy is Strategy.hash:
            top = lambda pos, item: table[stable_hash(key_of(item)) % num]  # noqa: E731
        else:
            assert count is not None, "contiguous sharding needs the item count"
            starts = [i * count // num for i in range(num)]
            end = count  # an item listed after the count is no shard's

            def top(pos: int, item: dict) -> G | None:
                return table[bisect_right(starts, pos) - 1] if pos < end else None

        if self.sub_num == 1:
            return top
        sub_num, sub_idx = self.sub_num, self.sub_idx
        seen: Counter = Counter()  # items per group so far

        def which(pos: int, item: dict) -> G | None:
            group = top(pos, item)
            if group is None:
                return None
            j = seen[group]
            seen[group] = j + 1
            return group if j % sub_num in sub_idx else None

        return which

    def selector(
        self, key_of: Callable[[dict], str], count: int | None = None
    ) -> Callable[[int, dict], bool | None] | None:
        """A ``(position, item) -> owned?`` test (:meth:`owners` for this job's indices),
        or None when this job owns every item it lists."""
        if self.sub_num == 1 and (self.num == 1 or self.strategy is Strategy.hard):
            return None
        return self.owners(key_of, count, dict.fromkeys(self.idx, True))

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "idx": min(self.idx) if len(self.idx) == 1 else sorted(self.idx),
            "num": self.num,
            "strategy": self.strategy.name,
        }
        if self.sub_num > 1:
            out["sub_idx"] = sorted(self.sub_idx)
            out["sub_num"] = self.sub_num
        return out

    def tag(self) -> str:
        """A file-name-safe name for this selection, e.g. ``shard-3-of-8``."""
        idx = "_".join(str(i) for i in sorted(self.idx))
        sub = f".sub-{'_'.join(map(str, sorted(self.sub_idx)))}-of-{self.sub_num}"
        return f"shard-{idx}-of-{self.num}" + (sub if self.sub_num > 1 else "")
