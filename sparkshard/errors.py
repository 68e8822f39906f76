"""The errors sparkshard raises.

Every error is rooted in a builtin so callers can catch what they already know
(``ValueError``, ``TypeError``, ``FileExistsError``...) and in :class:`SparkshardError`
so they can catch everything of ours. Messages say what was expected, what was
found, and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "CorruptShardError",
    "DatasetExistsError",
    "EncodingError",
    "IndexFormatError",
    "MissingDependencyError",
    "ResumeStateError",
    "SchemaError",
    "SourceRewrittenError",
    "SparkshardError",
    "StorageError",
    "UnsupportedSourceError",
    "VersionConflictError",
]


class SparkshardError(Exception):
    """Base class of every error sparkshard raises on purpose."""


class SchemaError(SparkshardError, TypeError):
    """A column's type cannot be stored, or contradicts a requested encoding."""


class EncodingError(SparkshardError, ValueError):
    """A value does not fit the encoding declared for its column."""


class IndexFormatError(SparkshardError, ValueError):
    """An ``index.json`` (or a version record) is malformed or of an unknown version."""


class CorruptShardError(SparkshardError, ValueError):
    """A shard file is truncated, malformed, or fails its hash check."""


class DatasetExistsError(SparkshardError, FileExistsError):
    """The output already holds a dataset and the write mode does not allow replacing it."""


class VersionConflictError(SparkshardError, FileExistsError):
    """Another writer committed the dataset version this writer was about to commit."""


class ResumeStateError(SparkshardError, ValueError):
    """A resume state does not match the dataset or settings it is loaded into."""


class StorageError(SparkshardError, OSError):
    """A storage request failed for a reason other than a missing object or denied access.

    Raised after the backend's own retries (network trouble, a server error, a malformed
    request); the message names the URL and the operation. Missing objects stay
    ``FileNotFoundError`` and denied access stays ``PermissionError``.
    """


class SourceRewrittenError(SparkshardError, ValueError):
    """A source changed or removed rows already converted, and a rebuild was not allowed."""


class UnsupportedSourceError(SparkshardError, ValueError):
    """A source uses a feature this conversion path cannot read correctly."""


class MissingDependencyError(SparkshardError, ImportError):
    """An optional dependency is needed; the message names the extra to install."""


def require(module: str, extra: str, purpose: str) -> object:
    """Import an optional dependency or raise an error naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs the '{module}' package, which is not installed; "
            f"install it with: pip install 'sparkshard[{extra}]'"
        ) from exc
