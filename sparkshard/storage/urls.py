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

__all__ = ["CLOUD_SCHEMES", "open_store"]

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
    url: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
) -> Store:
    """The backend for ``url`` (see the table above); ``storage_options`` configure clouds.

    Credentials come from each cloud's standard environment and credential chain unless
    ``storage_options`` give them (see :mod:`sparkshard.storage._cloud_options`). Opening a
    store sends no request.
    """
    text = os.fspath(url)
    if text.lower().startswith("dbfs:"):
        return LocalStore(_dbfs_path(text))
    if "://" not in text:
        if storage_options:
            log.debug("storage_options are ignored for the local path %s", text)
        return LocalStore(text)
    scheme, _, rest = text.partition("://")
    scheme = scheme.lower()
    if scheme == "file":
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
