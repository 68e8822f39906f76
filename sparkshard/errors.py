"""Every error sparkshard raises on purpose, in one place.

Each is rooted in a builtin, so callers can catch what they already know, and in
:class:`SparkshardError`, so they can catch everything of ours. Messages say what was
expected, what was found, and how to fix it. Missing things stay ``FileNotFoundError``
and denied access ``PermissionError`` (raised as the builtins, naming the URL)::

    SparkshardError
    ├── SchemaError(TypeError)                a column cannot be stored as asked
    ├── EncodingError(ValueError)             a value does not fit its column's encoding
    ├── IndexFormatError(ValueError)          index.json, a version record or its columnar form is malformed
    ├── CorruptShardError(ValueError)         a shard file is truncated, malformed or fails its hash
    ├── ResumeStateError(ValueError)          a resume state does not fit this dataset/settings
    ├── SourceRewrittenError(ValueError)      a source changed rows already converted
    ├── UnsupportedSourceError(ValueError)    a source uses a feature this path cannot read
    ├── UnsupportedURLError(ValueError)       no backend serves a URL's scheme
    ├── DatasetExistsError(FileExistsError)   the write mode does not allow replacing a dataset
    ├── VersionConflictError(FileExistsError) another writer committed this version first
    ├── JobFinishedError(RuntimeError)        a straggler task wrote after its job finished
    ├── MissingDependencyError(ImportError)   an optional package is needed (names the extra)
    ├── CacheTimeoutError(TimeoutError)       waited too long for room or a fetch in the cache
    └── StorageError(OSError)                 a storage request failed (network, server, request)
        ├── CommitUnknownError                a commit failed and whether it landed is unknown
        └── DownloadError(ConnectionError)    a shard could not be downloaded after its retries
"""

from __future__ import annotations

import importlib

__all__ = [
    "CacheTimeoutError",
    "CommitUnknownError",
    "CorruptShardError",
    "DatasetExistsError",
    "DownloadError",
    "EncodingError",
    "IndexFormatError",
    "JobFinishedError",
    "MissingDependencyError",
    "ResumeStateError",
    "SchemaError",
    "SourceRewrittenError",
    "SparkshardError",
    "StorageError",
    "UnsupportedSourceError",
    "UnsupportedURLError",
    "VersionConflictError",
    "require",
]


class SparkshardError(Exception):
    """Base class of every error sparkshard raises on purpose."""


class SchemaError(SparkshardError, TypeError):
    """A column's type cannot be stored, or contradicts a requested encoding."""


class EncodingError(SparkshardError, ValueError):
    """A value does not fit the encoding declared for its column."""


class IndexFormatError(SparkshardError, ValueError):
    """An ``index.json``, a version record or its columnar form is malformed or of an
    unknown version."""


class CorruptShardError(SparkshardError, ValueError):
    """A shard file is truncated, malformed, or fails its hash check."""


class ResumeStateError(SparkshardError, ValueError):
    """A resume state does not match the dataset or settings it is loaded into."""


class SourceRewrittenError(SparkshardError, ValueError):
    """A source changed or removed rows already converted, and a rebuild was not allowed."""


class UnsupportedSourceError(SparkshardError, ValueError):
    """A source uses a feature this conversion path cannot read correctly."""


class UnsupportedURLError(SparkshardError, ValueError):
    """A dataset URL names a scheme no installed backend can serve."""


class DatasetExistsError(SparkshardError, FileExistsError):
    """The output already holds a dataset and the write mode does not allow replacing it."""


class VersionConflictError(SparkshardError, FileExistsError):
    """Another writer committed the dataset version this writer was about to commit."""


class JobFinishedError(SparkshardError, RuntimeError):
    """A straggler attempt wrote after its job was committed or aborted."""


class MissingDependencyError(SparkshardError, ImportError):
    """An optional dependency is needed; the message names the extra to install."""


class CacheTimeoutError(SparkshardError, TimeoutError):
    """The shard cache waited too long: for room under ``cache_limit``, or for another
    process's fetch of the same shard. The message names the shard, the cache and the fix."""


class StorageError(SparkshardError, OSError):
    """A storage request failed for a reason other than a missing object or denied access.

    Raised after the backend's own retries (network trouble, a server error, a malformed
    request); the message names the URL and the operation. Missing objects stay
    ``FileNotFoundError`` and denied access stays ``PermissionError``.
    """


class CommitUnknownError(StorageError):
    """Creating a version record failed, and reading it back failed too: the version may or
    may not be committed. Nothing was deleted; the message says how to find out."""


class DownloadError(StorageError, ConnectionError):
    """A shard could not be downloaded into the cache within its retries; the message names
    the shard, its URL and every attempt's failure."""


def require(module: str, extra: str, purpose: str) -> object:
    """Import an optional dependency or raise an error naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs the '{module}' package, which is not installed; "
            f"install it with: pip install 'sparkshard[{extra}]'"
        ) from exc
