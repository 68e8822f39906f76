"""Batches to the training device, copied ahead of the step.

:class:`DevicePlan` resolves ``device``, ``pin_memory`` and ``prefetch_to_device`` once.
:class:`DevicePrefetcher` wraps a batch iterator: it keeps the next ``depth`` batches in
flight to the device while the loop works on the current one.

On CUDA the copies run on a side stream, from pinned host memory with ``non_blocking=True``:

- before a batch is handed out, the loop's current stream waits for the event recorded
  after its copy (``wait_event``), so kernels never read a half-copied tensor;
- every device tensor is ``record_stream``-ed on the current stream, so the caching
  allocator does not reuse its memory (allocated on the side stream) while the step's
  kernels still use it;
- the pinned host batch is kept alive until its copy's event has completed.

On the CPU (or any other device) the same queue runs with plain ``.to(device)`` moves, so
the behaviour the loop sees, including what ``state_dict()`` counts, is the same.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from loader.structure import map_values

__all__ = ["DevicePlan", "DevicePrefetcher", "move_to", "pin"]

logger = logging.getLogger(__name__)

DEFAULT_PREFETCH = 2


def _accelerator_available() -> bool:
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None:
        return bool(accelerator.is_available())
    return torch.cuda.is_available()


@dataclass(frozen=True)
class DevicePlan:
    """Where batches go and how: resolved and validated once, when the loader is made.

    ``device`` None keeps batches on the host (CPU tensors). ``pin_memory`` defaults to True
    for CUDA and is dropped, with a log line, where no accelerator exists to pin for.
    ``prefetch`` is how many batches are copied ahead (0: copied when delivered).
    """

    device: torch.device | None
    pin_memory: bool
    prefetch: int

    @classmethod
    def resolve(
        cls,
        device: str | torch.device | None,
        pin_memory: bool | None,
        prefetch_to_device: int | None,
    ) -> DevicePlan:
        target = _device(device)
        if prefetch_to_device is not None and prefetch_to_device < 0:
            raise ValueError(f"prefetch_to_device must be >= 0 batches, got {prefetch_to_device}")
        if target is None and prefetch_to_device:
            raise ValueError(
                f"prefetch_to_device={prefetch_to_device} needs device= (e.g. device='cuda')"
            )
        prefetch = 0 if target is None else DEFAULT_PREFETCH
        if prefetch_to_device is not None:
            prefetch = prefetch_to_device
        on_cuda = target is not None and target.type == "cuda"
        pin = on_cuda if pin_memory is None else pin_memory
        if pin and not _accelerator_available():
            logger.info("pin_memory=True ignored: no accelerator here, batches stay plain tensors")
            pin = False
        return cls(target, pin, prefetch)


def _device(device: str | torch.device | None) -> torch.device | None:
    if device is None:
        return None
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a torch device ({exc})") from None
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} but CUDA is not available to this torch "
            f"({torch.__version__}); pass device='cpu', or install a CUDA build of torch"
        )
    return target


def move_to(batch: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Tensors in ``batch`` (dicts, tuples, lists) moved to ``device``; the rest unchanged."""

    def moved(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.to(device, non_blocking=non_blocking)
        if isinstance(value, list) and any(isinstance(v, torch.Tensor) for v in value):
            return [move_to(v, device, non_blocking) for v in value]
        return value

    return map_values(moved, batch)


def pin(batch: Any) -> Any:
    """CPU tensors in ``batch`` (dicts, tuples, lists) copied into pinned memory."""
    return map_values(_pinned, batch)


def _pinned(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.pin_memory() if value.device.type == "cpu" else value
    if isinstance(value, list):
        return [pin(v) for v in value]
    return value


def _tensors(batch: Any) -> Iterator[torch.Tensor]:
    if isinstance(batch, torch.Tensor):
        yield batch
    elif isinstance(batch, dict):
        for value in batch.values():
            yield from _tensors(value)
    elif isinstance(batch, (tuple, list)):
        for value in batch:
            yield from _tensors(value)


@dataclass
class _InFlight:
    """A batch on its way: the host batch (kept alive), its device copy, the copy's event."""

    host: Any
    moved: Any
    event: Any = None  # torch.cuda.Event on CUDA


class DevicePrefetcher(Iterator[Any]):
    """Hands out ``source``'s batches on ``device`` with ``depth`` more already in flight."""

    def __init__(self, source: Iterator[Any], device: torch.device, depth: int) -> None:
        if depth < 1:
            raise ValueError(f"a prefetcher keeps at least 1 batch in flight, got {depth}")
        self._source = source
        self._device = device
        self._depth = depth
        self._stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self._queue: deque[_InFlight] = deque()
        self._retired: deque[_InFlight] = deque()
        self._exhausted = False
        self.pulled = 0  # batches taken from the source (delivered + in flight)

    @property
    def in_flight(self) -> int:
        return len(self._queue)

    def _fill(self) -> None:
        while not self._exhausted and len(self._queue) < self._depth:
            try:
                host = next(self._source)
            except StopIteration:
                self._exhausted = True
                return
            self.pulled += 1
            self._queue.append(self._launch(host))

    def _launch(self, host: Any) -> _InFlight:
        if self._stream is None:
            return _InFlight(host, move_to(host, self._device))
        with torch.cuda.stream(self._stream):
            moved = move_to(host, self._device, non_blocking=True)
            event = torch.cuda.Event()
            event.record(self._stream)
        return _InFlight(host, moved, event)

    def _hand_over(self, entry: _InFlight) -> Any:
        if entry.event is None:
            return entry.moved
        current = torch.cuda.current_stream(self._device)
        current.wait_event(entry.event)
        for tensor in _tensors(entry.moved):
            if tensor.device.type == "cuda":
                tensor.record_stream(current)
        while self._retired and self._retired[0].event.query():
            self._retired.popleft()  # copy done: the pinned host batch may be freed
        self._retired.append(_InFlight(entry.host, None, entry.event))
        return entry.moved

    def __next__(self) -> Any:
        self._fill()
        if not self._queue:
            raise StopIteration
        entry = self._queue.popleft()
        batch = self._hand_over(entry)
        self._fill()  # start the next copy while the loop works on this batch
        return batch
