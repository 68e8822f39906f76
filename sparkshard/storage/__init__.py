"""The one seam between sparkshard and the place a dataset lives.

A :class:`Store` is rooted at a dataset URL and speaks in keys relative to that
root (``"index.json"``, ``"data/ab12-00000.mds.zstd"``). Writers and readers use
nothing else, so every backend (a local folder, S3, GCS, Azure, a Databricks
volume, any fsspec filesystem) behaves the same. :func:`open_store` turns a URL into
a backend.
"""

from __future__ import annotations

from sparkshard.storage.cloud import CloudStore
from sparkshard.storage.cloud_options import CloudOptions, cloud_options
from sparkshard.storage.fsspec_store import FsspecStore
from sparkshard.storage.local import LocalStore, write_atomically
from sparkshard.storage.store import Store, UnsupportedURLError
from sparkshard.storage.urls import open_store

__all__ = [
    "CloudOptions",
    "CloudStore",
    "FsspecStore",
    "LocalStore",
    "Store",
    "UnsupportedURLError",
    "cloud_options",
    "open_store",
    "write_atomically",
]
