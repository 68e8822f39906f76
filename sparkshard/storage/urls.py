"""URL in, backend out: :func:`open_store`.

- :class:`LocalStore`: local paths, ``file:///data/x``, and on Databricks the FUSE mounts
  ``/Volumes/<catalog>/<schema>/<volume>/x`` and ``/dbfs/x`` (``dbfs:/Volumes/...`` and
  ``dbfs:/x`` map onto them).
- :class:`CloudStore` (obstore): ``s3://bucket/x`` (also ``s3a://``), ``gs://bucket/x``
  (``gcs://``), ``az://container/x`` (``azure://``, ``adl://``) and
  ``abfs[s]://container@account.dfs.core.windows.net/x``.
- :class:`FsspecStore`: any other scheme fsspec knows (``memory://``, ``hdfs://``...).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from sparkshard.errors import UnsupportedURLError, require
from sparkshard.storage._cloud import CloudStore
from sparkshard.storage._cloud_options import cloud_options
from sparkshard.storage._fsspec import FsspecStore
from sparkshard.storage._local import LocalStore
from sparkshard.storage.store import Store

__all__ = ["CLOUD_SCHEMES", "is_local", "open_store", "remote_options"]

log = logging.getLogger(__name__)
CLOUD_SCHEMES = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "azure": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "adl": "azure",
}
_SUPPORTED = (
    "local paths, file://, /Volumes/..., /dbfs/..., dbfs:/..., s3://, gs://, az://, "
    "abfs[s]:// and any scheme fsspec knows"
)


def open_store(
    url: str | os.PathLike[str] | Store, storage_options: Mapping[str, Any] | None = None
) -> Store:
    """The backend for ``url`` (see the table above); ``storage_options`` configure clouds.

    Credentials come from each cloud's standard environment and credential chain unless
    ``storage_options`` give them (see :mod:`sparkshard.storage._cloud_options`). Opening a
    store sends no request. A :class:`Store` passed as ``url`` is used as it is (your own
    backend, or a wrapped one). ``storage_options`` for a local path or a ``Store`` are
    refused: they would have no effect.
    """
    if isinstance(url, Store):
        _no_options(storage_options, repr(url))
        return url
    text = os.fspath(url)
    if text.lower().startswith("dbfs:"):
        _no_options(storage_options, text)
        return LocalStore(_dbfs_path(text))
    if "://" not in text:
        _no_options(storage_options, text)
        return LocalStore(text)
    scheme, _, rest = text.partition("://")
    scheme = scheme.lower()
    if scheme == "file":
        _no_options(storage_options, text)
        return LocalStore(rest.removeprefix("localhost"))
    if scheme in CLOUD_SCHEMES:
        return _cloud_store(text, scheme, rest, storage_options)
    return _fsspec_store(text, scheme, storage_options)


def _dbfs_path(text: str) -> str:
    """``dbfs:/x`` on the driver's and executors' FUSE mounts: ``/Volumes/...`` or ``/dbfs/x``."""
    path = text[len("dbfs:") :].lstrip("/")
    if path.startswith("Volumes/"):
        return f"/{path}"
    return f"/dbfs/{path}"


def _cloud_store(
    text: str, scheme: str, rest: str, storage_options: Mapping[str, Any] | None
) -> CloudStore:
    cloud = CLOUD_SCHEMES[scheme]
    require("obstore", "cloud", f"opening {scheme}:// URLs")
    authority, _, prefix = rest.partition("/")
    options = dict(storage_options or {})
    bucket = authority
    if "@" in authority:  # abfss://container@account.dfs.core.windows.net/path
        bucket, _, host = authority.partition("@")
        if cloud == "azure" and host:
            options.setdefault("account_name", host.split(".")[0])
    if not bucket:
        raise ValueError(
            f"cannot open {text!r}: the URL names no bucket or container; "
            f"write it as {scheme}://<bucket>/<path>"
        )
    return CloudStore(text, bucket, prefix, cloud_options(cloud, options))


def _fsspec_store(text: str, scheme: str, storage_options: Mapping[str, Any] | None) -> FsspecStore:
    try:
        import fsspec
    except ImportError:
        raise UnsupportedURLError(
            f"cannot open {text!r}: the '{scheme}://' scheme is served through fsspec, which "
            "is not installed; install it with: pip install 'sparkshard[cloud]'"
        ) from None
    try:
        cls = fsspec.get_filesystem_class(scheme)
    except ValueError:
        raise UnsupportedURLError(
            f"cannot open {text!r}: no storage backend serves the '{scheme}://' scheme; "
            f"sparkshard opens {_SUPPORTED} (pip install 'sparkshard[cloud]' brings obstore "
            "and fsspec; some fsspec schemes need their own package too)"
        ) from None
    except ImportError as exc:
        raise UnsupportedURLError(
            f"cannot open {text!r}: fsspec serves '{scheme}://' with a package that is not "
            f"installed ({exc})"
        ) from None
    return FsspecStore(text, cls(**dict(storage_options or {})))


def is_local(url: str | os.PathLike[str]) -> bool:
    """Whether ``url`` is read and written on the local file system (a path, ``file://``,
    ``dbfs:``)."""
    text = os.fspath(url)
    return "://" not in text or text.lower().startswith(("file://", "dbfs:"))


def remote_options(
    url: str | os.PathLike[str], storage_options: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """``storage_options`` shared by a local and a remote location (e.g. a Delta table on S3
    and its shards on local disk), for ``url``: None where ``url`` is local."""
    return None if is_local(url) else storage_options


def _no_options(storage_options: Mapping[str, Any] | None, where: str) -> None:
    if storage_options:
        raise ValueError(
            f"storage_options {sorted(storage_options)} were given for {where}, which is "
            "read and written on the local file system, where they have no effect: drop them "
            "(they configure s3://, gs://, az:// and fsspec URLs)"
        )
