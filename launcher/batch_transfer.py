"""How a collated batch leaves a DataLoader worker: small tensors inside the message.

A tensor a worker sends is pickled through shared memory: a segment per
tensor, whose file descriptor the model's process then fetches over a socket
from a thread of the worker, a round trip that waits for the worker's GIL.
For a small tensor that costs far more than its bytes (bench/README.md, T1a),
so tensors up to :data:`INLINE_BYTES` travel as bytes in the message, and are
stacked in ordinary memory; bigger ones keep shared memory, which copies
nothing more.
"""

from __future__ import annotations

from typing import Any

INLINE_BYTES = 1 << 18  # under where shared memory starts to win (bench/README.md, T1a)


def stack(values: list[Any]) -> Any:
    """Stack tensors of one shape into a batch: in ordinary memory when the batch will travel
    inline, else as ``default_collate`` does (into shared memory, in a worker)."""
    import torch
    from torch.utils.data import default_collate

    first = values[0]
    if first.element_size() * first.numel() * len(values) <= INLINE_BYTES:
        return torch.stack(values)
    return default_collate(values)


def _plain(value: Any) -> bool:
    """A dense CPU tensor of at most :data:`INLINE_BYTES`, nothing attached to it."""
    import torch

    return (
        type(value) is torch.Tensor
        and value.layout == torch.strided
        and value.device.type == "cpu"
        and 0 < value.element_size() * value.numel() <= INLINE_BYTES
        and not (value.requires_grad or value.is_quantized or value.is_conj() or value.is_neg())
    )


class _Inline:
    """A tensor that pickles as its bytes, rebuilt by :func:`_tensor` on the other side."""

    __slots__ = ("tensor",)

    def __init__(self, tensor: Any) -> None:
        self.tensor = tensor

    def __reduce__(self) -> tuple[Any, tuple[bytearray, Any, tuple[int, ...]]]:
        import torch

        t = self.tensor
        data = bytearray(t.element_size() * t.numel())
        torch.frombuffer(data, dtype=torch.uint8).copy_(t.reshape(-1).view(torch.uint8))
        return _tensor, (data, t.dtype, tuple(t.shape))


def _tensor(data: bytearray, dtype: Any, shape: tuple[int, ...]) -> Any:
    import torch

    return torch.frombuffer(data, dtype=torch.uint8).view(dtype).reshape(shape)


def _inline(value: Any) -> Any:
    if _plain(value):
        return _Inline(value)
    if isinstance(value, list):
        return [_Inline(v) if _plain(v) else v for v in value]
    return value


def for_transfer(batch: dict[str, Any]) -> dict[str, Any]:
    """``batch`` with its small tensors (and those in a list field) pickling as bytes."""
    return {key: _inline(value) for key, value in batch.items()}
