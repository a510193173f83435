"""Run unmodified kagurazaka 0.1.1 task files: ``task=kagurazaka task.file=F task.name=N``.

The file is loaded the way kagurazaka's CLI loads it, and the object is wrapped
in a :class:`launcher.Task` (``KagurazakaTask``) or :class:`launcher.TorchTask`
(``KagurazakaVanillaTorchTaskV1``), so our planner, shards, records, backbones
and SLURM arrays apply unchanged. The adapter, never the kagurazaka object,
crosses process boundaries: it pickles as its recipe (file, name, args, mixin)
and each process loads the file again, so spawn and forkserver workers work
(kagurazaka's own mp backbone needs fork). Nothing here imports kagurazaka or
torch until a task file is loaded.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from launcher.compat import _kagurazaka_template as template
from launcher.driving import Unfinished, unfinished_by
from launcher.errors import ConfigError, InputError
from launcher.task import Item, Task, TorchTask, batch_size_of

log = logging.getLogger(__name__)

INDEX = "__kagurazaka_index__"  # the item of a dataset-backed torch task: a dataset position
DONE = "__kagurazaka_done__"  # the done check's answer for a sample, made after loading it
PATH_INPUT_MODES = ("InputByExts", "InputByGlob", "InputBySubDirectory")


@dataclass
class Recipe:
    """What rebuilds the kagurazaka object in any process: all that the adapter pickles."""

    file: str
    name: str
    args: tuple[str, ...] = ()
    mixin: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.name} ({os.path.basename(self.file)})"


@dataclass
class Built:
    task: Any  # the kagurazaka task object
    modes: dict[str, Any]  # the template's arguments after the mixin; {} without a template
    torch: bool


def from_file(
    file: str,
    name: str,
    args: Any = (),
    mixin: Mapping[str, Any] | None = None,
    mixin_cfg: str | None = None,
) -> Task:
    """``task=kagurazaka``: the adapter for ``name`` in ``file``; a bad value is a ConfigError."""
    recipe = Recipe(os.path.abspath(file), name, cli_args(args), _mixin(mixin, mixin_cfg))
    built = _build(recipe)
    adapter = KagurazakaTorchAdapter if built.torch else KagurazakaTaskAdapter
    return adapter(recipe, built)


def cli_args(args: Any) -> tuple[str, ...]:
    """``task.args`` as the argv list the task's ``__init__(args)`` receives.

    A list is taken as is and a string is split as a shell would; a mapping is
    written the way kagurazaka turns a ``--cfg`` file's ``task:`` section into
    flags (``--key value``, ``--key`` alone for ``store_true``, dicts as JSON).
    """
    if isinstance(args, str):
        return tuple(shlex.split(args))
    if isinstance(args, Mapping):
        out: list[str] = []
        for key, value in args.items():
            values = value if isinstance(value, list) else [value]
            out.append(f"--{key}")
            out += [json.dumps(v) if isinstance(v, dict) else str(v) for v in values]
            if value == "store_true":
                out.pop()
        return tuple(out)
    return tuple(str(a) for a in args)


def _mixin(mixin: Mapping[str, Any] | None, mixin_cfg: str | None) -> dict[str, Any]:
    """``task.mixin`` over the ``task.mixin_cfg`` file, as kagurazaka's ``--mixin`` over its
    ``--mixin-cfg``."""
    if not mixin_cfg:
        return dict(mixin or {})
    from omegaconf import OmegaConf

    if not os.path.isfile(mixin_cfg):
        raise ConfigError(f"task.mixin_cfg={mixin_cfg!r} is not a file.")
    merged = OmegaConf.merge(OmegaConf.load(mixin_cfg), dict(mixin or {}))
    return OmegaConf.to_container(merged, resolve=True)  # type: ignore[return-value]


def _load(recipe: Recipe) -> Any:
    """Execute the task file as kagurazaka's CLI does and return ``recipe.name`` from it.

    Like kagurazaka, the module is not put in ``sys.modules``: every call runs
    the file afresh, so each job gets its own classes and decorator arguments.
    """
    file = recipe.file
    if not os.path.isfile(file):
        raise ConfigError(f"task.file={file!r} is not a file.")
    folder = os.path.dirname(file)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # the file's own imports resolve beside it
    spec = importlib.util.spec_from_file_location(os.path.basename(file).rsplit(".", 1)[0], file)
    if spec is None or spec.loader is None:
        raise ConfigError(f"task.file={file!r} is not a Python file.")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as e:
        if (e.name or "").partition(".")[0] != "kagurazaka":
            raise
        raise ConfigError(
            f"task.file={file!r} imports kagurazaka, which is not installed here: "
            "pip install 'shard-launcher[kagurazaka]'."
        ) from None
    if not hasattr(module, recipe.name):
        found = [k for k, v in vars(module).items() if _is_task(v, spec.name)]
        raise ConfigError(
            f"task.name={recipe.name!r}: {file} defines no such name "
            f"(its kagurazaka tasks: {', '.join(found) or 'none'})."
        )
    return getattr(module, recipe.name)


def _is_task(obj: Any, module: str) -> bool:
    """A task class defined in ``module``, or a @moemoecue_* mixin function."""
    import kagurazaka

    bases = (kagurazaka.KagurazakaTask, kagurazaka.KagurazakaVanillaTorchTaskV1)
    if template.is_mixin_function(obj):
        return True
    return isinstance(obj, type) and issubclass(obj, bases) and obj.__module__ == module


def _build(recipe: Recipe, announce: bool = True) -> Built:
    """Load the task, fill its template from the mixin, and construct it with the args."""
    obj = _load(recipe)
    import kagurazaka

    label = recipe.label
    if template.is_mixin_function(obj):
        cls = template.fill(obj, recipe.mixin, label, announce)
        form = template.DECORATORS[obj.__module__]
    elif isinstance(obj, type):
        if recipe.mixin:
            raise ConfigError(
                f"task.mixin is set, but {label} is a class: only a @moemoecue_* decorator "
                "(with mixin_mode=True, its default) takes a mixin."
            )
        cls = obj
        template.drop_soft_shard(cls, label, announce)
        form = "class"
    else:
        raise ConfigError(
            f"task.name={recipe.name!r} is a {type(obj).__name__}, not a kagurazaka task "
            "class or the mixin function of a @moemoecue_* decorator."
        )
    if issubclass(cls, kagurazaka.KagurazakaVanillaTorchTaskV1):
        torch = True
    elif issubclass(cls, kagurazaka.KagurazakaTask):
        torch = False
    else:
        raise ConfigError(f"{label} is no KagurazakaTask and no KagurazakaVanillaTorchTaskV1.")
    try:
        task = cls(args=list(recipe.args))
    except SystemExit as e:  # argparse refused task.args; it printed why
        raise ConfigError(
            f"task.args={list(recipe.args)}: {label} refused them (its argument parser exited "
            f"with status {e.code}; its message is above)."
        ) from None
    if announce:
        log.info("kagurazaka task %s: %s from %s", label, form, recipe.file)
    return Built(task, template.modes(obj), torch)


def _overrides(cls: type, name: str, base: type) -> bool:
    return getattr(cls, name, None) is not getattr(base, name, None)


class _Adapter:
    """What both adapters share: built from a recipe, pickled as it, keyed like kagurazaka items."""

    _derived: tuple[str, ...] = ("_kg", "_modes")
    forkserver_preload = ("kagurazaka",)  # it imports torch: once in the forkserver, not per worker
    _recipe: Recipe
    _hard: tuple[int, int] | None
    output_dir: str | None

    def _setup(self, recipe: Recipe, built: Built) -> None:
        self._recipe = recipe
        self._hard = None
        self._attach(built, announce=True)

    def _attach(self, built: Built, announce: bool) -> None:
        self._kg = built.task
        self._modes = built.modes
        hard = built.modes.get("hard_shard_mode")
        self.output_dir = hard.get_shard_output() if hard is not None else None

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in self._derived}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._attach(_build(self._recipe, announce=False), announce=False)
        if self._hard is not None:
            self._format_hard_shard(*self._hard)

    def item_key(self, item: Item) -> str:
        """The input's path relative to the input folder for template items, else the item."""
        if INDEX in item:
            return str(item[INDEX])
        source = item.get("input")
        if hasattr(source, "rel_dir") and hasattr(source, "file_name"):  # a FileTriplet
            return os.path.normpath(os.path.join(source.rel_dir, source.file_name))
        return super().item_key(item)  # type: ignore[misc]

    def describe_inputs(self) -> str:
        mode = self._modes.get("input_mode")
        if mode is None:
            return f"the items of {self._recipe.label}"
        return f"{type(mode).__name__} in {self._modes['hard_shard_mode'].get_shard_input()!r}"

    def check_inputs(self) -> None:
        """A template's input folder must exist (its input modes would list nothing or crash)."""
        mode = self._modes.get("input_mode")
        if mode is not None and type(mode).__name__ in PATH_INPUT_MODES:
            path = self._modes["hard_shard_mode"].get_shard_input()
            if not os.path.isdir(path):
                raise InputError(
                    f"{self._recipe.label}: its input folder {path!r} does not exist "
                    "(set by task.mixin.hard_shard_mode.*)."
                )

    def bind_hard_shard(self, idx: int, num: int) -> None:
        """``shard=hard``: fill ``{shard_idx}``/``{shard_num}`` in the task's hard_shard_mode."""
        self._format_hard_shard(idx, num)
        self._hard = (idx, num)

    def _format_hard_shard(self, idx: int, num: int) -> None:
        hard = self._modes.get("hard_shard_mode")
        fields = vars(hard) if hard is not None else {}
        templated = [k for k, v in fields.items() if isinstance(v, str) and "{shard_idx}" in v]
        if not templated:
            raise ConfigError(
                f"shard=hard needs '{{shard_idx}}' in a field of {self._recipe.label}'s "
                "hard_shard_mode, e.g. \"task.mixin.hard_shard_mode.input_path='/in/{shard_idx}'\" "
                "(HardShardModeV1: \"task.mixin.hard_shard_mode.shard_idx='{shard_idx}'\")."
            )
        for k in templated:
            fields[k] = fields[k].replace("{shard_idx}", str(idx)).replace("{shard_num}", str(num))
        self.output_dir = hard.get_shard_output()


class KagurazakaTaskAdapter(_Adapter, Task):
    """A ``KagurazakaTask``, plain or ``@moemoecue_normal``, as a launcher Task.

    Items are what its ``generate_tasks()`` lists (without its soft shard);
    ``is_executed(**item)`` runs in the planner and ``__call__(**item)`` in the workers.
    """

    def __init__(self, recipe: Recipe, built: Built) -> None:
        super().__init__()
        self._setup(recipe, built)

    def _attach(self, built: Built, announce: bool) -> None:
        import kagurazaka

        super()._attach(built, announce)
        modes = built.modes
        by_template = modes.get("finish_check_mode") is not None and modes.get("output_mode")
        method = type(built.task).is_executed
        wrapped = template.closure(method).get("cls_is_executed")  # a template's fallback
        own = wrapped.cell_contents if wrapped else method
        self._has_check = bool(by_template) or own is not kagurazaka.KagurazakaTask.is_executed

    def generate_tasks(self) -> Iterable[Item]:
        return self._kg.generate_tasks()

    def unfinished_filter(self) -> Unfinished | None:
        if not self._has_check:
            log.warning("%s defines no is_executed: every item runs every time", self._recipe.label)
            return None
        return unfinished_by(self._kg.is_executed)

    def process(self, **item: Any) -> None:
        self._kg(**item)


class KagurazakaTorchAdapter(_Adapter, TorchTask):
    """A ``KagurazakaVanillaTorchTaskV1``, plain or ``@moemoecue_torch_vanilla_v1``, as a TorchTask.

    Items are the template input mode's items, checked in the planner before
    anything loads, or positions in the task's dataset, checked right after
    loading in the loader workers (the check needs the sample; such items count
    as processed). Each batch is collated as the task's DataLoader would and
    goes through the task's own ``process`` (so ``inference`` + ``postprocess``
    or ``postprocess_each`` as it defines them); batch size and loader workers
    come from ``backbone.*``.
    """

    _derived = (*_Adapter._derived, "_dataset", "_collate", "_check")

    def __init__(self, recipe: Recipe, built: Built) -> None:
        super().__init__()
        self._setup(recipe, built)

    def _attach(self, built: Built, announce: bool) -> None:
        import kagurazaka
        from torch.utils.data import default_collate

        super()._attach(built, announce)
        base, task, cls = kagurazaka.KagurazakaVanillaTorchTaskV1, built.task, type(built.task)
        settings = built.modes.get("dataloader") or {}
        loader = None
        if _overrides(cls, "get_dataloader", base) and not template.is_template_function(
            cls.get_dataloader
        ):
            loader = task.get_dataloader()
            settings = {"batch_size": loader.batch_size, "num_workers": loader.num_workers}
        self._collate = (loader.collate_fn if loader else settings.get("collate_fn")) or (
            default_collate
        )
        if announce and settings:
            log.info(
                "%s: its DataLoader settings %s give way to backbone.batch_size and "
                "backbone.num_workers",
                self._recipe.label,
                {k: v for k, v in settings.items() if k != "collate_fn"},
            )
        self._dataset = None
        if built.modes.get("input_mode") is not None:
            mixin = kagurazaka.KagurazakaVanillaTorchMixinV1
            if getattr(cls, "load_data", mixin.load_data) is mixin.load_data:
                raise ConfigError(
                    f"{self._recipe.label} has an input_mode but no load_data(**item) "
                    "(kagurazaka's KagurazakaVanillaTorchMixinV1)."
                )
        elif loader is not None:  # what kagurazaka iterates
            self._dataset = loader.dataset
        elif _overrides(cls, "get_dataset", base):
            self._dataset = task.get_dataset()
        else:
            raise ConfigError(
                f"{self._recipe.label} has no data: it needs get_dataset() or get_dataloader(), "
                "or an input_mode in its @moemoecue_torch_vanilla_v1."
            )
        if self._dataset is not None and not (
            hasattr(self._dataset, "__len__") and hasattr(self._dataset, "__getitem__")
        ):
            raise ConfigError(
                f"{self._recipe.label}: its dataset ({type(self._dataset).__name__}) needs "
                "len() and indexing, so items can be sharded and retried one by one."
            )
        self._check = self._done_check(cls, base)

    def _done_check(self, cls: type, base: type) -> Callable[[dict], bool] | None:
        """The task's own bookkeeping on one sample, collated as a batch of one."""
        task, collate = self._kg, self._collate
        if _overrides(cls, "is_executed", base):
            return lambda sample: bool(task.is_executed(collate([sample])))
        if _overrides(cls, "is_each_executed", base):
            return lambda sample: bool(
                task.is_each_executed(**{k: v[0] for k, v in collate([sample]).items()})
            )
        return None

    def generate_tasks(self) -> Iterable[Item]:
        if self._dataset is not None:
            return ({INDEX: i} for i in range(len(self._dataset)))
        hard = self._modes["hard_shard_mode"]
        return self._modes["input_mode"].generate_tasks(hard.get_shard_input())

    def unfinished_filter(self) -> Unfinished | None:
        if self._check is None:
            log.warning(
                "%s defines no is_each_executed/is_executed: every item runs every time",
                self._recipe.label,
            )
            return None
        if self._dataset is not None:
            log.info(
                "%s: done checks need the sample, so they run right after loading it "
                "(items found done count as processed)",
                self._recipe.label,
            )
            return None
        check = self._check
        return lambda block: [it for it in block if not check(it)]

    def load_data(self, **item: Any) -> dict[str, Any]:
        if self._dataset is None:
            return self._kg.load_data(**item)
        sample = self._dataset[item[INDEX]]
        return {**sample, DONE: self._check is not None and self._check(sample)}

    def load_model(self, device: Any) -> None:
        self._kg.load_model(str(device))

    def process(self, device: Any, batch: dict[str, Any]) -> None:  # type: ignore[override]
        n = batch_size_of(batch)
        done = batch.get(DONE) or [False] * n
        rows = [i for i in range(n) if not done[i]]
        if rows:
            self._kg(device=str(device), batch=self._collated(batch, rows))

    def _collated(self, batch: dict[str, Any], rows: list[int]) -> Any:
        """The ``rows`` of our batch as the task's DataLoader would have collated them."""
        import torch
        from torch.utils.data import default_collate

        fields = {k: v for k, v in batch.items() if k not in (INDEX, DONE)}
        if self._collate is not default_collate:
            return self._collate([{k: v[i] for k, v in fields.items()} for i in rows])
        out = {}
        for key, values in fields.items():
            if isinstance(values, torch.Tensor):  # stacked already, as default_collate does
                out[key] = values if len(rows) == len(values) else values[rows]
                continue
            picked = [values[i] for i in rows]
            try:
                out[key] = default_collate(picked)
            except (TypeError, RuntimeError):  # kagurazaka would fail the batch; keep the list
                out[key] = picked
        return out
