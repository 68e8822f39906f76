"""The MDS v2 shard format as pure code: encodings, shard bytes, index, compression, hashes.

No I/O, no pyspark, no torch: both the writing side and the training side build on it.
"""
