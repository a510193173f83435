"""How the launcher drives a task: what the user contract in ``task.py`` leaves out.

:class:`Driven` wraps the user's task once, when a job (or a sweep's array element)
is built: what its class implements beyond the contract's defaults (found by
:func:`capabilities`, called only there), its hard shard's folders bound on a
copy, and what the planner and the backbones ask of it (its listing, done
filter, item names, inputs, step kind, what mp workers receive). The user's
``Task`` keeps only what a user writes or calls. A task class may supply its own
``unfinished_filter()`` or ``bind_hard_shard(idx, num)`` (the kagurazaka adapter
does), ``check_inputs()``, ``describe_inputs()`` and a ``forkserver_preload``
tuple of modules; the wrapper uses them when present.
"""

from __future__ import annotations

import copy
import functools
import inspect
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

from launcher.batching import Failure, run_batches
from launcher.errors import ConfigError
from launcher.machine import available_cpus
from launcher.modes import DirListings, OnError
from launcher.shard import Shard, Strategy
from launcher.task import Item, Task, TorchTask, dataset_items, mode_items

log = logging.getLogger(__name__)

Unfinished = Callable[[list[Item]], list[Item]]  # a block of items -> those not done yet


# -- what a task can do ------------------------------------------------------------------------


@dataclass(frozen=True)
class Capabilities:
    """What a task class implements beyond the contract's defaults, found once per class."""

    lists: bool  # its own generate_tasks(), not the input mode's listing
    unfinished: bool  # the opt-in block done check
    is_executed: bool
    is_each_executed: bool  # a TorchTask's per-item done check
    dataset: bool  # a TorchTask's get_dataset()
    process_chunk: bool  # whole chunks per call (a plain Task)
    item_size: bool  # a TorchTask's sizes, for batches of similar items
    item_key: bool  # its own item names
    setup: bool
    step: str | None  # a TorchTask's batch step: process, postprocess or postprocess_each


@functools.cache
def capabilities(cls: type[Task]) -> Capabilities:
    """What ``cls`` overrides of :class:`Task` (of :class:`TorchTask` for a torch task)."""
    torch = issubclass(cls, TorchTask)
    base = TorchTask if torch else Task

    def own(name: str, of: type = base) -> bool:
        return getattr(cls, name) is not getattr(of, name)

    step = None
    if torch:
        step = "process" if own("process") else "postprocess" if own("postprocess") else None
    return Capabilities(
        lists=own("generate_tasks"),
        unfinished=own("unfinished", Task),
        is_executed=own("is_executed"),
        is_each_executed=torch and own("is_each_executed"),
        dataset=torch and own("get_dataset"),
        process_chunk=not torch and own("process_chunk"),
        item_size=torch and own("item_size"),
        item_key=own("item_key", Task),
        setup=own("setup", Task),
        step=step or ("postprocess_each" if torch else None),
    )


# -- the task as the launcher drives it --------------------------------------------------------


@dataclass(frozen=True)
class Driven:
    """The user's task (bound to its hard shard's folders) and what its class can do:
    the one object the planner, the backbones and the marker checks take."""

    task: Task  # the user's, or under shard=hard a copy bound to one shard's folders
    can: Capabilities

    @classmethod
    def of(cls, task: Task, shard: Shard | None = None, idx: int | None = None) -> Driven:
        """``task`` as a job on ``shard`` drives it: under ``shard=hard`` a copy reading and
        writing shard ``idx``'s folders (default: the first the selection holds); the
        task given stays as its user built it, so that one task can be bound to each
        shard of a sweep in turn."""
        if shard is not None and shard.strategy is Strategy.hard:
            task = _on_hard_shard(task, min(shard.idx) if idx is None else idx, shard.num)
        return cls(task, capabilities(type(task)))

    @property
    def step(self) -> str | None:
        """A TorchTask's batch step (process, postprocess or postprocess_each); None for a
        plain Task."""
        return self.can.step

    @property
    def chunked(self) -> bool:
        """Whether the mp workers hand this task whole chunks (it overrides ``process_chunk``)."""
        return self.can.process_chunk

    def check_inputs(self) -> None:
        """Fail early, naming the key, when the task's input source is missing (a task may
        check its own sources with a ``check_inputs()`` of its own)."""
        task = self.task
        own = getattr(task, "check_inputs", None)
        if own is not None:
            own()
        elif task.input is not None:
            task.input.check(task.input_dir, "task.input_dir")

    def describe_inputs(self) -> str:
        """Where the task's items come from, for messages (or its own ``describe_inputs()``)."""
        task = self.task
        own = getattr(task, "describe_inputs", None)
        if own is not None:
            return own()
        if task.input is None:
            return f"{type(task).__name__}.generate_tasks()"
        return f"{task.input.describe()} in task.input_dir={task.input_dir!r}"

    def item_keys(self, items: list[Item]) -> list[str]:
        """``task.item_key`` of each item: with the default ``item_key``, plain dicts and
        string keys, in C (a backbone names every item it holds in flight)."""
        if not self.can.item_key and set(map(type, items)) == {dict}:
            keys = list(map(dict.get, items, repeat("key")))
            if set(map(type, keys)) == {str}:
                return keys
        return list(map(self.task.item_key, items))

    def item_sizes(self) -> Callable[[Item], Any] | None:
        """An item's size (``TorchTask.item_size``), for batches of similar items; None when
        the task declares none."""
        if not self.can.item_size:
            return None
        size = self.task.item_size
        return lambda item: size(**item)

    def distinct_by_construction(self) -> tuple[bool, bool]:
        """Whether the task's listing cannot give two items one key, and whether it cannot
        give two items one output path (inside ``output_dir``); the planner checks the rest."""
        task = self.task
        if self.can.lists:
            return False, False
        if isinstance(task, TorchTask) and task.input is None:
            return True, True  # a dataset's indices
        keys = task.input is not None and task.input.unique_keys
        return keys, keys and (task.output is None or task.output.injective)

    def listing(
        self, unlisted: Sequence[str] = (), on_error: OnError | None = None
    ) -> Iterable[Item]:
        """The task's items as the planner lists them: its own ``generate_tasks()``, a
        dataset's indices, or its input mode's listing, which leaves the ``unlisted``
        folders out (the launcher's own files are never items, even where the state dir
        lies inside the input folder) and tells ``on_error`` of unreadable folders."""
        task = self.task
        if self.can.lists:
            return task.generate_tasks()
        if self.can.dataset:
            dataset = task.get_dataset()
            if dataset is not None:
                return dataset_items(dataset)
        return mode_items(task, unlisted, on_error)

    def unfinished_filter(self) -> Unfinished | None:
        """The planner's done filter (a block of items -> those not done), or None when
        nothing can be done already.

        An overridden :meth:`Task.unfinished` is called per block, an overridden done
        check per item; otherwise the output mode answers
        from cached directory listings (one per directory).
        """
        task, can = self.task, self.can
        own = getattr(task, "unfinished_filter", None)
        if own is not None:
            return own()
        if can.unfinished:  # the opt-in block check comes first
            return _checked_unfinished(task)
        if can.is_each_executed:
            return unfinished_by(task.is_each_executed)
        if can.is_executed:
            return unfinished_by(task.is_executed)
        if can.dataset and task.output is None:
            log.warning(
                "%s takes its items from get_dataset() and has neither an output mode "
                "(task.output) nor is_each_executed(key, index): no item can be found done, "
                "so every run redoes every item.",
                type(task).__name__,
            )
        if task.output is None:
            return None
        listings = DirListings()
        is_done = task.output.is_done
        return lambda block: [it for it in block if not is_done(it["output"], listings)]

    def forkserver_modules(self) -> tuple[str, ...]:
        """Modules a forkserver imports once for all workers: the task's own, and those it
        names."""
        own = type(self.task).__module__
        preload = getattr(self.task, "forkserver_preload", ())
        return (*preload, *(() if own == "__main__" else (own,)))

    def worker_side(self, num_workers: int, batch_size: int) -> Task | TorchOnWorkers:
        """What the mp backbone ships to its workers: the task without its
        :attr:`~launcher.task.Task.planning_only` attributes; a TorchTask wrapped so that
        each worker steps through its items ``batch_size`` at a time."""
        task = _without_planning_state(self.task)
        if isinstance(task, TorchTask):
            threads = max(1, available_cpus() // num_workers)
            return TorchOnWorkers(task, threads, batch_size, self.can.step)
        return task


# -- planning ----------------------------------------------------------------------------------


def _checked_unfinished(task: Task) -> Unfinished:
    """``task.unfinished`` as the planner calls it, its answer checked as items are: a
    sub-list of the block's items. Any iterable is taken, copies of the block's items are
    traded for the originals and the order is restored; ``None``, an item the block did
    not hold or one returned twice is refused, naming ``unfinished``."""
    unfinished, key_of = task.unfinished, task.item_key
    name = f"{type(task).__name__}.unfinished()"

    def refuse(what: str) -> ConfigError:
        return ConfigError(
            f"{name} {what}: it must return the items of the block it was given that are "
            "not done, as a list of those same dicts (a sub-list, in order). Nothing was "
            "processed from the block it was checking."
        )

    def check(block: list[Item]) -> list[Item]:
        out = unfinished(block)
        if out is None or isinstance(out, (str, bytes, dict)):
            raise refuse(f"returned {type(out).__name__}, not a list")
        try:
            out = out if isinstance(out, list) else list(out)
        except TypeError:
            raise refuse(f"returned a {type(out).__name__}, not a list") from None
        if _is_sub_list(block, out):  # the answer asked for, checked in one cheap pass
            return out
        at = {id(it): pos for pos, it in enumerate(block)}
        where = [at.get(id(it)) for it in out]
        if None in where:  # copies: matched by key
            by_key = {key_of(it): pos for pos, it in enumerate(block)}
            for i, it in enumerate(out):
                if where[i] is None:
                    pos = by_key.get(key_of(it)) if isinstance(it, dict) else None
                    if pos is None or block[pos] != it:
                        raise refuse(f"returned {it!r}, which is not an item it was given")
                    where[i] = pos
        if len(set(where)) != len(where):
            twice = next(block[p] for p in where if where.count(p) > 1)
            raise refuse(f"returned the item {key_of(twice)!r} more than once")
        return [block[p] for p in sorted(where)]

    return check


def _is_sub_list(block: list[Item], out: list[Any]) -> bool:
    """Whether ``out`` holds the block's own items, each once, in the block's order: the
    answer ``unfinished`` is asked for (copies, another order or anything else get the full
    check). One pass by identity, never by ``==`` (an item's equal fields could be large):
    per block of 4096 items an eighth of what a dict of the block's ids cost, half of a
    plain filter's."""
    rest = iter(block)
    for it in out:
        for candidate in rest:
            if candidate is it:
                break
        else:
            return False
    return True


def unfinished_by(is_executed: Callable[..., bool]) -> Unfinished:
    """The planner's block filter from an ``is_executed(**item)``: the method is called
    straight from the comprehension, with no wrapper call per item."""

    def unfinished(block: list[Item]) -> list[Item]:
        try:
            return [it for it in block if not is_executed(**it)]
        except TypeError as exc:
            _explain_check_arguments(is_executed, block, exc)
            raise

    return unfinished


def _explain_check_arguments(check: Callable[..., bool], block: list[Item], exc: Exception) -> None:
    """A done check whose parameters are not the item's fields: say why it cannot get more."""
    for it in block:
        try:
            inspect.signature(check).bind(**it)
        except TypeError as why:
            raise ConfigError(
                f"{check.__qualname__}() cannot be called with item {it!r} ({why}): done "
                "checks run while planning, before anything is loaded, and receive only the "
                f"item's own fields ({', '.join(it)}), not the fields load_data() or the "
                "dataset would add. Compute what the check needs from those fields."
            ) from exc
        except ValueError:  # no signature to compare (a builtin)
            return


# -- where a shard's task reads and writes ----------------------------------------------------


def _on_hard_shard(task: Task, idx: int, num: int) -> Task:
    """A copy of ``task`` that reads and writes hard shard ``idx``'s own folders (its
    ``{shard_idx}`` templates filled, or its own ``bind_hard_shard``)."""
    bound = copy.copy(task)
    own = getattr(bound, "bind_hard_shard", None)
    if own is not None:
        own(idx, num)
        return bound
    if not task.input_dir or "{shard_idx}" not in task.input_dir:
        raise ConfigError(
            "shard=hard needs a '{shard_idx}' placeholder in task.input_dir "
            f"(got {task.input_dir!r}), e.g. task.input_dir=/data/part_{{shard_idx}}."
        )
    bound.input_dir = task.input_dir.format(shard_idx=idx, shard_num=num)
    if task.output_dir:
        bound.output_dir = task.output_dir.format(shard_idx=idx, shard_num=num)
    return bound


# -- on the mp backbone ------------------------------------------------------------------------


def _without_planning_state(task: Task) -> Task:
    """A shallow copy of ``task`` without the attributes only planning needs (the task
    itself when it names none), so that each worker is not sent them."""
    own = getattr(task, "__dict__", {})
    names = [n for n in _planning_only(task) if n in own]
    if not names:
        return task
    lean = copy.copy(task)
    for name in names:
        delattr(lean, name)
    return lean


def _planning_only(task: Task) -> tuple[str, ...]:
    """The names in ``task.planning_only``: ``("done")`` (a bare string, the missing comma)
    is the one name it was meant to be; anything but names is refused."""
    names = getattr(task, "planning_only", ())
    if isinstance(names, str):
        return (names,)
    if not isinstance(names, (tuple, list, set, frozenset)) or not all(
        isinstance(n, str) for n in names
    ):
        raise ConfigError(
            f"{type(task).__name__}.planning_only must name attributes: a tuple of strings "
            f"such as ('done',), not {names!r}."
        )
    return tuple(names)


@dataclass
class TorchOnWorkers:
    """A TorchTask in an mp worker: the model on the CPU, loaded once per worker, the
    machine's threads shared fairly among the workers."""

    task: TorchTask
    threads: int
    batch_size: int
    step: str | None  # process, postprocess or postprocess_each
    device: Any = None

    def setup_worker(self, worker_id: int) -> None:
        import torch

        torch.set_num_threads(self.threads)
        self.device = torch.device("cpu")
        self.task.load_model(self.device)
        self.task.setup_worker(worker_id)

    def teardown_worker(self) -> None:
        self.task.teardown_worker()

    def process_batch(
        self, items: list[Item], mark: Callable[[int], None] | None = None
    ) -> list[tuple[int, Failure]]:
        """Process items as batches; return ``(position, failure)`` pairs. ``mark(i)`` is
        told the item being loaded, and -1 for each model step."""
        return run_batches(self.task, self.device, items, self.batch_size, self.step, mark)
