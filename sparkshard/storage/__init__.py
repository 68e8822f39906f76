"""The one seam between sparkshard and the place a dataset lives.

A :class:`Store` is rooted at a dataset URL and speaks in keys relative to that
root (``"index.json"``, ``"data/ab12-00000.mds.zstd"``). Writers and readers use
nothing else, so every backend (a local folder, S3, GCS, Azure, a Databricks
volume, any fsspec filesystem) behaves the same. :func:`open_store` turns a URL into
a backend; the backends themselves are private modules. :class:`StoreWrapper` forwards
every call to another store (subclass it to change one operation), and
:class:`sparkshard.storage.testing.StoreContract` is the contract suite every backend
passes, a user's own included.
"""

from __future__ import annotations

from sparkshard.errors import UnsupportedURLError
from sparkshard.storage._cloud import CloudStore
from sparkshard.storage._cloud_options import CloudOptions, cloud_options
from sparkshard.storage._fsspec import FsspecStore
from sparkshard.storage._local import LocalStore, staging_files, write_atomically
from sparkshard.storage.store import Store
from sparkshard.storage.urls import is_local, open_store, remote_options
from sparkshard.storage.wrapper import StoreWrapper

__all__ = [
    "CloudOptions",
    "CloudStore",
    "FsspecStore",
    "LocalStore",
    "Store",
    "StoreWrapper",
    "UnsupportedURLError",
    "cloud_options",
    "is_local",
    "open_store",
    "remote_options",
    "staging_files",
    "write_atomically",
]
