"""A composed config, checked and built into what a job runs, before any work.

The root and ``run.*`` schemas, every check a composed config gets (``???`` values,
keys no schema has, numbers out of range, secrets typed as values), the task
instantiated from it and the backbone's own config: a job does all of it once when
it starts, and the sweep planner does it for each array's config, so that a bad
sweep is refused before a thousand jobs are submitted that would each fail the
same way.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from launcher import location, storage_options
from launcher.driving import Driven
from launcher.errors import ConfigError, unknown_key
from launcher.identity import Identity
from launcher.shard import Shard, Strategy

if TYPE_CHECKING:
    from omegaconf import DictConfig

OnError = enum.Enum("OnError", ["continue", "raise"])
ProgressMode = enum.Enum("ProgressMode", ["auto", "bar", "log", "off"])


@dataclass
class RunConfig:
    """``run.*``: how one job treats failures, time limits, retries and progress."""

    on_error: OnError = OnError["continue"]  # continue: record and go on; raise: stop at the first
    max_failures: int | None = None  # stop once this many items failed
    # stop when the first N items all fail with one error type (a bug, not bad items)
    systematic_failures: int | None = 20
    item_timeout_s: float | None = None  # kill an item's worker after this long
    retry_failed: bool = False  # process only the items that failed last time
    dry_run: bool = False  # plan and report, process nothing
    limit: int | None = None  # process at most this many pending items
    state_dir: str | None = None  # default: <task.output_dir>/.launcher
    grace_s: float = 30.0  # on SIGTERM/SIGINT/SIGHUP, the whole job ends within this long
    heartbeat_s: float = 5.0  # progress.json rewrite interval
    log_interval_s: float = 30.0  # progress log line interval when not on a terminal
    progress: ProgressMode = ProgressMode.auto


RUN_BOUNDS = {
    "max_failures": ">= 1",
    "systematic_failures": ">= 1",
    "item_timeout_s": "> 0",
    "limit": ">= 1",
    "grace_s": ">= 0",
    "heartbeat_s": "> 0",
    "log_interval_s": "> 0",
}


@dataclass
class Config:
    """The root schema: unknown top-level or ``run.*`` keys are refused by name."""

    task: Any = None
    backbone: Any = None
    shard: Any = None
    run: RunConfig = field(default_factory=RunConfig)


def check_bounds(prefix: str, values: object, bounds: dict[str, str]) -> None:
    """Refuse a numeric option outside its range (``{"num_workers": ">= 1"}``), naming
    the key and the valid range. ``None`` means "the default" and is always accepted;
    a float must be finite."""
    import math
    import operator

    ops = {">=": operator.ge, ">": operator.gt}
    for name, rule in bounds.items():
        value = getattr(values, name, None)
        if value is None or isinstance(value, bool):
            continue
        op, limit = rule.split()
        finite = not isinstance(value, float) or math.isfinite(value)
        if not (finite and ops[op](value, float(limit))):
            raise ConfigError(f"{prefix}.{name}={value!r} is out of range: must be {rule}.")


def _check_missing(cfg: DictConfig) -> None:
    from omegaconf import OmegaConf

    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        from launcher.command import how_to_set

        keys = ", ".join(missing)
        raise ConfigError(
            f"Missing required value(s): {keys}. These are '???' in the config; "
            f"set them, {how_to_set([f'{k}=...' for k in missing])}."
        )


def _check_keys(cfg: DictConfig) -> None:
    """Refuse keys no schema has, even those added with ``+`` (Hydra lets ``+`` add a key
    to a structured config, where it would be ignored without a word)."""
    import dataclasses

    from omegaconf import OmegaConf

    for prefix, node in [("", cfg), *((f"{g}.", cfg.get(g)) for g in ("backbone", "shard", "run"))]:
        schema = OmegaConf.get_type(node) if node is not None else None
        if not dataclasses.is_dataclass(schema):
            continue
        known = {f.name for f in dataclasses.fields(schema)}
        for key in node:
            if key not in known:
                raise unknown_key(f"{prefix}{key}", known)


def _unknown_task_key(cfg: DictConfig, error: TypeError) -> ConfigError | None:
    """``task.sizee=3`` or ``task.input.foo=1``: the key a constructor the task config names
    does not take, and the nearest one it does."""
    import inspect

    from hydra.utils import get_class
    from omegaconf import OmegaConf

    from launcher.internals import unexpected_keyword

    named = unexpected_keyword(error)
    if named is None:
        return None
    cls_name, key = named
    nodes = [("task", cfg)]
    while nodes:
        path, node = nodes.pop()
        nodes += [(f"{path}.{k}", v) for k, v in node.items() if OmegaConf.is_dict(v)]
        target = node.get("_target_")
        if key not in node or not isinstance(target, str) or target.split(".")[-1] != cls_name:
            continue
        try:
            params = inspect.signature(get_class(target)).parameters
        except (ImportError, ValueError, TypeError):
            return None
        known = {p for p, v in params.items() if v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD)}
        return unknown_key(f"{path}.{key}", known - {"self"})
    return None


def _instantiate_task(cfg: DictConfig) -> Any:
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from launcher.task import Task

    try:
        task = instantiate(cfg, _convert_="all")
    except InstantiationException as e:
        cause = e.__cause__ or e
        if isinstance(cause, ImportError):
            from launcher.searchpath import import_failure

            raise ConfigError(import_failure(str(cfg.get("_target_")), cause)) from None
        if isinstance(cause, TypeError) and (unknown := _unknown_task_key(cfg, cause)):
            raise unknown from None
        raise ConfigError(
            f"Could not build the task from `task` ({cfg.get('_target_')}): {cause}"
        ) from None
    if not isinstance(task, Task):
        raise ConfigError(f"task._target_={cfg.get('_target_')} is not a launcher.Task subclass.")
    return task


class Parts(NamedTuple):
    """What a checked config builds: the shard selection, the user's task and the backbone
    (its name and its own config, every number in range)."""

    shard: Shard
    task: Any
    backbone: tuple[str, Any]


def build_task(cfg: DictConfig, task: Any = None) -> Parts:
    """Check the config and build the task (unless ``launcher.run`` was given
    one), as a job does before any work.

    Launchers call it once per sweep config too, to refuse a bad sweep before
    submitting a thousand jobs that would each fail the same way: every
    ``run.*``, ``shard.*`` and ``backbone.*`` number is checked here.
    """
    from omegaconf import OmegaConf

    from launcher.backbones import backbone_config

    _check_missing(cfg)
    _check_keys(cfg)
    shard = Shard.from_config(cfg.shard)
    check_bounds("run", OmegaConf.to_object(cfg.run), RUN_BOUNDS)
    task_cfg, options = storage_options.split(cfg.get("task"))
    location.use_storage_options(options)
    if task is None:
        task = _instantiate_task(task_cfg)
    name, own = backbone_config(OmegaConf.to_object(cfg.backbone), task)
    check_bounds("backbone", own, own.BOUNDS)
    return Parts(shard, task, (name, own))


def build_elements(
    cfg: DictConfig, shards: list[int | None]
) -> tuple[Shard, Identity, list[tuple[Driven, Identity]]]:
    """What a sweep's array needs of its composed config, checked as its jobs check it: the
    shard split, the array's identity (its config key names the completion markers) and,
    for each shard index (None: the config's own selection), the task as that element's
    job drives it (under ``shard=hard``, bound to its folders) and who that job is."""
    shard, task, _ = build_task(cfg)
    for i in shards:
        if i is not None and not 0 <= i < shard.num:
            raise ConfigError(
                f"shard.idx={i} is out of range for shard.num={shard.num} "
                f"(valid: 0..{shard.num - 1})."
            )
    if shard.strategy is Strategy.hard:
        drivens = [Driven.of(task, shard, i) for i in shards]
    else:
        drivens = [Driven.of(task)] * len(shards)
        drivens[0].check_inputs()
    array = Identity.of(cfg, shard, task.output_dir)
    return (
        shard,
        array,
        [(d, array.element(i, d.task.output_dir)) for i, d in zip(shards, drivens, strict=True)],
    )
