"""How much of each stream a mixture's epoch holds: pure functions of integers.

How many samples each stream gives an epoch (:func:`samples_per_stream`, Mosaic's weighting:
relative ``proportion`` or absolute ``repeat``/``choose``, exact integers by largest
remainder, :func:`apportion`). Which samples those are is :mod:`loader.order.mix.virtual`;
how stratified batches are composed, :mod:`loader.order.mix.strata`.

The curriculum rule (:func:`mixture_may_change`): a resume state saved at an epoch boundary
continues under the dataset's current mixture (its streams, versions, weights, epoch size);
within an epoch the mixture must be the one the epoch started with.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from fractions import Fraction

import numpy as np

from loader.options import Stream

__all__ = [
    "BATCHING_METHODS",
    "MIXTURE_FIELDS",
    "SAMPLING_METHODS",
    "apportion",
    "mixture_may_change",
    "parse_epoch_size",
    "samples_per_stream",
]

BATCHING_METHODS = ("random", "stratified", "per_stream")
SAMPLING_METHODS = ("balanced", "fixed")
# Fingerprint fields that describe the mixture's data: these may change between epochs.
MIXTURE_FIELDS = frozenset(
    {"dataset_version", "dataset_fingerprint", "num_samples", "streams", "mixing", "mix_stratum"}
)
_ABBREV = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "t": 10**12}


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


def mixture_may_change(changed: Iterable[str], sample_in_epoch: int, mixture: bool) -> bool:
    """The curriculum rule: a state saved at an epoch boundary (``sample_in_epoch == 0``)
    continues under the current mixture when only the mixture's data differ; the next
    epoch is then the new mixture's, from its start. Within an epoch nothing may change."""
    return mixture and sample_in_epoch == 0 and set(changed) <= MIXTURE_FIELDS
