"""A dataset in a store: its committed versions and its shard files.

- :mod:`~sparkshard.dataset.versions`: immutable version records, the commit point, index.json;
- :mod:`~sparkshard.dataset.index_files`: an index file and its columnar form, read and checked;
- :mod:`~sparkshard.dataset.modes`: write modes checked against what a store holds;
- :mod:`~sparkshard.dataset.shards`: one shard file fetched, verified and decompressed.

Used by both sides: writers commit versions, readers and tools open them.
"""

from __future__ import annotations

from sparkshard.dataset.versions import DatasetInfo, list_versions, read_index

__all__ = ["DatasetInfo", "list_versions", "read_index"]
