"""The Reader protocol: random access to one pinned dataset version, and where it comes from.

Every reader the loader builds implements all of it (a local dataset, a remote one through
the cache, a mixture of several), so the dataset glue never probes for optional methods:

- ``get(i)`` / ``get_batch(ids, by_reference=False, plain=False)``: samples by global id
  (restored values / columns); ``by_reference`` lets a reader return a bytes column whose
  values lie in local files other processes may map as :class:`~loader.read.spans.FileSpans`
  (a DataLoader worker hands those over without copying; readers that hold values in
  memory return them as usual); ``plain=True`` returns a nullable column without nulls in
  the batch as a plain array, as ``to_numpy`` would (a worker's hand-off drops such masks);
- ``prefetch(batches, processes)``: the ids this process reads next, so a caching reader
  can fetch ahead (``fetches_ahead`` says whether it does anything with them);
- ``io_counters()``: cumulative ``bytes_read`` and ``bytes_downloaded`` of this process;
- ``abandon()``: drop what a forked child inherited without touching the parent's locks
  or threads; ``close()``: release maps, leases and threads.

A :class:`Source` opens readers: ``per_process`` sources give each process its own (a
forked DataLoader worker reopens instead of reusing the parent's).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np

__all__ = ["Reader", "Source"]


class Reader(Protocol):
    """Random access to the samples of one dataset version (see the module docstring)."""

    num_samples: int
    shard_sizes: np.ndarray
    version: int | None
    fingerprint: str
    column_names: tuple[str, ...]

    @property
    def fetches_ahead(self) -> bool: ...

    def get(self, index: int) -> dict[str, Any]: ...
    def get_batch(
        self, ids: np.ndarray, by_reference: bool = False, plain: bool = False
    ) -> dict[str, Any]: ...
    def prefetch(self, batches: Iterable[np.ndarray], processes: int) -> None: ...
    def io_counters(self) -> dict[str, int]: ...
    def abandon(self) -> None: ...
    def close(self) -> None: ...


class Source(Protocol):
    """Where a dataset's shards come from; opens a :class:`Reader` at a pinned version."""

    @property
    def per_process(self) -> bool: ...

    def open(self, version: int | None) -> Reader: ...
