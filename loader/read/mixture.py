"""A mixture of streams read as one dataset: the concatenated reader and its source.

The mixture's sample ids are the streams' samples concatenated (stream 0's ids first).
:func:`open_mixture` opens every stream through its own source (each keeps its own cache,
pinned version and hash setting) and weighs them into a :class:`loader.order.mix.Mixture`,
the pure part that makes the epoch orders.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from loader.options import Stream
from loader.order.mix.mixture import Mixture
from loader.read.protocol import Reader, Source
from loader.read.spans import FileSpans
from sparkshard.errors import SchemaError

__all__ = ["MixtureReader", "MixtureSource", "open_mixture"]


class MixtureReader:
    """Random access over several streams' readers: sample ``i`` of the concatenation."""

    def __init__(self, readers: Sequence[Reader], names: Sequence[str]) -> None:
        self.readers = list(readers)
        self.offsets = np.concatenate([[0], np.cumsum([r.num_samples for r in readers])])
        self.num_samples = int(self.offsets[-1])
        self.shard_sizes = np.concatenate([np.asarray(r.shard_sizes, np.int64) for r in readers])
        self.version: int | None = None
        data = [(r.fingerprint, r.version) for r in readers]
        self.fingerprint = hashlib.sha256(repr(data).encode()).hexdigest()[:32]
        columns = [tuple(r.column_names) for r in readers]
        for i, cols in enumerate(columns):
            if set(cols) != set(columns[0]):
                raise SchemaError(
                    f"stream {i} ({names[i]}) has columns {sorted(cols)} but stream 0 "
                    f"({names[0]}) has {sorted(columns[0])}: pass columns=[...] naming "
                    "columns every stream has"
                )
        self.column_names = columns[0]

    @property
    def fetches_ahead(self) -> bool:
        return any(r.fetches_ahead for r in self.readers)

    def io_counters(self) -> dict[str, int]:
        total = {"bytes_read": 0, "bytes_downloaded": 0}
        for reader in self.readers:
            for key, value in reader.io_counters().items():
                total[key] = total.get(key, 0) + value
        return total

    def locate(self, ids: np.ndarray) -> np.ndarray:
        """The stream of each sample id."""
        return np.searchsorted(self.offsets, ids, side="right") - 1

    def get(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"sample {index} is out of range: the mixture has {self.num_samples}")
        s = int(self.locate(np.array(index)))
        return self.readers[s].get(index - int(self.offsets[s]))

    def get_batch(
        self, ids: Sequence[int] | np.ndarray, by_reference: bool = False, plain: bool = False
    ) -> dict[str, Any]:
        ids = np.asarray(ids, np.int64).reshape(-1)
        if len(ids) and (ids.min() < 0 or ids.max() >= self.num_samples):
            raise IndexError(f"sample ids must be in 0..{self.num_samples - 1}")
        stream = self.locate(ids)
        if not len(ids) or stream.min() == stream.max():
            s = int(stream[0]) if len(ids) else 0
            return self.readers[s].get_batch(ids - self.offsets[s], by_reference, plain)
        parts = []
        for s in np.unique(stream).tolist():
            where = np.flatnonzero(stream == s)
            part = self.readers[s].get_batch(ids[where] - self.offsets[s], by_reference, plain)
            parts.append((where, part))
        return _merge(parts, len(ids))

    def close(self) -> None:
        for reader in self.readers:
            reader.close()

    def abandon(self) -> None:
        """Drop readers inherited through a fork without touching their threads or locks."""
        for reader in self.readers:
            reader.abandon()

    def prefetch(self, batches: Iterable[np.ndarray], processes: int) -> None:
        """Hand each caching stream reader the part of the upcoming batches it will read."""
        takers = [s for s, r in enumerate(self.readers) if r.fetches_ahead]
        if not takers:
            return
        fan = _FanOut(iter(batches), self.locate, self.offsets, takers)
        for s in takers:
            self.readers[s].prefetch(fan.branch(s), processes)


class _FanOut:
    """Splits one iterator of mixture-id batches into one iterator of local ids per stream.

    Each branch may be consumed by its own thread: a lock guards the source, and the parts a
    branch has not taken yet wait in its queue (as far as the fastest branch ran ahead)."""

    def __init__(
        self,
        source: Iterator[np.ndarray],
        locate: Callable[[np.ndarray], np.ndarray],
        offsets: np.ndarray,
        streams: Sequence[int],
    ) -> None:
        self._source, self._locate, self._offsets = source, locate, offsets
        self._queues: dict[int, deque[np.ndarray]] = {s: deque() for s in streams}
        self._lock = threading.Lock()
        self._done = False

    def branch(self, stream: int) -> Iterator[np.ndarray]:
        queue = self._queues[stream]
        while True:
            with self._lock:
                while not queue and not self._done:
                    self._pull()
                if not queue:
                    return
                part = queue.popleft()
            yield part

    def _pull(self) -> None:
        ids = next(self._source, None)
        if ids is None:
            self._done = True
            return
        ids = np.asarray(ids, np.int64)
        stream = self._locate(ids)
        for s, queue in self._queues.items():
            mine = ids[stream == s]
            if len(mine):
                queue.append(mine - self._offsets[s])


def _merge(parts: list[tuple[np.ndarray, dict[str, Any]]], n: int) -> dict[str, Any]:
    """One batch from the streams' parts, each placed at its positions ``where``."""
    out: dict[str, Any] = {}
    for name in parts[0][1]:
        values = [batch[name] for _, batch in parts]
        if all(isinstance(v, FileSpans) for v in values):  # by reference, as every part is
            spans = out[name] = FileSpans.empty(n)
            for (where, _), value in zip(parts, values):
                spans.put(where, value)
            continue
        values = [v.views() if isinstance(v, FileSpans) else v for v in values]
        arrays = all(isinstance(v, np.ndarray) for v in values)
        if arrays and len({v.shape[1:] for v in values}) == 1:
            masked = any(isinstance(v, np.ma.MaskedArray) for v in values)
            column = np.empty((n, *values[0].shape[1:]), np.result_type(*values))
            mask = np.zeros(column.shape, np.bool_)
            for (where, _), value in zip(parts, values):
                column[where] = np.ma.getdata(value)
                mask[where] = np.ma.getmaskarray(value)
            out[name] = np.ma.MaskedArray(column, mask=mask) if masked else column
        else:
            merged: list[Any] = [None] * n
            for (where, _), value in zip(parts, values):
                for i, item in zip(where.tolist(), list(value)):
                    merged[i] = item
            out[name] = merged
    return out


@dataclass(frozen=True)
class MixtureSource:
    """Opens every stream through its own source, at the version it was pinned to."""

    sources: tuple[Source, ...]
    versions: tuple[int | None, ...]
    names: tuple[str, ...]
    per_process: bool = False  # each process opens its own reader (some stream's source does)

    def open(self, version: int | None = None) -> MixtureReader:
        if version is not None:
            raise ValueError("a mixture pins versions per stream: use Stream(version=...)")
        readers = [src.open(v) for src, v in zip(self.sources, self.versions)]
        return MixtureReader(readers, self.names)


def open_mixture(
    streams: Sequence[Stream],
    source_of: Callable[[Stream], Source],
    *,
    epoch_size: int | None = None,
    batching_method: str = "random",
    sampling_method: str = "balanced",
    global_batch: int | None = None,
) -> tuple[Mixture, MixtureSource, MixtureReader]:
    """Open every stream (pinning its version) and weigh them; O(shards)."""
    streams = Mixture.check(streams, batching_method, sampling_method)
    sources = tuple(source_of(s) for s in streams)
    names = tuple(s.name for s in streams)
    readers = [src.open(s.version) for src, s in zip(sources, streams)]
    reader = MixtureReader(readers, names)
    mixture = Mixture.of(
        streams,
        [r.shard_sizes for r in readers],
        [r.fingerprint for r in readers],
        [r.version for r in readers],
        epoch_size=epoch_size,
        batching_method=batching_method,
        sampling_method=sampling_method,
        global_batch=global_batch,
    )
    versions = tuple(r.version for r in readers)
    per_process = any(src.per_process for src in sources)
    return mixture, MixtureSource(sources, versions, names, per_process), reader
