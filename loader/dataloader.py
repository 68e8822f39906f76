"""StreamingDataLoader: a torch DataLoader that knows where the run is (glue only).

``state_dict()`` counts the batches DELIVERED to the training loop, not those prefetched by
workers or copied ahead to the device, so a checkpoint taken after step ``k`` resumes at step
``k + 1`` exactly, on any number of ranks and workers. By default the loader takes the batch
fast path: workers read whole batches (one vectorized gather per column), apply the
transforms (:mod:`loader.transforms`) and hand over numpy arrays, which become tensors in
the loop's process. In DataLoader workers, consecutive batches of a worker travel together
(up to about 4 MiB, at most 16 per hand-off, sized on the worker's first batch), so the
fixed cost of a hand-off is shared; the loop's process puts them back in step order, and
counts each batch as it is delivered. Passing a
``collate_fn`` switches to the per-sample path, whose ``collate_fn`` receives a list of
samples as with any DataLoader. ``device=`` moves batches to the training device, the next
``prefetch_to_device`` of them ahead of the step (:mod:`loader.device`); :meth:`stats`
says how long the loop waited for data (:mod:`loader.stats`).
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, NamedTuple

import torch
from torch.utils.data import DataLoader, IterableDataset

from loader.dataset import StreamingDataset
from loader.device import DevicePlan, DevicePrefetcher, move_to, pin
from loader.order.partition import EpochPartition
from loader.stats import LoaderStats, StatsRecorder
from loader.transforms import BatchTransforms, FieldSpec, check_picklable, to_numpy, to_torch
from loader.transport import SlabSet

__all__ = ["StreamingDataLoader"]

logger = logging.getLogger(__name__)


class _Shipment(NamedTuple):
    """A batch on its way to the loop, with the I/O its worker did for it (a delta)."""

    batch: Any
    io: dict[str, int] | None


class _Group(NamedTuple):
    """Consecutive batches of one worker in one hand-off: its batches ``first``,
    ``first + 1``, ... (the worker's own count), which are the rank's steps
    ``worker + (first + i) * workers``."""

    worker: int
    first: int
    batches: list[Any]
    io: dict[str, int] | None


# One hand-off carries batches up to about this many bytes (at most _GROUP_MAX of them), so
# the fixed cost of a DataLoader hand-off is shared by many small batches; large batches
# travel one by one.
_GROUP_BYTES = 4 << 20
_GROUP_MAX = 16


class _BatchView(IterableDataset[Any]):
    """The dataset seen batch by batch, transformed; in DataLoader workers, grouped into
    hand-offs (:class:`_Group`). Attribute access falls through to the dataset."""

    def __init__(self, dataset: StreamingDataset, transforms: BatchTransforms) -> None:
        self.dataset = dataset
        self.transforms = transforms

    def _shipments(self) -> Iterator[_Shipment]:
        before = self.dataset.io_counters()
        for read in self.dataset.iter_batches():
            after = self.dataset.io_counters()
            batch = self.transforms(read) if self.transforms else read
            yield _Shipment(batch, {k: v - before.get(k, 0) for k, v in after.items()})
            before = after

    def __iter__(self) -> Iterator[Any]:
        info = torch.utils.data.get_worker_info()
        if info is None:
            yield from self._shipments()
            return
        group: list[_Shipment] = []
        first, limit = 0, 1
        for shipment in self._shipments():
            if first == 0 and not group:  # the first batch sizes the hand-offs
                limit = max(1, min(_GROUP_MAX, _GROUP_BYTES // max(1, _nbytes(shipment.batch))))
            group.append(shipment)
            if len(group) == limit:
                yield _group(info.id, first, group)
                first, group = first + len(group), []
        if group:
            yield _group(info.id, first, group)

    def __len__(self) -> int:
        return self.dataset.partition().num_steps

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":  # not yet set (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)


def _group(worker: int, first: int, shipments: list[_Shipment]) -> _Group:
    io: dict[str, int] = {}
    for s in shipments:
        for k, v in (s.io or {}).items():
            io[k] = io.get(k, 0) + v
    return _Group(worker, first, [s.batch for s in shipments], io)


def _nbytes(value: Any) -> int:
    """About how many bytes a batch holds (arrays, tensors, bytes and strings)."""
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v) for v in value)
    if isinstance(value, (bytes, str, memoryview)):
        return len(value)
    nbytes = getattr(value, "nbytes", None)
    return int(nbytes) if isinstance(nbytes, int) else 0


def _in_step_order(groups: Iterator[Any], workers: int) -> Iterator[_Shipment]:
    """The rank's batches in step order, from its workers' groups in any order. DataLoader
    takes the workers' hand-offs round-robin, so only a few groups wait here at a time."""
    waiting: dict[int, _Shipment] = {}
    step = 0
    for group in groups:
        for i, batch in enumerate(group.batches):
            waiting[group.worker + (group.first + i) * workers] = _Shipment(
                batch, group.io if i == 0 else None
            )
        while step in waiting:
            yield waiting.pop(step)
            step += 1
    if waiting:
        raise RuntimeError(
            f"DataLoader workers delivered steps {sorted(waiting)[:5]} but never step {step}: "
            "a worker stopped early"
        )


@dataclass(frozen=True)
class _WorkerStep:
    """The collate_fn of the batch path. In DataLoader workers it lays a hand-off out in the
    worker's shared-memory slabs (:mod:`loader.transport`); only a small header crosses the
    pipe, and tensors are made in the loop's process, zero-copy. Without workers the batch
    stays in this process (as tensors when pinning: torch pins them)."""

    slabs: SlabSet | None  # None: no workers
    tensors: bool = False

    def __call__(self, item: Any) -> Any:
        info = torch.utils.data.get_worker_info()
        if isinstance(item, _Group):
            if self.slabs is not None and info is not None:
                packed: Any = self.slabs.pack(item.batches, info.id)
                return item._replace(batches=packed)
            return item
        return _Shipment(to_torch(item.batch) if self.tensors else item.batch, item.io)


@dataclass
class _Delivery:
    """The epoch the training loop is in and how many batches it has received."""

    epoch: int
    partition: EpochPartition
    delivered: int = 0


def _start_method(context: Any) -> str:
    if context is None:
        method = multiprocessing.get_start_method(allow_none=True)
        return method or multiprocessing.get_all_start_methods()[0]
    return context if isinstance(context, str) else str(context.get_start_method())


class StreamingDataLoader(DataLoader[Any]):
    """A DataLoader over a :class:`StreamingDataset` with ``state_dict``/``load_state_dict``.

    Each ``iter()`` is one epoch of the dataset (resumed where a loaded state says).
    ``batch_size`` is per rank and must match the dataset's (it is adopted if the dataset has
    none). Other keyword arguments are DataLoader's.

    Args:
        fields: :class:`FieldSpec` column transforms, applied in the workers.
        batch_transform: ``f(batch) -> batch`` after the column transforms, in the workers.
        device: deliver tensors on this device (``"cuda"``, ``"cpu"``, a ``torch.device``);
            None leaves them on the host.
        pin_memory: pin host batches (default: True for CUDA; ignored without accelerator).
        prefetch_to_device: batches copied to ``device`` ahead of the step (default 2; on
            CUDA on a side stream). Never counted by ``state_dict()`` until delivered.
        output: ``"torch"`` (tensors) or ``"numpy"`` (numpy arrays, for JAX, TF or numpy
            loops; no tensors are made anywhere).
    """

    def __init__(
        self,
        dataset: StreamingDataset,
        batch_size: int | None = None,
        num_workers: int = 0,
        *,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        fields: Sequence[FieldSpec] | None = None,
        batch_transform: Callable[[Any], Any] | None = None,
        device: str | torch.device | None = None,
        pin_memory: bool | None = None,
        prefetch_to_device: int | None = None,
        output: Literal["torch", "numpy"] = "torch",
        **kwargs: Any,
    ) -> None:
        batch_size = self._check(dataset, batch_size, kwargs)
        if output not in ("torch", "numpy"):
            raise ValueError(f"output must be 'torch' or 'numpy', got {output!r}")
        if output == "numpy" and (device is not None or pin_memory or prefetch_to_device):
            raise ValueError(
                "output='numpy' makes no tensors: drop device=, pin_memory= and "
                "prefetch_to_device=, and move arrays in your framework"
            )
        transforms = BatchTransforms.of(fields, batch_transform)
        if collate_fn is not None and transforms:
            raise ValueError(
                "fields= and batch_transform= apply on the batch path; with a "
                "collate_fn, transform the samples in collate_fn instead"
            )
        if num_workers > 0 and kwargs.get("multiprocessing_context") is None:
            # Object-storage clients do not survive fork(): start such workers another way.
            kwargs["multiprocessing_context"] = dataset.multiprocessing_context
        context = kwargs.get("multiprocessing_context")
        if transforms and num_workers > 0 and _start_method(context) != "fork":
            check_picklable(transforms)
        self.streaming_dataset = dataset
        self.device_plan = DevicePlan.resolve(device, pin_memory, prefetch_to_device)
        self.output = output
        self._delivery: _Delivery | None = None
        self._worker_plan: tuple[int, int] | None = None
        self._stats = StatsRecorder()
        pin = self.device_plan.pin_memory
        self._slabs: SlabSet | None = None
        if collate_fn is None:
            shared = num_workers > 0  # batches cross through shared memory; pinned here after
            step: Any = _WorkerStep(None, tensors=pin and not shared)
            super().__init__(
                _BatchView(dataset, transforms), None, num_workers=num_workers, collate_fn=step,
                pin_memory=pin and not shared, **kwargs,
            )  # fmt: skip
        else:
            super().__init__(
                dataset, batch_size, num_workers=num_workers, collate_fn=collate_fn,
                pin_memory=pin, **kwargs,
            )  # fmt: skip

    @staticmethod
    def _check(dataset: StreamingDataset, batch_size: int | None, kwargs: dict[str, Any]) -> int:
        if not isinstance(dataset, StreamingDataset):
            raise TypeError(
                f"StreamingDataLoader needs a StreamingDataset, got {type(dataset).__name__}"
            )
        for name in ("sampler", "batch_sampler", "shuffle"):
            if kwargs.get(name):
                raise ValueError(f"{name}= does not apply: the dataset orders and shards itself")
        drop_last = kwargs.pop("drop_last", None)
        if drop_last is not None and drop_last != dataset.drop_last:
            raise ValueError(
                f"drop_last={drop_last} on the loader but {dataset.drop_last} on the dataset; "
                "pass drop_last to StreamingDataset, which pads or drops for every rank alike"
            )
        batch_size = batch_size or dataset.batch_size
        if batch_size is None:
            raise ValueError("pass batch_size= (samples per rank per step)")
        if dataset.batch_size is None:
            dataset.batch_size = batch_size
        elif dataset.batch_size != batch_size:
            raise ValueError(
                f"the loader's batch_size {batch_size} differs from the dataset's "
                f"{dataset.batch_size}; the dataset partitions by its batch size, so make them equal"
            )
        return batch_size

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        ds = self.streaming_dataset
        plan = (ds._epoch, ds._start)
        persistent = self.persistent_workers and self.num_workers > 0
        if persistent and self._iterator is not None and self._worker_plan != plan:
            self._iterator = None  # persistent workers hold a stale plan: start fresh ones
        if isinstance(self.collate_fn, _WorkerStep) and self.num_workers > 0:
            reused = persistent and self._iterator is not None  # the same workers: their slabs
            if not reused or self._slabs is None:
                if self._slabs is not None:
                    self._slabs.close()  # its views stay valid until dropped
                self._slabs = SlabSet(self.num_workers)
                self.collate_fn = replace(self.collate_fn, slabs=self._slabs)
        iterator = super().__iter__()
        if self.num_workers > 0:
            ds._epoch, ds._start = plan[0] + 1, 0  # mirror what each worker's copy just did
        self._worker_plan = (plan[0] + 1, 0)
        self._delivery = _Delivery(plan[0], ds.partition(plan[1]))
        self._stats = StatsRecorder()
        source = self._finished(iterator)
        target = self.device_plan
        if target.device is not None and target.prefetch > 0:
            source = DevicePrefetcher(source, target.device, target.prefetch)
        elif target.device is not None:
            source = (move_to(s, target.device, target.pin_memory) for s in source)
        return self._deliver(source, self._delivery, self._stats)

    def _finished(self, iterator: Iterator[Any]) -> Iterator[_Shipment]:
        """Batches as the loop will get them (still on the host), in step order, with their
        I/O."""
        if not isinstance(self.dataset, _BatchView):
            return (_Shipment(batch, None) for batch in iterator)
        if self.num_workers == 0:
            if self.output == "numpy":
                return (_Shipment(to_numpy(s.batch), s.io) for s in iterator)
            if self.device_plan.pin_memory:
                return iterator  # tensors made (and pinned) already
            return (_Shipment(to_torch(s.batch), s.io) for s in iterator)
        slabs = self._slabs
        assert slabs is not None
        groups = (g._replace(batches=slabs.unpack(g.batches)) for g in iterator)
        source = _in_step_order(groups, self.num_workers)
        if self.output == "numpy":
            return (_Shipment(to_numpy(s.batch), s.io) for s in source)
        if self.device_plan.pin_memory:
            return (_Shipment(pin(to_torch(s.batch)), s.io) for s in source)
        return (_Shipment(to_torch(s.batch), s.io) for s in source)

    @staticmethod
    def _deliver(
        source: Iterator[_Shipment], delivery: _Delivery, stats: StatsRecorder
    ) -> Iterator[Any]:
        samples = delivery.partition.batch_size
        try:
            while True:
                asked = stats.now()
                try:
                    shipment = next(source)
                except StopIteration:
                    return
                stats.record(stats.now() - asked, samples, shipment.io)
                delivery.delivered += 1
                yield shipment.batch
        finally:
            stats.finish()  # the epoch ended or the loop left it: rates stop changing

    def stats(self) -> LoaderStats:
        """Samples/s, the loop's wait for data (p50/p99) and I/O of the epoch in progress."""
        return self._stats.snapshot()

    def state_dict(self) -> dict[str, Any]:
        """Where the training loop is: batches delivered so far, as a resume state."""
        ds, delivery = self.streaming_dataset, self._delivery
        if delivery is None:
            return ds.state_dict()
        if delivery.delivered >= delivery.partition.num_steps:
            return ds.resume_state(delivery.epoch + 1, 0)
        return ds.resume_state(delivery.epoch, delivery.partition.consumed(delivery.delivered))

    def load_state_dict(self, obj: Mapping[str, Any]) -> None:
        """Resume at ``obj``; the next ``iter()`` continues there (this loader may be reused)."""
        self.streaming_dataset.load_state_dict(obj)
        self._delivery = None
