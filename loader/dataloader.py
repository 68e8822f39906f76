"""StreamingDataLoader: a torch DataLoader that knows where the run is (glue only).

``state_dict()`` counts the batches DELIVERED to the training loop, not those prefetched by
workers or copied ahead to the device, so a checkpoint taken after step ``k`` resumes at step
``k + 1`` exactly, on any number of ranks and workers. By default the loader takes the batch
fast path: workers read whole batches (one vectorized gather per column), apply the
transforms (:mod:`loader.transforms`) and hand over numpy arrays, which become tensors in
the loop's process. In DataLoader workers, consecutive batches of a worker travel together
(one in the first hand-off, then twice as many each time up to about 4 MiB or 16, sized on
the worker's first batch), so the fixed cost of a hand-off is shared; the loop's process
puts them back in step order, builds each batch as it is delivered and counts it then.
Before it forks new workers, the loop's process reads each one's first batch once, so they
inherit what that opened (a table's decoded row groups, mapped and checked shards), and it
forks them with its objects frozen (:mod:`loader.fork`), so their garbage collections do
not copy the pages it shares with them.
Batches no transform touches leave bytes columns in their raw shard files
(:mod:`loader.read.spans`): the loop's process maps those files and cuts the same views a
0-worker read returns, so those bytes never move. A dataset
whose class overrides ``__getitem__`` or ``get_item``, or a ``collate_fn``, switches to the
per-sample path (:mod:`loader.samples`): workers read each step's samples through the
dataset's ``__getitem__`` and collate them (``collate_fn``, or torch's default collation
with one writable copy per batch). Both paths hand batches over through shared memory
(:mod:`loader.transport`), in the same order, with the same ``state_dict``. ``device=``
moves batches to the training device, the next ``prefetch_to_device`` of them ahead of the
step (:mod:`loader.device`); :meth:`stats` says how long the loop waited for data
(:mod:`loader.stats`).
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Any, Literal, NamedTuple

import torch
from torch.utils.data import DataLoader, IterableDataset

from loader.dataset import StreamingDataset
from loader.device import DevicePlan, DevicePrefetcher, move_to, pin
from loader.fork import heap_frozen
from loader.order.partition import EpochPartition
from loader.samples import collate_samples, empty_like
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


@dataclass(frozen=True)
class _Prepare:
    """What a worker does to each step it reads: on the per-sample path the collation of the
    step's samples first, then the transforms."""

    transforms: BatchTransforms
    collate: Callable[[list[Any]], Any] | None = None  # the per-sample path: samples -> batch

    def __call__(self, read: Any) -> Any:
        batch = read
        if self.collate is not None:
            if isinstance(read, _NoRows):  # a batch like the others, without rows
                batch = empty_like(self.collate([read.probe]))
            else:
                batch = self.collate(read)
        return self.transforms(batch) if self.transforms else batch


class _BatchView(IterableDataset[Any]):
    """The dataset seen batch by batch, prepared; in DataLoader workers, grouped into
    hand-offs (:class:`_Group`). Attribute access falls through to the dataset."""

    def __init__(self, dataset: StreamingDataset, prepare: _Prepare) -> None:
        self.dataset = dataset
        self.prepare = prepare

    def _shipments(self, untouched: bool = False, plain: bool = False) -> Iterator[_Shipment]:
        """The batches prepared, with their I/O. ``untouched``: nothing transforms them before
        the hand-off, so bytes may stay in their shard files; ``plain``: the masks of columns
        without nulls are dropped (to_torch and to_numpy drop them anyway), and where no
        transform looks at them they are never made (a nullable image column's mask has one
        flag per element: making it and checking it cost more than copying the images)."""
        before = self.dataset.io_counters()
        for read in self._reads(untouched, plain and not self.prepare.transforms):
            batch = to_numpy(self.prepare(read)) if plain else self.prepare(read)
            after = self.dataset.io_counters()
            yield _Shipment(batch, {k: v - before.get(k, 0) for k, v in after.items()})
            before = after

    def __iter__(self) -> Iterator[Any]:
        info = torch.utils.data.get_worker_info()
        if info is None:
            yield from self._shipments(plain=self.prepare.collate is None)
            return
        group: list[_Shipment] = []
        first, size, limit = 0, 1, 1
        # Batches nothing is done to leave bytes columns in their shard files: the loop's
        # process maps those itself (loader.read.spans), so their bytes are never copied.
        untouched = not self.prepare.transforms and self.prepare.collate is None
        # On the batch path the loop makes tensors or numpy arrays, which drops the masks of
        # columns without nulls (to_torch, to_numpy): dropped here, they neither cross nor
        # are rebuilt as masked arrays in the loop's process.
        plain = self.prepare.collate is None
        for shipment in self._shipments(untouched=untouched, plain=plain):
            if first == 0 and not group:  # the first batch sizes the hand-offs
                limit = max(1, min(_GROUP_MAX, _GROUP_BYTES // max(1, _nbytes(shipment.batch))))
            group.append(shipment)
            if len(group) == size:  # 1, 2, 4, ... batches: the loop starts at once
                yield _group(info.id, first, group)
                first, group, size = first + len(group), [], min(limit, 2 * size)
        if group:
            yield _group(info.id, first, group)

    def __len__(self) -> int:
        return self.dataset.partition().num_steps

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":  # not yet set (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def _reads(self, by_reference: bool, plain: bool) -> Iterator[Any]:
        return self.dataset.iter_batches(by_reference=by_reference, plain=plain)


class _SampleView(_BatchView):
    """The dataset seen step by step as lists of samples read through its ``__getitem__``
    (the per-sample path); :class:`_Prepare` collates each list into a batch, in the worker."""

    def _reads(self, by_reference: bool, plain: bool) -> Iterator[Any]:
        for samples in self.dataset.iter_sample_batches():
            yield samples if samples else _NoRows(self.dataset[0])


@dataclass(frozen=True)
class _NoRows:
    """A step that ``padding="none"`` leaves empty on this rank, with one sample to give the
    empty batch the structure (keys, dtypes, shapes) of the others."""

    probe: Any


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
    """The rank's batches in step order, from its workers' groups in any order, each built
    (``group.batches`` are builders) as it is delivered. DataLoader takes the workers'
    hand-offs round-robin, so only a few groups wait here at a time."""
    waiting: dict[int, tuple[Callable[[], Any], dict[str, int] | None]] = {}
    step = 0
    for group in groups:
        for i, build in enumerate(group.batches):
            waiting[group.worker + (group.first + i) * workers] = (
                build,
                group.io if i == 0 else None,
            )
        while step in waiting:
            build, io = waiting.pop(step)
            yield _Shipment(build(), io)
            step += 1
    if waiting:
        raise RuntimeError(
            f"DataLoader workers delivered steps {sorted(waiting)[:5]} but never step {step}: "
            "a worker stopped early"
        )


@dataclass(frozen=True)
class _WorkerStep:
    """The collate_fn DataLoader runs (both paths; the view prepared the batches). In
    DataLoader workers it lays a hand-off out in the worker's shared-memory slabs
    (:mod:`loader.transport`); only a small header crosses the pipe, and tensors are made in
    the loop's process, zero-copy. Without workers the batch stays in this process (as
    tensors when pinning: torch pins them)."""

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
    none); so must ``drop_last`` (adopted if the dataset was not given one). ``loader.dataset``
    is the dataset passed in. Other keyword arguments are DataLoader's. It satisfies
    torch's ``Stateful`` protocol (``torch.distributed.checkpoint.stateful.Stateful``, which
    torchdata's ``StatefulDataLoader``, Lightning and torchtitan rely on): ``state_dict()``
    and ``load_state_dict()`` work before, during and after an epoch.

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
        per_sample = collate_fn is not None or bool(dataset.overrides)
        if per_sample and transforms:
            raise ValueError(
                "fields= and batch_transform= apply on the batch path; with a collate_fn or a "
                f"dataset that overrides {' and '.join(dataset.overrides) or '__getitem__'}, "
                "transform the samples there (or drop the override to keep the batch path)"
            )
        if per_sample and output == "numpy":
            raise ValueError(
                "output='numpy' applies on the batch path; on the per-sample path (a collate_fn "
                "or a __getitem__/get_item override) the collate_fn decides what batches hold"
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
        self._handing_view = False
        shared = num_workers > 0  # batches cross through shared memory; pinned here after
        collate = (collate_fn or collate_samples) if per_sample else None
        prepare = _Prepare(transforms, collate)
        view = _SampleView(dataset, prepare) if per_sample else _BatchView(dataset, prepare)
        if per_sample:
            logger.info("StreamingDataLoader: the per-sample path (%s)", _why(dataset, collate_fn))
        step: Any = _WorkerStep(None, pin and not shared and not per_sample)
        super().__init__(
            view, None, num_workers=num_workers, collate_fn=step,
            pin_memory=pin and not shared, **kwargs,
        )  # fmt: skip

    # DataLoader's own attributes, as a torch user reads them: the dataset passed in, its
    # batch size and drop_last. The iterator DataLoader builds is handed the view instead.
    @property
    def dataset(self) -> Any:
        return self._view if self._handing_view else self.streaming_dataset

    @dataset.setter
    def dataset(self, value: Any) -> None:
        self._view = value

    @property
    def batch_size(self) -> int | None:
        return None if self._handing_view else self.streaming_dataset.batch_size

    @batch_size.setter
    def batch_size(self, value: int | None) -> None:
        pass  # DataLoader sets None: batches are made by the view, one per step

    @property
    def drop_last(self) -> bool:
        return False if self._handing_view else self.streaming_dataset.drop_last

    @drop_last.setter
    def drop_last(self, value: bool) -> None:
        pass  # DataLoader sets False: the dataset drops the incomplete step for every rank

    def _get_iterator(self) -> Any:
        self._handing_view = True
        try:
            return super()._get_iterator()
        finally:
            self._handing_view = False

    def __len__(self) -> int:
        """Batches (steps) of an epoch, as every rank takes them."""
        return int(self.streaming_dataset.partition().num_steps)

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
        if drop_last is not None and not dataset.drop_last_given:
            dataset.drop_last, dataset.drop_last_given = bool(drop_last), True  # adopted
        elif drop_last is not None and bool(drop_last) != dataset.drop_last:
            raise ValueError(
                f"drop_last={drop_last} on the loader but {dataset.drop_last} on the dataset; "
                "give it once (either place), or the same value in both"
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
        reused = persistent and self._iterator is not None  # the same workers run this epoch
        fresh_slabs = not reused or self._slabs is None  # reused workers keep their slabs
        if isinstance(self.collate_fn, _WorkerStep) and self.num_workers > 0 and fresh_slabs:
            if self._slabs is not None:
                self._slabs.close()  # its views stay valid until dropped
            self._slabs = SlabSet(self.num_workers)
            self.collate_fn = replace(self.collate_fn, slabs=self._slabs)
        stats = StatsRecorder()
        forks = self.num_workers > 0 and _start_method(self.multiprocessing_context) == "fork"
        # New forked workers inherit what this process opened: the first batch of each is
        # read here once (a table's row groups decoded once, not in every worker).
        before = ds.io_counters()
        warmed = forks and not reused and ds._open_for_fork(self.num_workers)
        if warmed:
            stats.add_io({k: v - before.get(k, 0) for k, v in ds.io_counters().items()})
        with heap_frozen() if forks and not reused else nullcontext():
            iterator = super().__iter__()  # forks new workers, which start at once
        if warmed:
            ds.close()  # the workers hold their own references now
        if self.num_workers > 0:
            ds._epoch, ds._start = plan[0] + 1, 0  # mirror what each worker's copy just did
        self._worker_plan = (plan[0] + 1, 0)
        self._delivery = _Delivery(plan[0], ds.partition(plan[1]))
        self._stats = stats
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
        source: Iterator[_Shipment] = iterator
        if self.num_workers > 0:
            slabs = self._slabs
            assert slabs is not None
            groups = (g._replace(batches=slabs.unpack_each(g.batches)) for g in iterator)
            source = _in_step_order(groups, self.num_workers)
        pin_here = self.device_plan.pin_memory and self.num_workers > 0
        if isinstance(self._view, _SampleView):  # collated already: tensors or the user's
            return (_Shipment(pin(s.batch), s.io) for s in source) if pin_here else source
        if self.output == "numpy":
            return (_Shipment(to_numpy(s.batch), s.io) for s in source)
        if self.device_plan.pin_memory and self.num_workers == 0:
            return source  # tensors made (and pinned) already
        if pin_here:
            return (_Shipment(pin(to_torch(s.batch)), s.io) for s in source)
        return (_Shipment(to_torch(s.batch), s.io) for s in source)

    @staticmethod
    def _deliver(
        source: Iterator[_Shipment], delivery: _Delivery, stats: StatsRecorder
    ) -> Iterator[Any]:
        part = delivery.partition
        try:
            while True:
                asked = stats.now()
                try:
                    shipment = next(source)
                except StopIteration:
                    return
                samples = part.step_batch(min(delivery.delivered, part.num_steps - 1))
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


def _why(dataset: StreamingDataset, collate_fn: Any) -> str:
    if dataset.overrides:
        return f"{type(dataset).__name__} overrides {' and '.join(dataset.overrides)}"
    return f"collate_fn={getattr(collate_fn, '__name__', collate_fn)!r}"
