"""A mixture of streams as the order sees it: weights, virtual shards, fingerprint, orders.

The mixture's *sample ids* are the streams' samples concatenated (stream 0's ids first),
so ``ds[i]`` indexes them as Mosaic does. An epoch draws ``samples_per_stream`` of each
stream (:mod:`loader.order.mix.weights`); its order maps positions ``0 .. epoch_size-1``
to sample ids with the interface of :class:`loader.order.epoch.EpochOrder`, so partition,
resume and the loader need nothing new (:mod:`loader.order.mix.orders`):

- ``batching_method="random"``: one block-shuffled order over all streams' virtual shards.
  Each batch mixes streams at random (the proportions hold in expectation, and exactly over
  the epoch); canonical nodes keep owning disjoint shard ranges.
- ``"stratified"``: each stream has its own order (seeded apart); every stratum of ``Z``
  positions (the global batch the run started with) holds each stream's share rounded down
  or up, seeded-shuffled within the stratum. Strata align with steps when the global batch
  is ``Z``; a run resumed with another global batch continues the same order exactly.
- ``"per_stream"``: every global batch holds one stream's samples (Mosaic's); each stream
  gives whole global batches only, in a seeded order of streams
  (:mod:`loader.order.mix.per_stream`). The global batch is fixed when the dataset is made.

Pure: the streams are opened by :func:`loader.read.mixture.open_mixture`, which hands
their sizes here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from loader.options import Stream
from loader.order.epoch import OrderSettings
from loader.order.mix.orders import MixOrder, RandomMixOrder, StratifiedMixOrder
from loader.order.mix.per_stream import StreamBatchPlan, per_stream_counts
from loader.order.mix.virtual import VirtualShards
from loader.order.mix.weights import BATCHING_METHODS, SAMPLING_METHODS, samples_per_stream

if TYPE_CHECKING:
    from loader.state import Fingerprint

__all__ = ["Mixture"]

logger = logging.getLogger(__name__)


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

    @staticmethod
    def check(
        streams: Sequence[Stream], batching_method: str, sampling_method: str
    ) -> tuple[Stream, ...]:
        """Validate the mixture's options before any stream is opened."""
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
        return streams

    @classmethod
    def of(
        cls,
        streams: Sequence[Stream],
        shard_sizes: Sequence[np.ndarray],
        fingerprints: Sequence[str],
        versions: Sequence[int | None],
        *,
        epoch_size: int | None = None,
        batching_method: str = "random",
        sampling_method: str = "balanced",
        global_batch: int | None = None,
    ) -> Mixture:
        """Weigh the opened streams (their shard sizes, data fingerprints and pinned
        versions) and draw each one's virtual shards; O(shards). ``per_stream`` batching
        needs the ``global_batch``: each stream gives whole global batches only."""
        streams = cls.check(streams, batching_method, sampling_method)
        shard_sizes = [np.asarray(s, np.int64) for s in shard_sizes]
        sizes = tuple(int(s.sum()) for s in shard_sizes)
        counts = samples_per_stream(sizes, streams, epoch_size)
        stratum = None
        if batching_method == "per_stream":
            if global_batch is None:
                raise ValueError(
                    "batching_method='per_stream' needs batch_size= on the dataset (each "
                    "stream gives whole global batches), as in Mosaic"
                )
            names = [s.name for s in streams]
            counts = np.array(per_stream_counts(counts.tolist(), global_batch, names), np.int64)
            stratum = global_batch
        shard_offsets = np.concatenate([[0], np.cumsum([len(s) for s in shard_sizes])])
        id_offsets = np.concatenate([[0], np.cumsum(sizes)])
        parts = tuple(
            VirtualShards.draw(s, int(c), int(shard_offsets[i]), int(id_offsets[i]))
            for i, (s, c) in enumerate(zip(shard_sizes, counts))
        )
        mixture = cls(
            streams,
            sizes,
            tuple(int(c) for c in counts),
            tuple(fingerprints),
            tuple(versions),
            parts,
            batching_method,
            sampling_method,
            stratum,
        )
        logger.info("mixture of %d streams: %s per epoch", len(streams), mixture.counts)
        return mixture

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
        if self.batching_method == "per_stream":
            return self  # its counts are whole batches of the stratum it was made with
        return replace(self, stratum=stratum if sample_in_epoch and stratum else None)

    def stratum_for(self, global_batch: int) -> int:
        """The stratum an epoch uses: the adopted one, else the global batch (0: random);
        per_stream: the global batch the mixture was made with."""
        if self.batching_method == "random":
            return 0
        return self.stratum or global_batch

    def order(self, settings: OrderSettings, epoch: int, global_batch: int) -> MixOrder:
        """The mixed order of ``epoch``."""
        fresh = self.sampling_method == "balanced" and settings.shuffle
        subset_epoch = epoch if fresh else 0
        if self.batching_method == "random":
            return RandomMixOrder(self.virtual, settings, epoch, subset_epoch)
        stratum = self.stratum_for(global_batch)
        plan = None
        if self.batching_method == "per_stream":
            origin_epoch = epoch if fresh else 0  # Mosaic: a new batch order each epoch
            plan = StreamBatchPlan(np.asarray(self.counts), stratum, settings.seed, origin_epoch)
        return StratifiedMixOrder(self.parts, settings, epoch, subset_epoch, stratum, plan)
