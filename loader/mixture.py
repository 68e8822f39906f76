"""A mixture of streams presented as one dataset: a reader, a source and epoch orders (glue).

The mixture's *sample ids* are the streams' samples concatenated (stream 0's ids first), so
``ds[i]`` indexes them as Mosaic does. An epoch draws ``samples_per_stream`` of each stream
(:mod:`loader.mixing`); its order maps positions ``0 .. epoch_size-1`` to sample ids with the
interface of :class:`loader.order.EpochOrder`, so partition, resume and the loader need
nothing new:

- ``batching_method="random"``: one block-shuffled order over all streams' virtual shards.
  Each batch mixes streams at random (the proportions hold in expectation, and exactly over
  the epoch); canonical nodes keep owning disjoint shard ranges.
- ``"stratified"``: each stream has its own order (seeded apart); every stratum of ``Z``
  positions (the global batch the run started with) holds each stream's share rounded down
  or up, seeded-shuffled within the stratum. Strata align with steps when the global batch
  is ``Z``; a run resumed with another global batch continues the same order exactly.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Protocol

import numpy as np

from loader.mixed_order import MixOrder, RandomMixOrder, StratifiedMixOrder
from loader.mixing import BATCHING_METHODS, SAMPLING_METHODS, VirtualShards, samples_per_stream
from loader.order import OrderSettings
from loader.state import Fingerprint
from loader.stream import Stream
from sparkshard.errors import SchemaError

__all__ = ["Mixture", "MixtureReader", "MixtureSource"]

logger = logging.getLogger(__name__)


class StreamReader(Protocol):
    num_samples: int
    shard_sizes: np.ndarray
    version: int | None
    fingerprint: str

    def get(self, index: int) -> dict[str, Any]: ...
    def get_batch(self, ids: np.ndarray) -> dict[str, Any]: ...
    def close(self) -> None: ...


class StreamSource(Protocol):
    def open(self, version: int | None) -> StreamReader: ...


class MixtureReader:
    """Random access over several streams' readers: sample ``i`` of the concatenation."""

    def __init__(self, readers: Sequence[StreamReader], names: Sequence[str]) -> None:
        self.readers = list(readers)
        self.offsets = np.concatenate([[0], np.cumsum([r.num_samples for r in readers])])
        self.num_samples = int(self.offsets[-1])
        self.shard_sizes = np.concatenate([np.asarray(r.shard_sizes, np.int64) for r in readers])
        self.version: int | None = None
        data = [(r.fingerprint, r.version) for r in readers]
        self.fingerprint = hashlib.sha256(repr(data).encode()).hexdigest()[:32]
        columns = [tuple(getattr(r, "column_names", ())) for r in readers]
        for i, cols in enumerate(columns):
            if set(cols) != set(columns[0]):
                raise SchemaError(
                    f"stream {i} ({names[i]}) has columns {sorted(cols)} but stream 0 "
                    f"({names[0]}) has {sorted(columns[0])}: pass columns=[...] naming "
                    "columns every stream has"
                )
        self.column_names = columns[0]

    @property
    def bytes_read(self) -> int:
        return sum(int(getattr(r, "bytes_read", 0)) for r in self.readers)

    @property
    def bytes_downloaded(self) -> int:
        return sum(int(getattr(r, "bytes_downloaded", 0)) for r in self.readers)

    def locate(self, ids: np.ndarray) -> np.ndarray:
        """The stream of each sample id."""
        return np.searchsorted(self.offsets, ids, side="right") - 1

    def get(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"sample {index} is out of range: the mixture has {self.num_samples}")
        s = int(self.locate(np.array(index)))
        return self.readers[s].get(index - int(self.offsets[s]))

    def get_batch(self, ids: Sequence[int] | np.ndarray) -> dict[str, Any]:
        ids = np.asarray(ids, np.int64).reshape(-1)
        if len(ids) and (ids.min() < 0 or ids.max() >= self.num_samples):
            raise IndexError(f"sample ids must be in 0..{self.num_samples - 1}")
        stream = self.locate(ids)
        if not len(ids) or stream.min() == stream.max():
            s = int(stream[0]) if len(ids) else 0
            return self.readers[s].get_batch(ids - self.offsets[s])
        parts = []
        for s in np.unique(stream).tolist():
            where = np.flatnonzero(stream == s)
            parts.append((where, self.readers[s].get_batch(ids[where] - self.offsets[s])))
        return _merge(parts, len(ids))

    def close(self) -> None:
        for reader in self.readers:
            reader.close()

    def abandon(self) -> None:
        """Drop readers inherited through a fork without touching their threads or locks."""
        for reader in self.readers:
            abandon = getattr(reader, "abandon", None)
            if abandon is not None:
                abandon()

    def prefetch(self, batches: Iterable[np.ndarray], processes: int) -> None:
        """Hand each caching stream reader the part of the upcoming batches it will read."""
        takers = [s for s, r in enumerate(self.readers) if hasattr(r, "prefetch")]
        if not takers:
            return
        fan = _FanOut(iter(batches), self.locate, self.offsets, takers)
        for s in takers:
            self.readers[s].prefetch(fan.branch(s), processes)  # type: ignore[attr-defined]


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

    sources: tuple[StreamSource, ...]
    versions: tuple[int | None, ...]
    names: tuple[str, ...]
    per_process: bool = False  # each process opens its own reader (some stream's source does)

    def open(self, version: int | None = None) -> MixtureReader:
        if version is not None:
            raise ValueError("a mixture pins versions per stream: use Stream(version=...)")
        readers = [src.open(v) for src, v in zip(self.sources, self.versions)]
        return MixtureReader(readers, self.names)


@dataclass(frozen=True, eq=False)
class Mixture:
    """The streams, what each gives an epoch, and how batches mix them (pickles small)."""

    streams: tuple[Stream, ...]
    sizes: tuple[int, ...]
    counts: tuple[int, ...]
    fingerprints: tuple[str, ...]
    versions: tuple[int | None, ...]
    parts: tuple[VirtualShards, ...] = field(repr=False)
    batching_method: str = "random"
    sampling_method: str = "balanced"
    stratum: int | None = None  # the global batch an epoch in progress was stratified by

    @classmethod
    def open(
        cls,
        streams: Sequence[Stream],
        source_of: Callable[[Stream], StreamSource],
        *,
        epoch_size: int | None = None,
        batching_method: str = "random",
        sampling_method: str = "balanced",
    ) -> tuple[Mixture, MixtureSource, MixtureReader]:
        """Open every stream (pinning its version) and weigh them; O(shards)."""
        streams = tuple(streams)
        if not streams or not all(isinstance(s, Stream) for s in streams):
            raise TypeError("streams= must be a non-empty list of loader.Stream values")
        if batching_method not in BATCHING_METHODS:
            raise ValueError(
                f"batching_method must be one of {BATCHING_METHODS}, got {batching_method!r}"
            )
        if sampling_method not in SAMPLING_METHODS:
            raise ValueError(
                f"sampling_method must be one of {SAMPLING_METHODS}, got {sampling_method!r}"
            )
        sources = tuple(source_of(s) for s in streams)
        names = tuple(s.name for s in streams)
        readers = [src.open(s.version) for src, s in zip(sources, streams)]
        reader = MixtureReader(readers, names)
        sizes = tuple(int(r.num_samples) for r in readers)
        counts = samples_per_stream(sizes, streams, epoch_size)
        shard_offsets = np.concatenate([[0], np.cumsum([len(r.shard_sizes) for r in readers])])
        parts = tuple(
            VirtualShards.draw(r.shard_sizes, int(c), int(shard_offsets[i]), int(reader.offsets[i]))
            for i, (r, c) in enumerate(zip(readers, counts))
        )
        versions = tuple(r.version for r in readers)
        mixture = cls(
            streams,
            sizes,
            tuple(int(c) for c in counts),
            tuple(r.fingerprint for r in readers),
            versions,
            parts,
            batching_method,
            sampling_method,
        )
        logger.info("mixture of %d streams: %s per epoch", len(streams), mixture.counts)
        per_process = any(getattr(src, "per_process", False) for src in sources)
        return mixture, MixtureSource(sources, versions, names, per_process), reader

    @property
    def epoch_size(self) -> int:
        return sum(self.counts)

    @cached_property
    def virtual(self) -> VirtualShards:
        return VirtualShards.concat(self.parts)

    def describe(self) -> tuple[str, ...]:
        """One line per stream for the resume fingerprint: its data and what it gives."""
        return tuple(
            f"fingerprint={fp} version={v} samples={n} per_epoch={c}"
            for fp, v, n, c in zip(self.fingerprints, self.versions, self.sizes, self.counts)
        )

    @property
    def mixing(self) -> str:
        return f"{self.batching_method}/{self.sampling_method}"

    def fingerprint(self, single: Fingerprint, global_batch: int) -> Fingerprint:
        """The dataset's fingerprint with the mixture's fields filled in."""
        stratum = self.stratum_for(global_batch)
        return replace(single, streams=self.describe(), mixing=self.mixing, mix_stratum=stratum)

    def resumed(self, sample_in_epoch: int, stratum: int) -> Mixture:
        """This mixture resuming at a state: mid-epoch it keeps the state's stratum (so the
        order continues on any global batch); at an epoch boundary the next epoch is
        stratified by the current global batch."""
        return replace(self, stratum=stratum if sample_in_epoch and stratum else None)

    def stratum_for(self, global_batch: int) -> int:
        """The stratum an epoch uses: the adopted one, else the global batch (0: random)."""
        if self.batching_method != "stratified":
            return 0
        return self.stratum or global_batch

    def order(self, settings: OrderSettings, epoch: int, global_batch: int) -> MixOrder:
        """The mixed order of ``epoch``."""
        fresh = self.sampling_method == "balanced" and settings.shuffle
        subset_epoch = epoch if fresh else 0
        if self.batching_method == "random":
            return RandomMixOrder(self.virtual, settings, epoch, subset_epoch)
        stratum = self.stratum_for(global_batch)
        return StratifiedMixOrder(self.parts, settings, epoch, subset_epoch, stratum)
