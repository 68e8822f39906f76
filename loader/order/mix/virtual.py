"""Which samples a mixture's epoch draws from each stream: virtual shards.

A stream drawn ``count = k * n + r`` times (``n`` samples) reads every shard ``k`` times
plus, from each shard, its largest-remainder share of ``r``: a seeded subset of that shard
(fresh every epoch with ``sampling_method="balanced"``, the same every epoch with
``"fixed"``). Each copy or share is a *virtual shard*; the mixture's epoch order is the
single-dataset order (:mod:`loader.order.epoch`) over the virtual shards, so it inherits
exactly-once, canonical-node locality, lazy blocks and elastic resume. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from loader.order.mix.weights import apportion
from loader.order.seeds import STREAM_TAG, SUBSET_TAG, derived_seed, rng

__all__ = ["VirtualShards", "partial_subset", "stream_seed"]


def stream_seed(seed: int, stream: int) -> int:
    """An independent seed for stream ``stream``'s own order (stratified batching)."""
    return derived_seed(seed, stream, STREAM_TAG)


def partial_subset(seed: int, epoch: int, shard: int, whole: int, size: int) -> np.ndarray:
    """The sorted ``size`` sample offsets (of ``whole``) a partial virtual shard draws:
    uniform without replacement, seeded by ``(seed, epoch, shard)``. O(whole)."""
    ids = rng(seed, epoch, shard, SUBSET_TAG).choice(whole, size, replace=False)
    ids.sort()
    return ids.astype(np.int64)


@dataclass(frozen=True, eq=False)
class VirtualShards:
    """What an epoch draws from each real shard: one entry per whole copy, plus a partial one.

    A stream with shards ``n_i`` (``n`` samples) drawn ``k * n + r`` times has ``(k + 1) * S``
    entries: ``k`` copies of every shard, then each shard's share ``m_i`` of ``r`` (largest
    remainder, so ``m_i`` is ``r * n_i / n`` rounded down or up). O(shards * (k + 1)).
    """

    sizes: np.ndarray  # (V,) samples the entry gives an epoch
    first: np.ndarray  # (V,) mixture id of its real shard's first sample
    whole: np.ndarray  # (V,) samples of its real shard
    key: np.ndarray  # (V,) its real shard's index among all streams' shards (seeds subsets)

    @classmethod
    def draw(
        cls, shard_sizes: np.ndarray, count: int, first_shard: int = 0, first_id: int = 0
    ) -> VirtualShards:
        sizes = np.asarray(shard_sizes, np.int64)
        n = int(sizes.sum())
        if count and not n:
            raise ValueError(f"cannot draw {count} samples from a stream without samples")
        copies, rest = divmod(count, n) if n else (0, 0)
        firsts = first_id + np.concatenate([[0], np.cumsum(sizes)])[:-1]
        keys = first_shard + np.arange(len(sizes), dtype=np.int64)
        share = apportion(rest, sizes.tolist()) if rest else np.zeros(len(sizes), np.int64)
        return cls(
            np.concatenate([np.tile(sizes, copies), share]),
            np.tile(firsts, copies + 1),
            np.tile(sizes, copies + 1),
            np.tile(keys, copies + 1),
        )

    @classmethod
    def concat(cls, parts: Sequence[VirtualShards]) -> VirtualShards:
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls._fields()))

    @staticmethod
    def _fields() -> tuple[str, ...]:
        return ("sizes", "first", "whole", "key")

    @cached_property
    def starts(self) -> np.ndarray:
        """(V + 1,) the virtual id where each entry starts."""
        return np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)

    @property
    def num_samples(self) -> int:
        return int(self.starts[-1])

    def real_ids(self, vids: np.ndarray, subset: Callable[[int], np.ndarray]) -> np.ndarray:
        """Mixture ids of virtual ids; ``subset(v)`` gives partial entry ``v``'s offsets."""
        vids = np.asarray(vids, np.int64)
        v = np.searchsorted(self.starts, vids, side="right") - 1
        offset = vids - self.starts[v]
        out = self.first[v] + offset
        partial = self.sizes[v] < self.whole[v]
        if partial.any():
            for entry in np.unique(v[partial]).tolist():
                mine = v == entry
                out[mine] = self.first[entry] + subset(entry)[offset[mine]]
        return out
