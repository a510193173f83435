"""Batches for TorchTasks: load, collate, infer, postprocess, with failures per item.

Shared by the torch backbone (which pipelines the steps) and by TorchTasks on
the mp backbone (which runs them in sequence inside each worker). A file that
fails to load fails only its item; an inference that fails on a batch is
retried item by item to find the bad ones.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Any

from launcher import transient_errors
from launcher.batch_transfer import for_transfer, stack
from launcher.task import Item, TorchTask, batch_size_of, item_kwargs

Failure = tuple[str, str, str]  # error type, message, traceback


def failure(exc: BaseException) -> Failure:
    return type(exc).__name__, str(exc), "".join(traceback.format_exception(exc))


@dataclass
class Loaded:
    """The collated batches a sampler's batch became, plus the items that failed to load.

    Usually one batch; samples whose fields differ from their batch-mates' form
    batches of their own (``parts``: items and their collated batch).
    """

    parts: list[tuple[list[Item], dict[str, Any]]]
    failed: list[tuple[Item, Failure]] = field(default_factory=list)
    transient_errors: int = 0  # the object store's, met by the worker that loaded it

    @property
    def items(self) -> list[Item]:
        return [item for items, _ in self.parts for item in items]

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickled only to leave a DataLoader worker: small tensors go inside the message,
        with the worker's transient storage errors since its last batch."""
        parts = [(items, for_transfer(batch)) for items, batch in self.parts]
        return Loaded, (parts, self.failed, transient_errors.take())

    def pin_memory(self) -> Loaded:
        """The same batches in page-locked memory (what a DataLoader with ``pin_memory=True``
        calls, in its pinning thread), so that their copies to a GPU run asynchronously."""
        parts = [(items, _pinned(batch)) for items, batch in self.parts]
        return Loaded(parts, self.failed, self.transient_errors)


def _pinned(batch: dict[str, Any]) -> dict[str, Any]:
    """``batch`` with its tensors, and those in list fields, pinned; other fields as they are."""
    from torch import Tensor

    def pin(value: Any) -> Any:
        return value.pin_memory() if isinstance(value, Tensor) else value

    return {
        key: [pin(v) for v in value] if isinstance(value, list) else pin(value)
        for key, value in batch.items()
    }


class _LoadFailed:
    def __init__(self, item: Item, exc: BaseException) -> None:
        self.item = item
        self.failure = failure(exc)


class ItemDataset:
    """Map-style dataset indexed by item dicts (fed by a batch sampler over the plan)."""

    def __init__(self, task: TorchTask, dataset: Any = None) -> None:
        self.task = task
        self.dataset = dataset

    def __getitem__(self, item: Item) -> tuple[Item, dict[str, Any]] | _LoadFailed:
        try:
            if self.dataset is not None:
                return item, {**self.dataset[item["index"]], **item}
            return item, {**item, **self.task.load_data(**item)}
        except Exception as exc:  # noqa: BLE001 - the item fails alone
            return _LoadFailed(item, exc)


def collate(samples: list[tuple[Item, dict[str, Any]] | _LoadFailed]) -> Loaded:
    """Stack tensors of equal shape, keep every other field as a list; set load failures
    aside. Samples with the same fields are collated together, in order of appearance."""
    ok = [s for s in samples if type(s) is not _LoadFailed]
    failed = [(s.item, s.failure) for s in samples if type(s) is _LoadFailed]
    if not ok:
        return Loaded([], failed)
    items, fields = map(list, zip(*ok, strict=True))
    if all(map(fields[0].keys().__eq__, map(dict.keys, fields))):
        return Loaded([(items, _collate_fields(fields))], failed)
    by_fields: dict[frozenset[str], list[tuple[Item, dict[str, Any]]]] = {}
    for s in ok:
        by_fields.setdefault(frozenset(s[1]), []).append(s)
    parts = [
        ([item for item, _ in group], _collate_fields([sample for _, sample in group]))
        for group in by_fields.values()
    ]
    return Loaded(parts, failed)


def _collate_fields(samples: list[dict[str, Any]]) -> dict[str, Any]:
    import torch

    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = list(map(itemgetter(key), samples))
        batch[key] = values
        if isinstance(values[0], torch.Tensor) and all(
            map(isinstance, values, repeat(torch.Tensor))
        ):
            try:
                batch[key] = stack(values)
            except RuntimeError:
                if len({v.shape for v in values}) == 1:
                    raise  # not the shapes: a real error
    return batch


def batch_of_one(batch: dict[str, Any], i: int, device: Any) -> dict[str, Any]:
    """Item ``i`` of a collated batch as :func:`collate` makes a batch of that item alone:
    a tensor kept in a list (its batch-mates had other shapes) is stacked too."""
    import torch

    return {
        k: v[i].unsqueeze(0).to(device)
        if isinstance(v, list) and isinstance(v[i], torch.Tensor)
        else v[i : i + 1]
        for k, v in batch.items()
    }


class ItemTimeout(Exception):  # noqa: N818 - the name failures.jsonl shows, as on mp
    """A model step ran over ``run.item_timeout_s`` per item."""


class ResultCountError(ValueError):
    """``inference`` returned more or fewer results than the batch has items."""


def check_result_count(task: TorchTask, results: Any, n: int) -> None:
    """Refuse results that do not have one entry per item: matched by position, they
    would land on the wrong items."""
    values = results.items() if isinstance(results, dict) else [("", results)]
    for name, value in values:
        try:
            count = len(value)
        except TypeError:
            continue  # not a sequence: postprocessing says what is wrong with it
        if count != n:
            field_name = f"[{name!r}]" if name else ""
            raise ResultCountError(
                f"{type(task).__name__}.inference returned {count} result(s){field_name} for a "
                f"batch of {n} item(s); it must return one per item along dim 0 (a tensor, a "
                "list, or a dict of them), so the batch's items are failed rather than given "
                "another item's result."
            )


def to_device(batch: dict[str, Any], device: Any, non_blocking: bool) -> dict[str, Any]:
    import torch

    return {
        k: v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v
        for k, v in batch.items()
    }


Group = tuple[list[int], dict[str, Any], Any]  # batch positions, their collated batch, results
Limit = Callable[[int], AbstractContextManager]  # a time limit for a step over n items


def infer(
    task: TorchTask, device: Any, batch: dict[str, Any], kind: str, limit: Limit | None = None
) -> tuple[list[Group], list[tuple[int, Failure]]]:
    """Run the model step; on error (or over ``limit``) retry item by item, each as a
    collated batch of one.

    Returns ``(ok, failed)``: ``ok`` holds the groups still to postprocess (for
    ``process`` they are already done, results None); failures by batch position.
    """
    n = batch_size_of(batch)
    timed = limit or (lambda n: nullcontext())
    try:
        with timed(n):
            return [(list(range(n)), batch, _step(task, device, batch, n, kind))], []
    except ResultCountError as exc:  # the task's contract, not one bad item
        return [], [(i, failure(exc)) for i in range(n)]
    except Exception as exc:  # noqa: BLE001 - find the bad item(s)
        if n == 1:
            return [], [(0, failure(exc))]
    ok, failed = [], []
    for i in range(n):
        one = batch_of_one(batch, i, device)
        try:
            with timed(1):
                ok.append(([i], one, _step(task, device, one, 1, kind)))
        except Exception as exc:  # noqa: BLE001
            failed.append((i, failure(exc)))
    return ok, failed


def _step(task: TorchTask, device: Any, batch: dict[str, Any], n: int, kind: str) -> Any:
    if kind == "process":
        task.process(device, batch)
        return None
    results = task.inference(device, n, **batch)
    check_result_count(task, results, n)
    return results


def postprocess(
    task: TorchTask, batch: dict[str, Any], results: Any, kind: str
) -> list[tuple[int, Failure]]:
    """Postprocess one group's batch; per-item failures by position in that batch."""
    if kind == "process":
        return []
    n = batch_size_of(batch)
    if kind == "postprocess":
        try:
            task.postprocess(n, results, **batch)
        except Exception as exc:  # noqa: BLE001 - the batch is one unit for the task
            return [(i, failure(exc)) for i in range(n)]
        return []
    failed = []
    for i in range(n):
        try:
            task.postprocess_each(i, n, **item_kwargs(batch, results, i))
        except Exception as exc:  # noqa: BLE001
            failed.append((i, failure(exc)))
    return failed


def run_step(
    task: TorchTask, device: Any, batch: dict[str, Any], kind: str
) -> list[tuple[int, Failure]]:
    """Infer and postprocess one collated batch in this thread; failures by batch position."""
    groups, failed = infer(task, device, batch, kind)
    for positions, part, results in groups:
        failed += [(positions[i], f) for i, f in postprocess(task, part, results, kind)]
    return failed


def run_batches(
    task: TorchTask,
    device: Any,
    items: list[Item],
    batch_size: int,
    kind: str,
    mark: Callable[[int], None] | None = None,
) -> list[tuple[int, Failure]]:
    """The mp backbone's path: load, collate and step through ``items`` in batches,
    each with the task's ``kind`` of step (``Capabilities.step``).

    ``mark`` (the mp worker's status slot) hears the position of each item as it
    loads and -1 as a model step starts: a hang or a crash is then blamed on the
    item loading, or on the batch in its step (whose items the mp backbone then
    tries one by one), never on the batch's first item.
    """
    import torch

    dataset = ItemDataset(task, task.get_dataset())
    failed: list[tuple[int, Failure]] = []
    note = mark or (lambda offset: None)
    with torch.inference_mode():
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            at = {id(item): pos for pos, item in enumerate(chunk, start)}
            samples = []
            for pos, item in enumerate(chunk, start):
                note(pos)
                samples.append(dataset[item])
            note(-1)
            loaded = collate(samples)
            failed += [(at[id(item)], f) for item, f in loaded.failed]
            for part_items, batch in loaded.parts:
                failed += [
                    (at[id(part_items[i])], f) for i, f in run_step(task, device, batch, kind)
                ]
    failed.sort(key=lambda pf: pf[0])
    return failed
