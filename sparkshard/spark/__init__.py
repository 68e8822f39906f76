"""The Spark side of sparkshard: the only package that imports pyspark.

- :mod:`~sparkshard.spark.write`: ``dataframe_to_shards``, executors and the driver's commit;
- :mod:`~sparkshard.spark.mosaic`: ``dataframe_to_mds``, Mosaic's converter signature;
- :mod:`~sparkshard.spark.session`: the command line's session and source DataFrames;
- :mod:`~sparkshard.spark.fingerprint`: what a DataFrame's rows depend on (cache key, lineage);
- :mod:`~sparkshard.spark.cached`: ``cache(df, dir)``, a conversion found again while current.
"""

from __future__ import annotations

from sparkshard.spark.cached import CachedDataset, cache
from sparkshard.spark.mosaic import dataframe_to_mds
from sparkshard.spark.write import dataframe_to_shards

__all__ = ["CachedDataset", "cache", "dataframe_to_mds", "dataframe_to_shards"]
