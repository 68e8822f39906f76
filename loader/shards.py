"""Mosaic's per-shard attributes of a dataset, computed from the shard sizes (O(shards)).

Mosaic's ``StreamingDataset`` exposes ``num_shards``, ``samples_per_shard``,
``sample_offset_per_shard``, ``spanner`` (``spanner[i] -> (shard, index in shard)``),
``shards_per_stream``, ``shard_offset_per_stream`` and ``num_streams``; code written for it
reads them, so :class:`ShardAttributes` gives them the same values and types. Mosaic's
``shards`` (its per-shard reader objects, with their download and decode methods) has no
counterpart here and is refused with what to use instead.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ShardAttributes", "Spanner"]


class Spanner:
    """Global sample index -> ``(shard, index within the shard)``, as Mosaic's ``Spanner``
    (empty shards are skipped; a binary search over the shard ends, no per-sample table)."""

    def __init__(self, samples_per_shard: np.ndarray) -> None:
        self.shard_sizes = np.asarray(samples_per_shard, np.int64)
        self._ends = np.cumsum(self.shard_sizes)
        self.num_samples = int(self._ends[-1]) if len(self._ends) else 0

    def __getitem__(self, index: int) -> tuple[int, int]:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"Invalid sample index `{index}`: 0 <= {index} < {self.num_samples}")
        shard = int(np.searchsorted(self._ends, index, side="right"))
        return shard, int(index - (self._ends[shard] - self.shard_sizes[shard]))


class ShardAttributes:
    """Mosaic's per-shard attributes, for a class with ``shard_sizes`` (int64 samples per
    shard, all streams concatenated) and ``stream_shards`` (shards per stream)."""

    shard_sizes: np.ndarray
    stream_shards: tuple[int, ...]

    @property
    def num_shards(self) -> int:
        return len(self.shard_sizes)

    @property
    def samples_per_shard(self) -> np.ndarray:
        return self.shard_sizes.copy()

    @property
    def sample_offset_per_shard(self) -> np.ndarray:
        return np.cumsum(self.shard_sizes) - self.shard_sizes

    @property
    def spanner(self) -> Spanner:
        return Spanner(self.shard_sizes)

    @property
    def num_streams(self) -> int:
        return len(self.stream_shards)

    @property
    def shards_per_stream(self) -> np.ndarray:
        return np.asarray(self.stream_shards, np.int64)

    @property
    def shard_offset_per_stream(self) -> np.ndarray:
        counts = self.shards_per_stream
        return np.cumsum(counts) - counts

    @property
    def shards(self) -> list[object]:
        raise AttributeError(
            "Mosaic's dataset.shards (its per-shard reader objects) has no counterpart here: "
            "use dataset.samples_per_shard, dataset.sample_offset_per_shard and "
            "dataset.spanner[i] -> (shard, index), or loader.DatasetReader(path).index.shards "
            "for the shard records of index.json"
        )
