"""The one seam between sparkshard and the place a dataset lives.

A :class:`Store` is rooted at a dataset URL and speaks in keys relative to that
root (``"index.json"``, ``"data/ab12-00000.mds.zstd"``). Writers and readers use
nothing else, so every backend (a local folder, S3, GCS, Azure, a Databricks
volume) behaves the same. :func:`open_store` turns a URL into a backend.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from sparkshard.errors import SparkshardError

__all__ = ["LocalStore", "Store", "UnsupportedURLError", "open_store", "write_atomically"]

log = logging.getLogger(__name__)


class UnsupportedURLError(SparkshardError, ValueError):
    """A dataset URL names a scheme no installed backend can serve."""


@runtime_checkable
class Store(Protocol):
    """Storage rooted at one dataset URL, addressed by ``/``-separated relative keys."""

    @property
    def url(self) -> str:
        """The root URL, as given (normalised)."""
        ...

    def read(self, key: str) -> bytes:
        """The whole object; ``FileNotFoundError`` naming the URL if absent."""
        ...

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """``length`` bytes from ``start`` (fewer only at the end of the object)."""
        ...

    def write(self, key: str, data: bytes) -> None:
        """Publish ``data`` atomically: readers see the old object or the new one, never a part."""
        ...

    def write_new(self, key: str, data: bytes) -> None:
        """Create ``key`` only if it does not exist (the commit point); else ``FileExistsError``."""
        ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> list[str]:
        """Every key under ``prefix`` (recursively), sorted, relative to the root."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""
        ...

    def local_path(self, key: str) -> str | None:
        """A filesystem path for ``key`` when the store is local (for mmap), else ``None``."""
        ...


class LocalStore:
    """A folder on a local or mounted filesystem (also Databricks ``/Volumes`` and ``/dbfs``)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = Path(os.fspath(root)).expanduser().absolute()

    def __repr__(self) -> str:
        return f"LocalStore({str(self._root)!r})"

    @property
    def url(self) -> str:
        return str(self._root)

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"store key {key!r} must be relative and stay inside {self._root}")
        return self._root / key

    def read(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"{path} does not exist") from None

    def read_range(self, key: str, start: int, length: int) -> bytes:
        with self._path(key).open("rb") as f:
            f.seek(start)
            return f.read(length)

    def write(self, key: str, data: bytes) -> None:
        write_atomically(self._path(key), data)

    def write_new(self, key: str, data: bytes) -> None:
        path = self._path(key)
        # link() fails if the name exists, so the record appears whole or not at all,
        # and of several writers exactly one wins.
        with _staged(path, data) as tmp:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise FileExistsError(f"{path} already exists") from None

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def list(self, prefix: str = "") -> list[str]:
        base = self._path(prefix) if prefix else self._root
        if not base.exists():
            return []
        if base.is_file():
            return [prefix]
        keys = [
            p.relative_to(self._root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.endswith(".tmp")
        ]
        return sorted(keys)

    def delete(self, key: str) -> None:
        path = self._path(key)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def local_path(self, key: str) -> str | None:
        return str(self._path(key))


@contextmanager
def _staged(path: Path, data: bytes) -> Iterator[Path]:
    """``data`` in a private temp file beside ``path``, removed when the block ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(data)
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def write_atomically(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace the file at ``path`` with ``data``: readers see the old or the new file whole."""
    target = Path(path)
    with _staged(target, data) as tmp:
        os.replace(tmp, target)


def open_store(
    url: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
) -> Store:
    """The backend for ``url``: a local path or ``file://`` URL opens a :class:`LocalStore`."""
    text = os.fspath(url)
    if "://" not in text:
        return LocalStore(text)
    scheme, _, rest = text.partition("://")
    if scheme == "file":
        return LocalStore(rest)
    raise UnsupportedURLError(
        f"cannot open {text!r}: no storage backend for the '{scheme}://' scheme is available; "
        "use a local path or file:// URL"
    )
