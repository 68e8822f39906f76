"""The one way the loader makes randomness: a generator seeded by explicit integers.

Every random choice (the run layout, span and block shuffles, partial-shard subsets,
stratum slots, per-stream seeds) comes from ``rng(seed, epoch, ..., TAG)``: a numpy
``SeedSequence`` over the words given, never time, pid or a hidden counter. Each stage
appends its own tag so that two stages with the same other words draw independent streams.
The tags are part of the format of an order: changing one changes every epoch.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BLOCK_TAG",
    "ORIGIN_TAG",
    "RUN_TAG",
    "SPAN_TAG",
    "STRATUM_TAG",
    "STREAM_TAG",
    "SUBSET_TAG",
    "derived_seed",
    "rng",
]

RUN_TAG, SPAN_TAG, BLOCK_TAG = 0x52554E, 0x5350414E, 0x424C4B
SUBSET_TAG, STREAM_TAG, STRATUM_TAG = 0x53554253, 0x5354524D, 0x53545241
ORIGIN_TAG = 0x4F524947  # which stream each per_stream batch comes from


def rng(*words: int) -> np.random.Generator:
    """A generator seeded by ``words`` (non-negative integers), the same on every machine."""
    return np.random.default_rng(np.random.SeedSequence(list(words)))


def derived_seed(*words: int) -> int:
    """A 64-bit seed drawn from ``words``, for an order that needs its own base seed."""
    low, high = np.random.SeedSequence(list(words)).generate_state(2)
    return int(low) | int(high) << 32
