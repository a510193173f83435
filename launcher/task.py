"""The user contract: what a work item is, how to tell it is done, how to process it.

kagurazaka's interface made start-method-safe: a task object is pickled to
each worker process (spawn/forkserver) instead of living in a module global,
so everything it holds at construction time must be picklable; load heavy
resources (models, clients) in ``setup_worker``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

from launcher.errors import ConfigError
from launcher.modes import DirListings, InputMode, OnError, OutputMode, join

Item = dict[str, Any]
ChunkFailures = Mapping[int, BaseException]  # position in the chunk -> that item's exception


def batch_size_of(batch: dict[str, Any]) -> int:
    """How many items a collated batch holds (dim 0 of each field)."""
    return len(next(iter(batch.values()))) if batch else 0


def item_kwargs(batch: dict[str, Any], results: Any, i: int) -> dict[str, Any]:
    """Item ``i``'s fields and results, as kagurazaka's ``postprocess_each`` receives them."""
    out = {k: v[i] for k, v in batch.items()}
    if isinstance(results, dict):
        out.update({k: v[i] for k, v in results.items()})
    else:
        out["result"] = results[i]
    return out


def _same_dir(a: str | None, b: str | None) -> bool:
    return bool(a and b) and os.path.realpath(a) == os.path.realpath(b)


class Task:
    """Base class for a task: subclass it and implement :meth:`process`.

    Either give the task an input mode (and usually an output mode) in its
    config, or override :meth:`generate_tasks` and :meth:`is_executed`.
    With modes, each item is ``{"key", "input", "output"}``: ``key`` is the
    input path relative to ``input_dir``.

    A subclass need not call ``super().__init__()``: every attribute the
    launcher reads has a class-level default.
    """

    input_dir: str | None = None
    output_dir: str | None = None
    input: InputMode | None = None
    output: OutputMode | None = None
    # attributes only the launching process needs (a done set or a database handle for
    # is_executed/unfinished): the mp backbone's workers receive the task without them
    planning_only: tuple[str, ...] = ()

    def __init__(
        self,
        input_dir: str | None = None,
        output_dir: str | None = None,
        input: InputMode | None = None,
        output: OutputMode | None = None,
    ) -> None:
        self.input_dir = input_dir
        self.output_dir = output_dir
        self.input = input
        self.output = output

    # -- the items -------------------------------------------------------------------------

    def generate_tasks(self) -> Iterable[Item]:
        """All work items, in a deterministic order; may be a generator of millions."""
        return mode_items(self)

    def is_executed(self, **item: Any) -> bool:
        """True when the item's output is already there (default: output existence)."""
        if self.output is None:
            return False
        return self.output.is_done(item["output"], DirListings(max_dirs=1))

    def unfinished(self, items: list[Item]) -> list[Item]:
        """Opt-in, for a task that knows its done items as a set or a database: the items of
        a block (up to ~1000) that are not done yet, as a sub-list of the same dicts in
        their order. The planner calls it once per block instead of
        :meth:`is_executed` per item, so it can answer with one query, or with one
        comprehension: ``[it for it in items if it["key"] not in self.done]``. Name
        the done set in :attr:`planning_only` so that workers are not sent a copy.
        """
        return [it for it in items if not self.is_executed(**it)]

    def item_key(self, item: Item) -> str:
        """A stable name for an item: used by hash sharding, records and retries."""
        key = item.get("key")
        if isinstance(key, str):
            return key
        return json.dumps(item, sort_keys=True, default=str)

    # -- the work --------------------------------------------------------------------------

    def process(self, **item: Any) -> None:
        """Process one item; raise to mark it failed (the run goes on)."""
        raise NotImplementedError(f"{type(self).__name__}.process() is not implemented")

    def process_chunk(self, items: list[Item]) -> ChunkFailures | None:
        """Opt-in, for tiny items: process a whole chunk in one call; return the items that
        failed as ``{position in items: exception}`` (None or empty: all succeeded).

        Overriding it trades one guarantee: the worker marks progress per chunk, not
        per item, so a worker that dies (or overruns ``run.item_timeout_s``) costs its
        whole chunk. None of that chunk is recorded done; each of its items is run
        again alone, as a chunk of one, so the item at fault is still blamed exactly
        (items before it in the chunk may have run once already). If the call raises,
        the same happens: its items are retried one by one and the exception lands on
        the item that raises it alone. Records stay exact: an item is recorded done
        once, after the call that ran it returned.
        """
        raise NotImplementedError(f"{type(self).__name__}.process_chunk() is not implemented")

    def setup(self) -> None:
        """Once per job, in the launching process, before items are listed."""

    def teardown(self) -> None:
        """Once per job, in the launching process, after the last item."""

    def setup_worker(self, worker_id: int) -> None:
        """Once per worker process before its first item: load models here."""

    def teardown_worker(self) -> None:
        """Once per worker process after its last item."""


class TorchTask(Task):
    """A model over items: kagurazaka's ``KagurazakaVanillaTorchTaskV1`` contract.

    Implement :meth:`load_model` and one way to process a batch:
    :meth:`inference` + :meth:`postprocess_each` (per item), or
    :meth:`inference` + :meth:`postprocess` (whole batch), or :meth:`process`
    (the whole step). Items come from :meth:`generate_tasks` or an input mode;
    :meth:`load_data` turns one item into tensors in a DataLoader worker, or
    :meth:`get_dataset` supplies a map-style dataset (items are then its
    indices). :meth:`is_each_executed` is checked per item before anything is
    loaded. Nothing here imports torch until a model runs.
    """

    # -- model and data ---------------------------------------------------------------------

    def load_model(self, device: Any) -> None:
        """Load the model onto ``device`` (keep it on ``self``)."""
        raise NotImplementedError(f"{type(self).__name__}.load_model() is not implemented")

    def load_data(self, **item: Any) -> dict[str, Any]:
        """One item's inputs (tensors, arrays, text); runs in DataLoader workers, which
        start loading while :meth:`load_model` runs: it cannot use what that sets (build
        a tokenizer it needs in ``__init__``, or on its first call)."""
        return {}

    def item_size(self, **item: Any) -> float:
        """Optionally, a cheap size of one item, known before it is loaded (a text's
        characters, a file's bytes, a page's area). Declared, it lets the torch backbone
        batch items of similar size together (from a bounded window of the plan), so a
        batch pads less; not declared, batches follow the plan's order."""
        raise NotImplementedError(f"{type(self).__name__}.item_size() is not implemented")

    def get_dataset(self) -> Any:
        """Optionally, a map-style dataset of dicts; then items are its indices."""
        return None

    def get_dataloader(self, dataset: Any, **defaults: Any) -> Any:
        """Optionally, a custom DataLoader; ``defaults`` holds the backbone's arguments."""
        return None

    def generate_tasks(self) -> Iterable[Item]:
        dataset = self.get_dataset()
        if dataset is None:
            return super().generate_tasks()
        return dataset_items(dataset)

    def is_each_executed(self, **item: Any) -> bool:
        """True when this item is already done (default: its output exists)."""
        return Task.is_executed(self, **item)

    def is_executed(self, **item: Any) -> bool:
        return self.is_each_executed(**item)

    # -- processing -------------------------------------------------------------------------

    def inference(self, device: Any, batch_size: int, **batch: Any) -> Any:
        """Run the model on a batch; return a tensor, a list or a dict of them (dim 0 = items)."""
        raise NotImplementedError(f"{type(self).__name__}.inference() is not implemented")

    def postprocess_each(self, batch_idx: int, batch_size: int, **item_and_result: Any) -> None:
        """Write one item's result; gets the item's fields and ``result`` (or the dict's keys)."""
        raise NotImplementedError(f"{type(self).__name__}.postprocess_each() is not implemented")

    def postprocess(self, batch_size: int, results: Any, **batch: Any) -> None:
        """Write a whole batch's results (override instead of :meth:`postprocess_each`)."""
        for i in range(batch_size):
            self.postprocess_each(i, batch_size, **item_kwargs(batch, results, i))

    def process(self, device: Any, batch: dict[str, Any]) -> None:  # type: ignore[override]
        """The whole step for a batch (override to take it over)."""
        n = batch_size_of(batch)
        self.postprocess(n, self.inference(device, n, **batch), **batch)


_LISTING: ContextVar[tuple[Sequence[str], OnError | None]] = ContextVar(
    "launcher_listing", default=((), None)
)


@contextlib.contextmanager
def listing_context(unlisted: Sequence[str], on_error: OnError | None) -> Iterator[None]:
    """While the planner lists: the folders an input mode leaves out and where unreadable
    folders go, for a task whose own ``generate_tasks()`` calls ``Task``'s (embed's,
    without ``task.jsonl``): that call is the user's and passes no such arguments."""
    token = _LISTING.set((tuple(unlisted), on_error))
    try:
        yield
    finally:
        _LISTING.reset(token)


def mode_items(
    task: Task, unlisted: Sequence[str] | None = None, on_error: OnError | None = None
) -> Iterator[Item]:
    """The items of ``task``'s input mode, each with its output path: the listing a task
    that does not list its own items has. Its outputs and the ``unlisted`` folders (the
    launcher's state) are never listed; ``on_error`` hears of unreadable folders. Without
    them, the planner's :func:`listing_context` says both."""
    if unlisted is None and on_error is None:
        unlisted, on_error = _LISTING.get()
    if task.input is None:
        raise ConfigError(
            f"{type(task).__name__} has no input mode: set task.input "
            "(e.g. launcher.modes.ByExtensions) or override generate_tasks()."
        )
    out_root = task.output_dir
    exclude = (*((out_root,) if out_root else ()), *(unlisted or ()))
    return _with_outputs(task, task.input.entries(task.input_dir, exclude, on_error))


def _with_outputs(task: Task, entries: Iterable[tuple[str, str]]) -> Iterator[Item]:
    """Items from ``(key, input)`` pairs; in an input folder that is also the output
    folder, a listed file that an earlier item writes is skipped."""
    root, out_root, output = task.input_dir, task.output_dir, task.output
    same = bool(out_root) and output is not None and _same_dir(root, out_root)
    made: set[str] = set()  # outputs as paths relative to the (shared) folder
    prefix = join(out_root, "") if same else ""
    for key, path in entries:
        item = {"key": key, "input": path}
        if output is not None:
            item["output"] = out = output.path(out_root, key)
            if same:
                if key in made:
                    continue
                if len(made) > 1 << 20:
                    made.clear()
                made.add(out[len(prefix) :])
        yield item


def dataset_items(dataset: Any) -> Iterator[Item]:
    """A map-style dataset's items: its indices."""
    return ({"key": str(i), "index": i} for i in range(len(dataset)))
