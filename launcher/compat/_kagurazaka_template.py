"""kagurazaka's template decorators taken apart: their arguments, the mixin, the soft shard.

``@moemoecue_normal(...)`` and ``@moemoecue_torch_vanilla_v1(...)`` return a
function ``mixin -> class`` whose closure holds the decorator's arguments
(``hard_shard_mode``, ``input_mode``, ...). kagurazaka's own merge mutates
those objects in place, including the ``SoftShard`` default that every
decorator in the process shares, so a mixin on one task leaks into the next,
and it stops at the first unfilled placeholder with an assertion that names
none. Here the mixin goes into deep copies, every unfilled placeholder is
named by its ``task.mixin.*`` key, the copies go back into the closure with
``soft_shard=None`` (sharding is the launcher's), and only then does
kagurazaka patch the class.
"""

from __future__ import annotations

import copy
import inspect
import logging
import types
from collections.abc import Callable, Iterator
from typing import Any

from launcher.errors import ConfigError

log = logging.getLogger(__name__)

# kagurazaka.template.mixin.KAGURAZAKA_MIXIN_PLACEHOLDER (compared by value: no import needed)
PLACEHOLDER = "___KAGURAZAKA_MIXIN_PLACEHOLDER___"
DECORATORS = {
    "kagurazaka.template.task.normal": "@moemoecue_normal",
    "kagurazaka.template.task.torch_vanilla": "@moemoecue_torch_vanilla_v1",
}
PARAMS = (
    "hard_shard_mode",
    "soft_shard",
    "input_mode",
    "output_mode",
    "finish_check_mode",
    "dataloader",
)
SOFT_SHARD_HELP = (
    "task.mixin.soft_shard: the launcher shards kagurazaka tasks itself, so the task's "
    "SoftShard is not used. Use shard.num=N shard.idx=I instead (shard.strategy=modulo, the "
    "default, is SoftShard's split: item i goes to shard i % N), or shard.num=N -m for all shards."
)


def closure(func: Callable) -> dict[str, Any]:
    """A function's closure cells, by the name of the variable each holds."""
    cells = getattr(func, "__closure__", None) or ()
    return dict(zip(func.__code__.co_freevars, cells, strict=True)) if cells else {}


def is_template_function(obj: Any) -> bool:
    """True for functions a kagurazaka template created (its mixin function or patched methods)."""
    return inspect.isfunction(obj) and (
        obj.__module__ in DECORATORS and "internal_mixin_wrapper" in obj.__qualname__
    )


def is_mixin_function(obj: Any) -> bool:
    """True for what ``@moemoecue_*(...)`` binds to the class name (``mixin_mode=True``)."""
    return is_template_function(obj) and obj.__name__ == "internal_mixin_wrapper"


def _cells(obj: Any) -> dict[str, types.CellType]:
    """The template's argument cells, from the mixin function or from the methods it patched."""
    if inspect.isfunction(obj):
        funcs = [obj]
    else:
        funcs = [f for klass in obj.__mro__ for f in vars(klass).values()]
        funcs = [f for f in funcs if is_template_function(f)]
    cells: dict[str, types.CellType] = {}
    for func in funcs:
        cells.update((k, c) for k, c in closure(func).items() if k in PARAMS)
    return cells


def modes(obj: Any) -> dict[str, Any]:
    """The template's arguments as the patched class uses them; empty for an undecorated class."""
    return {name: cell.cell_contents for name, cell in _cells(obj).items()}


def _fields(value: Any) -> dict | None:
    """The mutable fields of a mode object or dict; None for values a mixin replaces whole."""
    if isinstance(value, dict):
        return value
    if isinstance(value, (type, types.ModuleType)) or callable(value):
        return None
    return getattr(value, "__dict__", None)


def _merge(value: Any, patch: Any, key: str) -> Any:
    """kagurazaka's ``param_mixin``, but refusing fields a mode object does not have."""
    if not isinstance(patch, dict):
        return patch
    target = _fields(value)
    if target is None:
        return patch  # a placeholder (or None) becomes the dict, as in kagurazaka
    if not isinstance(value, dict):
        unknown = [k for k in patch if k not in target]
        if unknown:
            raise ConfigError(
                f"{key}.{unknown[0]}: {type(value).__name__} has no field {unknown[0]!r} "
                f"(its fields: {', '.join(target) or 'none'})."
            )
    for k, v in patch.items():
        target[k] = _merge(target.get(k), v, f"{key}.{k}")
    return value


def placeholders(value: Any, key: str) -> Iterator[str]:
    """The ``task.mixin.*`` keys under ``value`` that still hold the placeholder."""
    if isinstance(value, str):
        if value == PLACEHOLDER:
            yield key
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from placeholders(v, f"{key}[{i}]")
        return
    for k, v in (_fields(value) or {}).items():
        yield from placeholders(v, f"{key}.{k}")


def fill(func: Callable, mixin: dict[str, Any], label: str, announce: bool) -> type:
    """Apply ``mixin`` to copies of the decorator's arguments, check them, return the class.

    ``label`` names the task in errors. The returned class is the one the user
    file defined, patched by kagurazaka with the merged arguments and no soft shard.
    """
    decorator = DECORATORS[func.__module__]
    cells = _cells(func)
    args = {name: copy.deepcopy(cell.cell_contents) for name, cell in cells.items()}
    for name, patch in mixin.items():
        if name == "soft_shard":
            raise ConfigError(SOFT_SHARD_HELP)
        if name not in args:
            known = ", ".join(k for k in args if k != "soft_shard")
            raise ConfigError(f"task.mixin.{name}: {decorator} has no {name!r} (it has {known}).")
        if name != "dataloader":
            if args[name] is None:
                raise ConfigError(
                    f"task.mixin.{name}: {label}'s {decorator} sets {name}=None, so there is "
                    "no field to fill (kagurazaka would drop this mixin silently)."
                )
            if not isinstance(patch, dict):
                raise ConfigError(
                    f"task.mixin.{name}={patch!r}: give the fields of its "
                    f"{type(args[name]).__name__}, e.g. task.mixin.{name}.<field>=..."
                )
        args[name] = _merge(args[name], patch, f"task.mixin.{name}")
    missing = [
        key
        for name, value in args.items()
        if name != "soft_shard"
        for key in placeholders(value, f"task.mixin.{name}")
    ]
    if missing:
        raise ConfigError(
            f"{label} leaves {len(missing)} KAGURAZAKA_MIXIN_PLACEHOLDER field(s) of its "
            f"{decorator} unfilled: {', '.join(missing)}. Set them on the command line "
            f"(e.g. `{missing[0]}=...`), under `mixin:` in the task's YAML, or in task.mixin_cfg."
        )
    if args.get("finish_check_mode") is not None and args.get("output_mode") is None:
        raise ConfigError(f"{label}: {decorator} has a finish_check_mode but no output_mode.")
    if announce:
        _warn_soft_shard(args.get("soft_shard"), label)
    for name, cell in cells.items():
        cell.cell_contents = None if name == "soft_shard" else args[name]
    return func({})


def drop_soft_shard(cls: type, label: str, announce: bool) -> None:
    """Turn off the soft shard of a class a template patched already (``mixin_mode=False``)."""
    cell = _cells(cls).get("soft_shard")
    if cell is not None:
        if announce:
            _warn_soft_shard(cell.cell_contents, label)
        cell.cell_contents = None


def _warn_soft_shard(soft: Any, label: str) -> None:
    num = getattr(soft, "shard_num", 1)
    if num not in (1, PLACEHOLDER):
        log.warning(
            "%s: the decorator's SoftShard(shard_idx=%r, shard_num=%r) is replaced by shard.*; "
            "pass shard.num=%s shard.idx=... for the same split",
            label,
            soft.shard_idx,
            num,
            num,
        )
