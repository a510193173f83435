"""Batches for TorchTasks: load, collate, infer, postprocess, with failures per item.

Shared by the torch backbone (which pipelines the steps) and by TorchTasks on
the mp backbone (which runs them in sequence inside each worker). A file that
fails to load fails only its item; an inference that fails on a batch is
retried item by item to find the bad ones.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any

from launcher.task import Item, TorchTask

Failure = tuple[str, str, str]  # error type, message, traceback


def failure(exc: BaseException) -> Failure:
    return type(exc).__name__, str(exc), "".join(traceback.format_exception(exc))


@dataclass
class Loaded:
    """A collated batch plus the items that made it and the items that failed to load."""

    batch: dict[str, Any]
    items: list[Item]
    failed: list[tuple[Item, Failure]] = field(default_factory=list)


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
    """Stack tensors of equal shape, keep every other field as a list; set load failures aside."""
    import torch
    from torch.utils.data import default_collate

    ok = [s for s in samples if not isinstance(s, _LoadFailed)]
    failed = [(s.item, s.failure) for s in samples if isinstance(s, _LoadFailed)]
    batch: dict[str, Any] = {}
    for key in ok[0][1] if ok else ():
        values = [sample[key] for _, sample in ok]
        first = values[0]
        if isinstance(first, torch.Tensor) and all(v.shape == first.shape for v in values):
            batch[key] = default_collate(values)
        else:
            batch[key] = values
    return Loaded(batch, [item for item, _ in ok], failed)


def batch_size_of(batch: dict[str, Any]) -> int:
    return len(next(iter(batch.values()))) if batch else 0


def slice_batch(batch: dict[str, Any], i: int) -> dict[str, Any]:
    return {k: v[i : i + 1] for k, v in batch.items()}


def item_kwargs(batch: dict[str, Any], results: Any, i: int) -> dict[str, Any]:
    """Item ``i``'s fields and results, as kagurazaka's ``postprocess_each`` receives them."""
    out = {k: v[i] for k, v in batch.items()}
    if isinstance(results, dict):
        out.update({k: v[i] for k, v in results.items()})
    else:
        out["result"] = results[i]
    return out


def step_kind(task: TorchTask) -> str:
    """Which of the three process options the task implements."""
    cls = type(task)
    if cls.process is not TorchTask.process:
        return "process"
    if cls.postprocess is not TorchTask.postprocess:
        return "postprocess"
    return "postprocess_each"


def to_device(batch: dict[str, Any], device: Any, non_blocking: bool) -> dict[str, Any]:
    import torch

    return {
        k: v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v
        for k, v in batch.items()
    }


def infer(
    task: TorchTask, device: Any, batch: dict[str, Any], kind: str
) -> tuple[list[tuple[int, Any]], list[tuple[int, Failure]]]:
    """Run the model step; on error retry item by item.

    Returns ``(ok, failed)``: ``ok`` holds ``(first position, results)`` groups
    still to postprocess (for ``process`` they are already done, results None).
    """
    n = batch_size_of(batch)
    try:
        return [(0, _step(task, device, batch, n, kind))], []
    except Exception as exc:  # noqa: BLE001 - find the bad item(s)
        if n == 1:
            return [], [(0, failure(exc))]
    ok, failed = [], []
    for i in range(n):
        try:
            ok.append((i, _step(task, device, slice_batch(batch, i), 1, kind)))
        except Exception as exc:  # noqa: BLE001
            failed.append((i, failure(exc)))
    return ok, failed


def _step(task: TorchTask, device: Any, batch: dict[str, Any], n: int, kind: str) -> Any:
    if kind == "process":
        task.process(device, batch)
        return None
    return task.inference(device, n, **batch)


def postprocess(
    task: TorchTask, batch: dict[str, Any], start: int, results: Any, kind: str, n: int
) -> list[tuple[int, Failure]]:
    """Postprocess a group of ``n`` items starting at ``start``; per-item failures."""
    if kind == "process":
        return []
    part = {k: v[start : start + n] for k, v in batch.items()}
    if kind == "postprocess":
        try:
            task.postprocess(n, results, **part)
        except Exception as exc:  # noqa: BLE001 - the batch is one unit for the task
            return [(start + i, failure(exc)) for i in range(n)]
        return []
    failed = []
    for i in range(n):
        try:
            task.postprocess_each(i, n, **item_kwargs(part, results, i))
        except Exception as exc:  # noqa: BLE001
            failed.append((start + i, failure(exc)))
    return failed


def run_step(
    task: TorchTask, device: Any, batch: dict[str, Any], kind: str
) -> list[tuple[int, Failure]]:
    """Infer and postprocess one collated batch in this thread; failures by batch position."""
    groups, failed = infer(task, device, batch, kind)
    whole = len(groups) == 1 and not failed
    for start, results in groups:
        n = batch_size_of(batch) if whole else 1
        failed += postprocess(task, batch, start, results, kind, n)
    return failed


def run_batches(
    task: TorchTask, device: Any, items: list[Item], batch_size: int
) -> list[tuple[int, Failure]]:
    """The mp backbone's path: load, collate and step through ``items`` in batches."""
    import torch

    kind = step_kind(task)
    dataset = ItemDataset(task, task.get_dataset())
    failed: list[tuple[int, Failure]] = []
    with torch.inference_mode():
        for start in range(0, len(items), batch_size):
            samples = [dataset[item] for item in items[start : start + batch_size]]
            loaded_at = []
            for pos, sample in enumerate(samples, start):
                if isinstance(sample, _LoadFailed):
                    failed.append((pos, sample.failure))
                else:
                    loaded_at.append(pos)
            if loaded_at:
                loaded = collate([s for s in samples if not isinstance(s, _LoadFailed)])
                failed += [(loaded_at[i], f) for i, f in run_step(task, device, loaded.batch, kind)]
    return failed
