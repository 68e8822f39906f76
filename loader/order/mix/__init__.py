"""The order of a mixture of streams (``StreamingDataset(streams=[...])``): pure math.

- :mod:`~loader.order.mix.weights`: how many samples each stream gives an epoch;
- :mod:`~loader.order.mix.virtual`: which ones (virtual shards, seeded subsets);
- :mod:`~loader.order.mix.strata`: how many of each stream every stratified batch holds;
- :mod:`~loader.order.mix.orders`: the mixed epoch orders (random and stratified);
- :mod:`~loader.order.mix.mixture`: the streams weighed, their fingerprint and orders.
"""

from __future__ import annotations

from loader.order.mix.mixture import Mixture
from loader.order.mix.orders import AnyOrder, MixOrder, RandomMixOrder, StratifiedMixOrder
from loader.order.mix.strata import StratumPlan
from loader.order.mix.virtual import VirtualShards

__all__ = [
    "AnyOrder",
    "MixOrder",
    "Mixture",
    "RandomMixOrder",
    "StratifiedMixOrder",
    "StratumPlan",
    "VirtualShards",
]
