"""The epoch order of a mixture: positions ``0 .. epoch_size-1`` to mixture sample ids.

Both classes have the interface of :class:`loader.order.epoch.EpochOrder` (``ids``, ``ids_run``,
``all_ids``, ``epoch``, ``num_samples``), so the partition, resume and loader code that reads
a single dataset's order reads a mixture's unchanged. Memory is O(virtual shards) plus a few
blocks, strata (O(global batch)) and partial-shard subsets (O(shard)), all instance-local.

- :class:`RandomMixOrder` (``batching_method="random"``): the single-dataset block order over
  all streams' virtual shards (:class:`loader.order.mix.weights.VirtualShards`). Batches mix streams at
  random: the proportions hold in expectation per batch and exactly over the epoch.
- :class:`StratifiedMixOrder` (``"stratified"``): one order per stream (seeded apart); stratum
  ``j`` (positions ``[j*Z, (j+1)*Z)``) holds ``StratumPlan.composition(j)`` samples of each
  stream, taken in order from each stream's order and seeded-shuffled within the stratum.
  ``"per_stream"`` reads the same way through a :class:`StreamBatchPlan`: every stratum
  (global batch) is one stream's.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from loader.order.epoch import EpochOrder, OrderSettings
from loader.order.mix.per_stream import StreamBatchPlan
from loader.order.mix.strata import StratumPlan, stratum_slots
from loader.order.mix.virtual import VirtualShards, partial_subset, stream_seed

__all__ = ["AnyOrder", "MixOrder", "RandomMixOrder", "StratifiedMixOrder"]


class _Subsets:
    """The offsets each partial virtual shard draws this epoch (a few kept, LRU)."""

    def __init__(self, virtual: VirtualShards, seed: int, epoch: int, keep: int = 32) -> None:
        self.virtual, self.seed, self.epoch, self.keep = virtual, seed, epoch, keep
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def __call__(self, entry: int) -> np.ndarray:
        found = self._cache.pop(entry, None)
        if found is None:
            v = self.virtual
            found = partial_subset(
                self.seed, self.epoch, int(v.key[entry]), int(v.whole[entry]), int(v.sizes[entry])
            )
            while len(self._cache) >= self.keep:
                self._cache.popitem(last=False)
        self._cache[entry] = found
        return found


class RandomMixOrder:
    """The block-shuffled order over all streams' virtual shards, as mixture sample ids."""

    def __init__(
        self, virtual: VirtualShards, settings: OrderSettings, epoch: int, subset_epoch: int
    ) -> None:
        self.base = EpochOrder(virtual.sizes, settings, epoch)
        self.virtual, self.epoch, self.num_samples = virtual, epoch, self.base.num_samples
        self._subsets = _Subsets(virtual, settings.seed, subset_epoch)

    def ids(self, positions: np.ndarray) -> np.ndarray:
        return self.virtual.real_ids(self.base.ids(positions), self._subsets)

    def ids_run(self, first: int, stride: int, count: int) -> np.ndarray:
        return self.virtual.real_ids(self.base.ids_run(first, stride, count), self._subsets)

    def all_ids(self) -> np.ndarray:
        return self.ids(np.arange(self.num_samples, dtype=np.int64))


class StratifiedMixOrder:
    """Strata of ``stratum`` positions with each stream's exact share, from per-stream orders."""

    def __init__(
        self,
        parts: Sequence[VirtualShards],
        settings: OrderSettings,
        epoch: int,
        subset_epoch: int,
        stratum: int,
        plan: StratumPlan | StreamBatchPlan | None = None,
    ) -> None:
        counts = np.array([p.num_samples for p in parts], np.int64)
        self.plan = plan if plan is not None else StratumPlan(counts, stratum)
        self.parts, self.settings, self.epoch = list(parts), settings, epoch
        self.orders = [
            EpochOrder(p.sizes, replace(settings, seed=stream_seed(settings.seed, s)), epoch)
            for s, p in enumerate(parts)
        ]
        self._subsets = [_Subsets(p, settings.seed, subset_epoch) for p in parts]
        self.num_samples = int(self.plan.counts.sum())
        self._strata: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def _stratum(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        """(stream, position in that stream's order) of every position of stratum ``j``."""
        found = self._strata.pop(j, None)
        if found is None:
            composition = self.plan.composition(j)
            s = self.settings
            slots = stratum_slots(composition, s.shuffle, s.seed, self.epoch, j)
            rank = np.empty(len(slots), np.int64)
            firsts = np.concatenate([[0], np.cumsum(composition)])[:-1]
            rank[np.argsort(slots, kind="stable")] = np.arange(len(slots)) - np.repeat(
                firsts, composition
            )
            found = (slots, self.plan.before(j)[slots] + rank)
            while len(self._strata) >= 4:
                self._strata.popitem(last=False)
        self._strata[j] = found
        return found

    def ids(self, positions: np.ndarray) -> np.ndarray:
        pos = np.asarray(positions, np.int64)
        if pos.size and (pos.min() < 0 or pos.max() >= self.num_samples):
            raise IndexError(
                f"positions must lie in [0, {self.num_samples}), got {pos.min()}..{pos.max()}"
            )
        j, offset = np.divmod(pos, self.plan.stratum)
        stream, local = np.empty_like(pos), np.empty_like(pos)
        for k in np.unique(j).tolist():
            mine = j == k
            slots, where = self._stratum(k)
            stream[mine], local[mine] = slots[offset[mine]], where[offset[mine]]
        out = np.empty_like(pos)
        for s in np.unique(stream).tolist():
            mine = stream == s
            vids = self.orders[s].ids(local[mine])
            out[mine] = self.parts[s].real_ids(vids, self._subsets[s])
        return out

    def ids_run(self, first: int, stride: int, count: int) -> np.ndarray:
        return self.ids(first + stride * np.arange(max(count, 0), dtype=np.int64))

    def all_ids(self) -> np.ndarray:
        return self.ids(np.arange(self.num_samples, dtype=np.int64))


MixOrder = RandomMixOrder | StratifiedMixOrder
AnyOrder = EpochOrder | RandomMixOrder | StratifiedMixOrder  # what StreamingDataset reads
