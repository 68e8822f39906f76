"""StreamingDataLoader: a torch DataLoader that knows where the run is (glue only).

``state_dict()`` counts the batches DELIVERED to the training loop, not those prefetched by
workers, so a checkpoint taken after step ``k`` resumes at step ``k + 1`` exactly, on any
number of ranks and workers. By default the loader takes the batch fast path: workers read
whole batches (one vectorized gather per column) and hand over tensors, instead of collating
``batch_size`` sample dicts. Passing a ``collate_fn`` switches to the per-sample path, whose
``collate_fn`` receives a list of samples as with any DataLoader.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from loader.dataset import StreamingDataset
from loader.partition import EpochPartition

__all__ = ["StreamingDataLoader"]

logger = logging.getLogger(__name__)


def to_torch(batch: dict[str, Any]) -> dict[str, Any]:
    """Numeric numpy columns become tensors (zero-copy when writable); others stay as they are.

    A nullable column becomes a tensor when none of the batch's values is null; a batch with
    nulls keeps it as a ``numpy.ma.MaskedArray`` so the nulls are not silently lost.
    """
    out: dict[str, Any] = {}
    for name, column in batch.items():
        value = (
            column.data if type(column) is np.ma.MaskedArray and not column.mask.any() else column
        )
        if (
            type(value) is np.ndarray
            and value.dtype.kind in "biuf"
            and value.dtype.byteorder in "=|<"
        ):
            out[name] = torch.from_numpy(value if value.flags.writeable else value.copy())
        else:
            out[name] = value
    return out


def _as_is(batch: dict[str, Any]) -> dict[str, Any]:
    """Workers send numpy batches as they are: pickling a few arrays through the pipe is
    cheaper than torch's one shared-memory segment per tensor; tensors are made after."""
    return batch


class _BatchView(IterableDataset[dict[str, Any]]):
    """The dataset seen batch by batch; attribute access falls through to the dataset."""

    def __init__(self, dataset: StreamingDataset) -> None:
        self.dataset = dataset

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.dataset.iter_batches()

    def __len__(self) -> int:
        return self.dataset.partition().num_steps

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":  # not yet set (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)


@dataclass
class _Delivery:
    """The epoch the training loop is in and how many batches it has received."""

    epoch: int
    partition: EpochPartition
    delivered: int = 0


class StreamingDataLoader(DataLoader[Any]):
    """A DataLoader over a :class:`StreamingDataset` with ``state_dict``/``load_state_dict``.

    Each ``iter()`` is one epoch of the dataset (resumed where a loaded state says).
    ``batch_size`` is per rank and must match the dataset's (it is adopted if the dataset has
    none). Other keyword arguments are DataLoader's.
    """

    def __init__(
        self,
        dataset: StreamingDataset,
        batch_size: int | None = None,
        num_workers: int = 0,
        *,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        **kwargs: Any,
    ) -> None:
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
        self.streaming_dataset = dataset
        self._delivery: _Delivery | None = None
        self._worker_plan: tuple[int, int] | None = None
        if collate_fn is None:
            super().__init__(
                _BatchView(dataset),
                None,
                num_workers=num_workers,
                # Pinned memory needs tensors from the workers; else convert after the pipe.
                collate_fn=cast(Any, to_torch if kwargs.get("pin_memory") else _as_is),
                **kwargs,
            )
        else:
            super().__init__(
                dataset, batch_size, num_workers=num_workers, collate_fn=collate_fn, **kwargs
            )

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        ds = self.streaming_dataset
        plan = (ds._epoch, ds._start)
        persistent = self.persistent_workers and self.num_workers > 0
        if persistent and self._iterator is not None and self._worker_plan != plan:
            self._iterator = None  # persistent workers hold a stale plan: start fresh ones
        iterator = super().__iter__()
        if self.num_workers > 0:
            ds._epoch, ds._start = plan[0] + 1, 0  # mirror what each worker's copy just did
        self._worker_plan = (plan[0] + 1, 0)
        self._delivery = _Delivery(plan[0], ds.partition(plan[1]))
        convert = to_torch if isinstance(self.dataset, _BatchView) else None
        return self._deliver(iterator, self._delivery, convert)

    @staticmethod
    def _deliver(
        iterator: Iterator[Any], delivery: _Delivery, convert: Callable[[Any], Any] | None
    ) -> Iterator[Any]:
        for batch in iterator:
            delivery.delivered += 1
            yield batch if convert is None else convert(batch)

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
