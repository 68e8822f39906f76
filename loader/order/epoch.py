"""The global sample order of one epoch: a pure function of the shard sizes and settings.

The order is defined over *positions* ``0 .. N-1`` (``N`` = samples in the dataset) and is a
pure function of ``(shard sizes, seed, epoch, num_canonical_nodes, shuffle, block size)``.
Nothing here depends on ranks, workers or time, and nothing is O(samples): blocks of the order
are computed on demand.

Construction (algorithm ``"block"``):

1. Run layout, fixed for the whole run: shards are permuted by ``seed`` and the concatenated
   samples are cut into ``C = num_canonical_nodes`` contiguous parts; canonical node ``c`` owns
   ``N // C + (c < N % C)`` samples (a shard may be split between two neighbouring nodes).
   The pieces of shards a node owns are its *spans*.
2. Every epoch, each canonical node permutes its spans (seeded by ``seed, epoch, c``) and
   concatenates them into its *stream*. The stream is cut into about
   ``K = round(n_c / block_size)`` blocks of about equal size, at span boundaries (a block
   holds whole spans, so each shard is read within one block); the samples of each block,
   which come from several shards, are permuted uniformly (seeded by ``seed, epoch, c, k``).
3. The streams are interleaved: position ``p`` is sample ``p // C`` of node ``p % C``'s stream.
   Because long nodes come first, this is a bijection onto ``0 .. N-1`` with no padding.

Without shuffling, node ``c``'s stream is its sample range in index order, so for ``C = 1`` the
order is ``0, 1, ..., N-1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from loader.order.seeds import BLOCK_TAG, RUN_TAG, SPAN_TAG, rng

__all__ = ["SHUFFLE_ALGOS", "EpochOrder", "OrderSettings", "node_sizes"]

SHUFFLE_ALGOS = ("block",)


@dataclass(frozen=True)
class OrderSettings:
    """What the order depends on besides the shard sizes and the epoch."""

    seed: int
    num_canonical_nodes: int
    shuffle: bool = True
    block_size: int = 1 << 18
    algo: str = "block"

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError(
                f"shuffle_seed must be >= 0, got {self.seed}; pick a non-negative seed"
            )
        if self.num_canonical_nodes < 1:
            raise ValueError(
                f"num_canonical_nodes must be >= 1, got {self.num_canonical_nodes}; "
                "use the number of physical nodes or a multiple of it"
            )
        if self.block_size < 1:
            raise ValueError(f"shuffle_block_size must be >= 1 sample, got {self.block_size}")
        if self.algo not in SHUFFLE_ALGOS:
            raise ValueError(
                f"shuffle_algo must be one of {SHUFFLE_ALGOS}, got {self.algo!r}; "
                "use 'block' (the seeded, block-local shuffle described in loader.order.epoch)"
            )


def node_sizes(num_samples: int, num_canonical_nodes: int) -> np.ndarray:
    """Samples owned by each canonical node: ``N // C``, plus one for the first ``N % C``."""
    base, extra = divmod(num_samples, num_canonical_nodes)
    sizes = np.full(num_canonical_nodes, base, np.int64)
    sizes[:extra] += 1
    return sizes


def _spans(
    shard_sizes: np.ndarray, settings: OrderSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut the run-order sample sequence at shard and node boundaries.

    Returns ``(first_id, length, node)`` per span, in run order (node-major). O(shards + nodes).
    """
    sizes = np.asarray(shard_sizes, np.int64)
    shard_first = np.concatenate([[0], np.cumsum(sizes)])[:-1]
    perm = rng(settings.seed, RUN_TAG).permutation(len(sizes)) if settings.shuffle else None
    if perm is not None:
        sizes, shard_first = sizes[perm], shard_first[perm]
    run_bounds = np.concatenate([[0], np.cumsum(sizes)])
    nodes = settings.num_canonical_nodes
    node_bounds = np.concatenate([[0], np.cumsum(node_sizes(int(run_bounds[-1]), nodes))])
    cuts = np.union1d(run_bounds, node_bounds)
    begins, lengths = cuts[:-1], np.diff(cuts)
    keep = lengths > 0
    begins, lengths = begins[keep], lengths[keep]
    shard = np.searchsorted(run_bounds, begins, side="right") - 1
    node = np.searchsorted(node_bounds, begins, side="right") - 1
    first_id = shard_first[shard] + (begins - run_bounds[shard])
    return first_id, lengths, node


def _block_bounds(offsets: np.ndarray, blocks: int) -> np.ndarray:
    """Cut a stream into about ``blocks`` equal blocks, at the span boundaries nearest to
    ``k * size / blocks``: every block holds whole spans (mostly whole shards), so each
    shard is read within one block and contributes evenly to its block's mix."""
    size = int(offsets[-1])
    targets = np.arange(blocks + 1, dtype=np.int64) * size // blocks
    right = np.clip(np.searchsorted(offsets, targets), 0, len(offsets) - 1)
    left = np.clip(right - 1, 0, len(offsets) - 1)
    nearer_left = targets - offsets[left] <= offsets[right] - targets
    return np.unique(np.where(nearer_left, offsets[left], offsets[right]))


@dataclass(frozen=True)
class _Stream:
    """One canonical node's stream for one epoch: its spans in epoch order, cut into blocks."""

    first_id: np.ndarray  # (spans,) global id of each span's first sample
    offsets: np.ndarray  # (spans + 1,) stream offset where each span starts
    size: int
    bounds: np.ndarray  # (blocks + 1,) stream offset where each block starts

    def block_bounds(self, k: int) -> tuple[int, int]:
        return int(self.bounds[k]), int(self.bounds[k + 1])

    def block_of(self, local: np.ndarray) -> np.ndarray:
        """Block index of each stream index: the k with bounds[k] <= s < bounds[k + 1]."""
        return np.searchsorted(self.bounds, local, side="right") - 1

    def ids_between(self, lo: int, hi: int) -> np.ndarray:
        """Global ids of stream indices ``lo .. hi-1`` in stream (unshuffled) order."""
        i0 = int(np.searchsorted(self.offsets, lo, side="right")) - 1
        i1 = int(np.searchsorted(self.offsets, hi, side="left"))
        starts = np.maximum(self.offsets[i0:i1], lo)
        stops = np.minimum(self.offsets[i0 + 1 : i1 + 1], hi)
        lengths = stops - starts
        # Each id is its span's first id plus its distance from the span's start.
        shift = self.first_id[i0:i1] + (starts - self.offsets[i0:i1]) - (starts - lo)
        return np.repeat(shift, lengths) + np.arange(hi - lo, dtype=np.int64)


@dataclass
class EpochOrder:
    """The order of one epoch, evaluated lazily at the positions asked for.

    ``ids(positions)`` maps positions to global sample ids. Memory is O(shards) plus a few
    blocks of ``block_size`` ids kept in a small cache (instance-local, never shared).
    """

    shard_sizes: np.ndarray
    settings: OrderSettings
    epoch: int
    cache_blocks: int = 0  # 0: one per canonical node plus two
    _streams: list[_Stream] = field(init=False, repr=False)
    _cache: dict[tuple[int, int], np.ndarray] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        if self.epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {self.epoch}")
        first_id, lengths, node = _spans(self.shard_sizes, self.settings)
        self.num_samples = int(lengths.sum())
        nodes = range(self.settings.num_canonical_nodes)
        self._streams = [self._stream(first_id, lengths, node, c) for c in nodes]
        if self.cache_blocks < 1:
            self.cache_blocks = self.settings.num_canonical_nodes + 2

    def _stream(
        self, first_id: np.ndarray, lengths: np.ndarray, node: np.ndarray, c: int
    ) -> _Stream:
        mine = node == c
        ids, lens = first_id[mine], lengths[mine]
        if self.settings.shuffle:
            perm = rng(self.settings.seed, self.epoch, c, SPAN_TAG).permutation(len(ids))
            ids, lens = ids[perm], lens[perm]
        offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        size = int(offsets[-1])
        blocks = max(round(size / self.settings.block_size), 1) if self.settings.shuffle else 1
        return _Stream(ids, offsets, size, _block_bounds(offsets, blocks))

    def block(self, node: int, k: int) -> np.ndarray:
        """The permuted global ids of block ``k`` of canonical node ``node``'s stream."""
        key = (node, k)
        cached = self._cache.pop(key, None)
        if cached is None:
            stream = self._streams[node]
            ids = stream.ids_between(*stream.block_bounds(k))
            if self.settings.shuffle:
                rng(self.settings.seed, self.epoch, node, k, BLOCK_TAG).shuffle(ids)
            # Ids below 2**31 are cached as int32: half the memory for the working set.
            cached = ids.astype(np.int32) if self.num_samples <= 2**31 else ids
            while len(self._cache) >= self.cache_blocks:
                self._cache.pop(next(iter(self._cache)))
        self._cache[key] = cached  # most recently used last
        return cached

    def ids(self, positions: np.ndarray) -> np.ndarray:
        """Global sample ids at ``positions`` (each in ``0 .. N-1``), in the same order."""
        pos = np.asarray(positions, np.int64)
        if pos.size == 0:
            return pos.copy()
        if pos.min() < 0 or pos.max() >= self.num_samples:
            raise IndexError(
                f"positions must lie in [0, {self.num_samples}), got {pos.min()}..{pos.max()}"
            )
        if pos.size > 1:
            stride = int(pos[1] - pos[0])
            if stride > 0 and (np.diff(pos) == stride).all():
                return self.ids_run(int(pos[0]), stride, pos.size)
        nodes = self.settings.num_canonical_nodes
        node, local = pos % nodes, pos // nodes
        if nodes == 1:
            return self._node_ids(0, local)
        out = np.empty_like(pos)
        for c in np.unique(node).tolist():
            mine = node == c
            out[mine] = self._node_ids(c, local[mine])
        return out

    def ids_run(self, first: int, stride: int, count: int) -> np.ndarray:
        """Ids at positions ``first + stride * j`` for ``j < count`` (``stride >= 1``).

        The fast path: the run splits into ``q = C / gcd(stride, C)`` progressions, each a
        strided run of one node's stream, usually a slice of one cached block.
        """
        if count <= 0:
            return np.empty(0, np.int64)
        if first < 0 or stride < 1 or first + stride * (count - 1) >= self.num_samples:
            raise IndexError(
                f"run {first} + {stride} * j, j < {count}, leaves [0, {self.num_samples})"
            )
        nodes = self.settings.num_canonical_nodes
        q = nodes // math.gcd(stride, nodes)
        local_stride = stride * q // nodes
        out = np.empty(count, np.int64)
        for r in range(min(q, count)):
            p0 = first + r * stride
            n = len(range(r, count, q))
            out[r::q] = self._node_run(p0 % nodes, p0 // nodes, local_stride, n)
        return out

    def _node_run(self, c: int, start: int, stride: int, count: int) -> np.ndarray:
        stream = self._streams[c]
        last = start + stride * (count - 1)
        if self.settings.shuffle:
            k = int(stream.block_of(np.array(start)))
            if k == int(stream.block_of(np.array(last))):
                lo = stream.block_bounds(k)[0]
                return self.block(c, k)[start - lo : last - lo + 1 : stride]
        return self._node_ids(c, np.arange(start, last + 1, stride, dtype=np.int64))

    def _node_ids(self, c: int, local: np.ndarray) -> np.ndarray:
        stream = self._streams[c]
        if not self.settings.shuffle:
            span = np.searchsorted(stream.offsets, local, side="right") - 1
            return stream.first_id[span] + (local - stream.offsets[span])
        block = stream.block_of(local)
        first = int(block[0])
        if first == block[-1] and (block == first).all():
            return self.block(c, first)[local - stream.block_bounds(first)[0]].astype(np.int64)
        out = np.empty_like(local)
        for k in np.unique(block).tolist():
            mine = block == k
            out[mine] = self.block(c, k)[local[mine] - stream.block_bounds(k)[0]]
        return out

    def all_ids(self) -> np.ndarray:
        """The whole order as one array. O(samples): for tests and small datasets only."""
        return self.ids(np.arange(self.num_samples, dtype=np.int64))
