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

from itertools import repeat
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


def _plain(tensor: Any) -> bool:
    """A dense CPU tensor of at most :data:`INLINE_BYTES`, nothing attached to it."""
    import torch

    return (
        tensor.layout == torch.strided
        and tensor.device.type == "cpu"
        and 0 < tensor.element_size() * tensor.numel() <= INLINE_BYTES
        and not (tensor.requires_grad or tensor.is_quantized or tensor.is_conj() or tensor.is_neg())
    )


class _Inline:
    """A tensor that pickles as its bytes, rebuilt by :func:`_tensor` on the other side."""

    __slots__ = ("tensor",)

    def __init__(self, tensor: Any) -> None:
        self.tensor = tensor

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        import torch

        t = self.tensor
        data = bytearray(t.element_size() * t.numel())
        try:
            torch.frombuffer(data, dtype=t.dtype).reshape(t.shape).copy_(t)
        except (RuntimeError, TypeError, ValueError):
            # a dtype bytes cannot hold: the tensor's own pickling (an error here, in the
            # queue's feeder thread, would lose the batch and leave the model waiting)
            return _same, (t,)
        return _tensor, (data, t.dtype, tuple(t.shape))


def _same(tensor: Any) -> Any:
    return tensor


def _tensor(data: bytearray, dtype: Any, shape: tuple[int, ...]) -> Any:
    import torch

    return torch.frombuffer(data, dtype=dtype).reshape(shape)


def _inline(tensor: Any) -> Any:
    return _Inline(tensor) if _plain(tensor) else tensor


def for_transfer(batch: dict[str, Any]) -> dict[str, Any]:
    """``batch`` with its small tensors (and those in a list field) pickling as bytes; a
    tensor subclass keeps its own pickling."""
    from torch import Tensor

    out = {}
    for key, value in batch.items():
        if type(value) is Tensor:
            value = _inline(value)
        elif isinstance(value, list) and any(map(isinstance, value, repeat(Tensor))):
            value = [_inline(v) if type(v) is Tensor else v for v in value]
        out[key] = value
    return out
