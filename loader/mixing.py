"""The math of a mixture of streams: pure functions of integers, seeds and the epoch.

How many samples each stream gives an epoch (:func:`samples_per_stream`, Mosaic's weighting:
relative ``proportion`` or absolute ``repeat``/``choose``) and which ones
(:class:`VirtualShards`): a stream drawn ``count = k * n + r`` times (``n`` samples) reads
every shard ``k`` times plus, from each shard, its largest-remainder share of ``r``, a seeded
subset of that shard (fresh every epoch with ``sampling_method="balanced"``, the same every
epoch with ``"fixed"``). Each copy or share is a *virtual shard*; the mixture's epoch order
is the single-dataset order (:mod:`loader.order`) over the virtual shards, so it inherits
exactly-once, canonical-node locality, lazy blocks and elastic resume.

How stratified batches are composed lives in :mod:`loader.strata`.

The curriculum rule (:func:`mixture_may_change`): a resume state saved at an epoch boundary
continues under the dataset's current mixture (its streams, versions, weights, epoch size);
within an epoch the mixture must be the one the epoch started with.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

import numpy as np

from loader.stream import Stream

__all__ = [
    "BATCHING_METHODS",
    "MIXTURE_FIELDS",
    "SAMPLING_METHODS",
    "VirtualShards",
    "apportion",
    "mixture_may_change",
    "parse_epoch_size",
    "partial_subset",
    "samples_per_stream",
    "stream_seed",
]

BATCHING_METHODS = ("random", "stratified")
SAMPLING_METHODS = ("balanced", "fixed")
# Fingerprint fields that describe the mixture's data: these may change between epochs.
MIXTURE_FIELDS = frozenset(
    {"dataset_version", "dataset_fingerprint", "num_samples", "streams", "mixing", "mix_stratum"}
)
_SUBSET_TAG, _STREAM_TAG = 0x53554253, 0x5354524D
_ABBREV = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "t": 10**12}


def _rng(*words: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(list(words)))


def parse_epoch_size(value: int | str | None) -> int | None:
    """``None``, an int, or an abbreviation such as ``"250k"``/``"1.5m"`` (Mosaic's form)."""
    if value is None:
        return None
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmbt]?)\s*", value.lower())
        if match is None:
            raise ValueError(
                f"epoch_size={value!r} is not a sample count; use an int or e.g. '250k', '1.5m'"
            )
        scaled = Fraction(match.group(1)) * _ABBREV[match.group(2)]
        if scaled.denominator != 1:
            raise ValueError(f"epoch_size={value!r} is not a whole number of samples")
        value = int(scaled)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"epoch_size must be a sample count >= 0, got {value!r}")
    return value


def apportion(total: int, weights: Sequence[float | int | Fraction]) -> np.ndarray:
    """Split ``total`` in proportion to ``weights`` by largest remainder (exact arithmetic;
    ties go to the lower index). Each share is its quota rounded down or up."""
    if all(isinstance(w, (int, np.integer)) for w in weights):
        return _apportion_ints(total, np.asarray(weights, np.int64).reshape(-1))
    exact = [Fraction(w) for w in weights]
    whole = sum(exact, Fraction(0))
    if total and whole <= 0:
        raise ValueError(f"cannot split {total} samples by weights that add up to {whole}")
    if not total:
        return np.zeros(len(exact), np.int64)
    quotas = [total * w / whole for w in exact]
    shares = [q.numerator // q.denominator for q in quotas]
    short = total - sum(shares)
    by_remainder = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - shares[i]), i))
    for i in by_remainder[:short]:
        shares[i] += 1
    return np.array(shares, np.int64)


def _apportion_ints(total: int, weights: np.ndarray) -> np.ndarray:
    """:func:`apportion` for integer weights, vectorized (O(n log n), for shard sizes)."""
    whole = int(weights.sum())
    if total and whole <= 0:
        raise ValueError(f"cannot split {total} samples by weights that add up to {whole}")
    if not total:
        return np.zeros(len(weights), np.int64)
    if total * whole >= 2**62:  # the products would overflow int64: exact Python ints
        return apportion(total, [Fraction(int(w)) for w in weights])
    shares, remainders = np.divmod(total * weights, whole)
    short = total - int(shares.sum())
    by_remainder = np.lexsort((np.arange(len(weights)), -remainders))
    shares[by_remainder[:short]] += 1
    return shares


def samples_per_stream(
    sizes: Sequence[int], streams: Sequence[Stream], epoch_size: int | None
) -> np.ndarray:
    """Samples each stream gives one epoch (Mosaic's weighting semantics, exact integers).

    All proportions: normalized shares of ``epoch_size`` (default: all samples together).
    No weights at all: every sample once, or shares proportional to size of ``epoch_size``.
    Otherwise absolute: ``repeat`` times the size (to the nearest sample), ``choose``, or the
    stream's size for an unweighted stream; ``epoch_size`` does not apply.
    """
    if len(sizes) != len(streams) or not streams:
        raise ValueError(f"need one size per stream and >= 1 stream, got {len(sizes)} sizes")
    kinds = [s.weight_kind for s in streams]
    relative = [k == "proportion" for k in kinds]
    if any(relative) and not all(relative):
        rel, ab = relative.index(True), relative.index(False)
        raise ValueError(
            f"stream {rel} ({streams[rel].name}) sets proportion= (relative) but stream {ab} "
            f"({streams[ab].name}) sets {kinds[ab] or 'no weight'} (absolute): give every "
            "stream a proportion, or use repeat=/choose= (or nothing) for all of them"
        )
    if all(relative):
        total = sum(sizes) if epoch_size is None else epoch_size
        props = [Fraction(s.proportion or 0) for s in streams]
        if sum(props) == 0:
            raise ValueError("every stream has proportion=0: give at least one a share > 0")
        counts = apportion(total, props)
    elif all(k is None for k in kinds) and epoch_size is not None:
        if epoch_size and not sum(sizes):
            raise ValueError(f"epoch_size={epoch_size} but the streams hold no samples")
        counts = apportion(epoch_size, list(sizes))
    else:
        if epoch_size is not None:
            raise ValueError(
                f"epoch_size={epoch_size} applies to proportion= weights or unweighted streams; "
                "with repeat=/choose= the epoch holds what they add up to: drop epoch_size, "
                "or weight every stream with proportion="
            )
        counts = np.array(
            [_absolute(stream, int(n)) for stream, n in zip(streams, sizes)], np.int64
        )
    for i, (count, n) in enumerate(zip(counts.tolist(), sizes)):
        if count and not n:
            raise ValueError(
                f"stream {i} ({streams[i].name}) has no samples, but its weight asks for "
                f"{count} per epoch; give it proportion=0/choose=0 or remove it"
            )
    return counts


def _absolute(stream: Stream, size: int) -> int:
    if stream.repeat is not None:
        return int((Fraction(stream.repeat) * size + Fraction(1, 2)) // 1)
    if stream.choose is not None:
        return stream.choose
    return size


def stream_seed(seed: int, stream: int) -> int:
    """An independent seed for stream ``stream``'s own order (stratified batching)."""
    low, high = np.random.SeedSequence([seed, stream, _STREAM_TAG]).generate_state(2)
    return int(low) | int(high) << 32


def partial_subset(seed: int, epoch: int, shard: int, whole: int, size: int) -> np.ndarray:
    """The sorted ``size`` sample offsets (of ``whole``) a partial virtual shard draws:
    uniform without replacement, seeded by ``(seed, epoch, shard)``. O(whole)."""
    ids = _rng(seed, epoch, shard, _SUBSET_TAG).choice(whole, size, replace=False)
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


def mixture_may_change(changed: Iterable[str], sample_in_epoch: int, mixture: bool) -> bool:
    """The curriculum rule: a state saved at an epoch boundary (``sample_in_epoch == 0``)
    continues under the current mixture when only the mixture's data differ; the next
    epoch is then the new mixture's, from its start. Within an epoch nothing may change."""
    return mixture and sample_in_epoch == 0 and set(changed) <= MIXTURE_FIELDS
