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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from launcher.errors import ConfigError

Strategy = enum.Enum("Strategy", ["modulo", "contiguous", "hash", "hard"])


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

    def selector(
        self, key_of: Callable[[dict], str], count: int | None = None
    ) -> Callable[[int, dict], bool] | None:
        """A ``(position, item) -> owned?`` test, or None when this job owns every item."""
        top = self._top(key_of, count)
        if self.sub_num == 1:
            return top
        sub_num, sub_idx = self.sub_num, self.sub_idx
        seen = [0]

        def select(pos: int, item: dict) -> bool:
            if top is not None and not top(pos, item):
                return False
            j = seen[0]
            seen[0] = j + 1
            return j % sub_num in sub_idx

        return select

    def _top(self, key_of: Callable[[dict], str], count: int | None) -> Callable | None:
        num, idx = self.num, self.idx
        if num == 1 or self.strategy is Strategy.hard:
            return None
        if self.strategy is Strategy.modulo:
            if len(idx) == 1:
                (only,) = idx
                return lambda pos, item: pos % num == only
            return lambda pos, item: pos % num in idx
        if self.strategy is Strategy.hash:
            return lambda pos, item: stable_hash(key_of(item)) % num in idx
        assert count is not None, "contiguous sharding needs the item count"
        ranges = [(i * count // num, (i + 1) * count // num) for i in sorted(idx)]
        return lambda pos, item: any(lo <= pos < hi for lo, hi in ranges)

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
