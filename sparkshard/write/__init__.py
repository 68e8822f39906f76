"""The writing side without Spark: settings, the shard sink, ShardWriter and the job commit.

- :mod:`~sparkshard.write.settings`: compression, hashes and size limit, validated once;
- :mod:`~sparkshard.write.sink`: rows and Arrow batches -> sealed shards -> shard records;
- :mod:`~sparkshard.write.writer`: ``ShardWriter``, one process writing one version;
- :mod:`~sparkshard.write.mdswriter`: ``MDSWriter``, Mosaic's writer keywords over it
  (mapped by :mod:`~sparkshard.write.mosaic_names`);
- :mod:`~sparkshard.write.commit`: a distributed write's job and its exactly-once commit.
"""

from __future__ import annotations

from sparkshard.write.mdswriter import MDSWriter
from sparkshard.write.writer import ShardWriter

__all__ = ["MDSWriter", "ShardWriter"]
