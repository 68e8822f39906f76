"""Per-stream batches (Mosaic's ``batching_method="per_stream"``): every global batch of an
epoch holds samples of ONE stream.

Each stream gives whole global batches of ``Z`` samples only (its epoch count rounded down to
a multiple of ``Z``, see :func:`per_stream_counts`, as Mosaic drops a stream's incomplete last
batch); the stream each batch comes from is a seeded shuffle of the streams' batch counts
(:class:`StreamBatchPlan`). The plan has the interface of
:class:`loader.order.mix.strata.StratumPlan` (strata of ``Z`` positions, each with one
stream's ``Z`` samples), so :class:`loader.order.mix.orders.StratifiedMixOrder` reads each
stream's own order through it unchanged. Pure functions of integers and seeds; O(batches).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from loader.order.seeds import ORIGIN_TAG, rng

__all__ = ["StreamBatchPlan", "per_stream_counts"]


def per_stream_counts(counts: Sequence[int], global_batch: int, names: Sequence[str]) -> list[int]:
    """Each stream's epoch count rounded down to whole global batches; a stream that cannot
    fill one batch is refused (Mosaic refuses it too)."""
    if global_batch < 1:
        raise ValueError(f"the global batch must be >= 1 sample, got {global_batch}")
    out = []
    for name, count in zip(names, counts):
        if 0 < count < global_batch:
            raise ValueError(
                f"stream {name} gives {count} samples an epoch, fewer than one global batch "
                f"({global_batch}) as batching_method='per_stream' needs: weight it up, "
                "lower the batch size, or use batching_method='stratified'"
            )
        out.append(count - count % global_batch)
    return out


@dataclass(frozen=True, eq=False)
class StreamBatchPlan:
    """Which stream every global batch (stratum of ``stratum`` positions) of an epoch reads."""

    counts: np.ndarray  # (streams,) samples of each stream in the epoch, multiples of stratum
    stratum: int
    seed: int
    epoch: int

    def __post_init__(self) -> None:
        counts = np.asarray(self.counts, np.int64)
        if self.stratum < 1 or (counts % self.stratum).any():
            raise ValueError(
                f"per-stream counts {counts.tolist()} must be whole batches of {self.stratum}"
            )

    @cached_property
    def origins(self) -> np.ndarray:
        """(batches,) the stream of each global batch: the batch counts, seeded-shuffled."""
        batches = np.asarray(self.counts, np.int64) // self.stratum
        origins = np.repeat(np.arange(len(batches), dtype=np.int64), batches)
        rng(self.seed, self.epoch, ORIGIN_TAG).shuffle(origins)
        return origins

    @cached_property
    def _batches_of(self) -> list[np.ndarray]:
        """For each stream, the (sorted) indices of its batches."""
        return [np.flatnonzero(self.origins == s) for s in range(len(self.counts))]

    @property
    def num_strata(self) -> int:
        return len(self.origins)

    def size(self, j: int) -> int:
        return self.stratum

    def before(self, j: int) -> np.ndarray:
        """(streams,) samples of each stream in batches ``0 .. j-1``."""
        if not 0 <= j <= self.num_strata:
            raise IndexError(f"stratum must lie in [0, {self.num_strata}], got {j}")
        taken = [np.searchsorted(b, j) for b in self._batches_of]
        return np.asarray(taken, np.int64) * self.stratum

    def composition(self, j: int) -> np.ndarray:
        """(streams,) samples of each stream in batch ``j``: ``stratum`` of one stream."""
        out = np.zeros(len(self.counts), np.int64)
        out[int(self.origins[j])] = self.stratum
        return out
