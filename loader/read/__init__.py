"""Reading samples: one Reader protocol, the sources that open readers, and the readers.

- :mod:`~loader.read.protocol`: the ``Reader`` and ``Source`` protocols every reader keeps;
- :mod:`~loader.read.source`: where a dataset's shards come from (local, or remote + cache);
- :mod:`~loader.read.reader`: ``DatasetReader``, random access to a local dataset version;
- :mod:`~loader.read.mapped`: one memory-mapped shard, decoded singly or by batch;
- :mod:`~loader.read.spans`: bytes values named by where they lie in shard files (for a
  DataLoader worker's hand-off without copies);
- :mod:`~loader.read.ledger`: which shard files passed their hash check, shared with workers;
- :mod:`~loader.read.mixture`: several streams read as one dataset.

The remote reader (the same reader over the shard cache) lives in :mod:`loader.cache`.
"""

from __future__ import annotations

from loader.read.protocol import Reader, Source
from loader.read.reader import DatasetReader

__all__ = ["DatasetReader", "Reader", "Source"]
