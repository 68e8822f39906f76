"""Delta tables as a source: one pinned version converted into shards, kept in sync.

- :mod:`~sparkshard.delta.convert`: ``delta_to_shards``, the entry point;
- :mod:`~sparkshard.delta.snapshot`: a pinned version read from the Delta log, and changes;
- :mod:`~sparkshard.delta.plan`: what a sync must write (nothing, an append, a rebuild);
- :mod:`~sparkshard.delta.arrow`: a snapshot's rows read with pyarrow in this process;
- :mod:`~sparkshard.delta.rowfilter`: row filters that mean the same with and without Spark.

Nothing here imports pyspark: with ``spark=``, DataFrames come from :mod:`sparkshard.spark`.
"""

from __future__ import annotations

from sparkshard.delta.convert import delta_to_shards

__all__ = ["delta_to_shards"]
