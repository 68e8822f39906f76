"""Stratified batches: how many samples of each stream every global batch of an epoch holds.

The mixed order is cut into strata of ``Z`` positions (the global batch). Every full stratum
holds each stream's share ``Z * w_s`` rounded down or up, and the strata add up exactly to
each stream's epoch count. The extras (the rounding up) are dealt by McNaughton's wrap-around
rule, so a stratum's composition and the counts before it are O(streams) closed forms: no
walk over the epoch. A last, partial stratum holds what is left, as near its own share as
the full strata allow. Pure functions of integers and seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from loader.order.seeds import STRATUM_TAG, rng

__all__ = ["StratumPlan", "stratum_slots"]


@dataclass(frozen=True, eq=False)
class StratumPlan:
    """How many samples of each stream every stratum (global batch) of an epoch holds."""

    counts: np.ndarray  # (streams,) samples of each stream in the epoch
    stratum: int  # positions per stratum, Z

    def __post_init__(self) -> None:
        if self.stratum < 1:
            raise ValueError(f"the stratum (global batch) must be >= 1 sample, got {self.stratum}")

    @cached_property
    def _layout(self) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        counts = np.asarray(self.counts, np.int64)
        full, tail = divmod(int(counts.sum()), self.stratum)
        tail_counts = _tail_share(tail, counts.tolist(), self.stratum, full)
        body = counts - tail_counts
        # Each full stratum holds base_s, plus one extra for the streams whose wrap-around run
        # [run_start, run_start + extra) of the extras sequence covers it (x -> stratum x % full).
        zeros = np.zeros_like(counts)
        base, extra = np.divmod(body, full) if full else (zeros, zeros)
        run_start = np.concatenate([[0], np.cumsum(extra)])[:-1]
        return full, tail_counts, base, run_start, run_start + extra

    @property
    def num_strata(self) -> int:
        full, tail_counts = self._layout[:2]
        return full + int(tail_counts.sum() > 0)

    def size(self, j: int) -> int:
        full, tail_counts = self._layout[:2]
        return self.stratum if j < full else int(tail_counts.sum())

    def before(self, j: int) -> np.ndarray:
        """(streams,) samples of each stream in strata ``0 .. j-1``."""
        full, _, base, run_start, run_end = self._layout
        if not 0 <= j <= self.num_strata:
            raise IndexError(f"stratum must lie in [0, {self.num_strata}], got {j}")
        if j > full:
            return np.asarray(self.counts, np.int64).copy()
        if not full:
            return np.zeros(len(self.counts), np.int64)

        def below(n: np.ndarray) -> np.ndarray:  # how many x < n have x % full < j
            return (n // full) * j + np.minimum(n % full, j)

        return j * base + below(run_end) - below(run_start)

    def composition(self, j: int) -> np.ndarray:
        """(streams,) samples of each stream in stratum ``j``."""
        return self.before(j + 1) - self.before(j)


def _tail_share(tail: int, counts: list[int], stratum: int, full: int) -> np.ndarray:
    """The last, partial stratum's share of each stream: as near ``tail * w_s`` as allows the
    full strata to hold ``stratum * w_s`` rounded down or up (``w_s = counts_s / total``)."""
    total = sum(counts)
    if not tail:
        return np.zeros(len(counts), np.int64)
    low = [max(0, c - full * -(-stratum * c // total)) for c in counts]
    high = [c - full * (stratum * c // total) for c in counts]
    share = [tail * c // total for c in counts]  # within [low, high]: low <= tail*w <= high
    while sum(share) < tail:  # largest remainder first, among streams with room
        room = [i for i in range(len(counts)) if share[i] < high[i]]
        share[min(room, key=lambda i: (share[i] * total - tail * counts[i], i))] += 1
    assert all(lo <= s <= hi for lo, s, hi in zip(low, share, high))
    return np.array(share, np.int64)


def stratum_slots(
    composition: np.ndarray, shuffle: bool, seed: int, epoch: int, j: int
) -> np.ndarray:
    """The stream of each position of stratum ``j``: its composition, seeded-shuffled (or
    stream by stream without shuffling). O(stratum)."""
    slots = np.repeat(np.arange(len(composition), dtype=np.int64), composition)
    if shuffle:
        rng(seed, epoch, j, STRATUM_TAG).shuffle(slots)
    return slots
