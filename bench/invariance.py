"""T2-inv: what the embed task's batch invariance costs, model calls only.

The ``embed`` task with ``task.batch_invariant=true`` runs each document at its
length rounded up to 16 tokens, one model call per length in a batch, so that a
document's vector never depends on its batch-mates
(``launcher/examples/embed.py``). sentence-transformers, and the task by
default, pad a batch to its longest document and make one call. Both run here
on the same batches (the documents tokenized once, untimed, cut as the torch
backbone cuts them: windows of 32 batches sorted by size, largest first), on
one thread so that the figure is the model's CPU time (``time.thread_time``)
and no other process's threads can stretch it; the ratio is the invariance's
price.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench.harness import Sample

BATCH = 16  # the torch backbone's default


class Batches:
    """The documents of ``docs`` tokenized, in the torch backbone's size-grouped batches."""

    def __init__(self, docs: str, n: int) -> None:
        import torch

        from launcher.backbones.grouping import WINDOW_BATCHES
        from launcher.examples.embed import EmbedTask

        with open(docs, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f][:n]
        self.task = EmbedTask(jsonl=docs, batch_invariant=True)
        self.task.load_model(torch.device("cpu"))
        loaded = [self.task.load_data(key=r["id"], text=r["text"]) for r in rows]
        window = BATCH * WINDOW_BATCHES
        self.batches = []
        for start in range(0, len(rows), window):
            span = range(start, min(start + window, len(rows)))
            order = sorted(span, key=lambda i: len(rows[i]["text"]), reverse=True)
            for b in range(0, len(order), BATCH):
                idx = order[b : b + BATCH]
                ids = torch.stack([loaded[i]["input_ids"] for i in idx])
                self.batches.append((ids, torch.stack([loaded[i]["length"] for i in idx])))

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return iter(self.batches)


def invariant(batches: Batches) -> None:
    """The task's own ``inference``, batch-invariant."""
    for ids, length in batches:
        batches.task.inference(None, len(ids), ids, length)


def longest(batches: Batches) -> None:
    """sentence-transformers' way: pad to the batch's longest, one call, a 2-D mask."""
    import torch

    for ids, length in batches:
        n = int(length.max())
        mask = torch.arange(n)[None, :] < length[:, None]
        tokens = batches.task.model(input_ids=ids[:, :n], attention_mask=mask.long())
        weights = mask.unsqueeze(-1).float()
        summed = (tokens.last_hidden_state * weights).sum(dim=1) / weights.sum(dim=1)
        torch.nn.functional.normalize(summed, p=2, dim=1)


def contender(run: Callable[[Batches], None], docs: str, n: int) -> Callable:
    def prepare() -> Callable[[], Sample]:
        import torch

        batches = Batches(docs, n)

        def sample() -> Sample:
            before = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                with torch.inference_mode():
                    t0 = time.thread_time()
                    run(batches)
                    return Sample(time.thread_time() - t0, {"docs": n})
            finally:
                torch.set_num_threads(before)

        return sample

    return prepare
