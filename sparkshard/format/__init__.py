"""The MDS v2 shard format as pure code: encodings, shard bytes, index, compression, hashes.

No I/O, no pyspark, no torch: both the writing side and the training side build on it.

- :mod:`~sparkshard.format.encodings`, :mod:`~sparkshard.format.images`: MDS column encodings;
- :mod:`~sparkshard.format.schema`: Arrow schema -> MDS columns and logical types;
- :mod:`~sparkshard.format.values`: logical values <-> stored values, row by row;
- :mod:`~sparkshard.format.arrow_encode`: one Arrow column -> MDS payloads, vectorized;
- :mod:`~sparkshard.format.shard`: the shard file's layout, built and taken apart;
- :mod:`~sparkshard.format.index`: ``index.json``; :mod:`~sparkshard.format.records`: its shard
  records; :mod:`~sparkshard.format.shard_table`: the shards as columns;
  :mod:`~sparkshard.format.columnar_index`: the file that stores them beside the JSON;
- :mod:`~sparkshard.format.compression`, :mod:`~sparkshard.format.hashing`: whole-file codecs
  and digests.
"""

from __future__ import annotations

__all__: list[str] = []
