"""Any other URL scheme through fsspec (``memory://``, ``hdfs://``, ``sftp://``, ...).

The fallback for schemes without a native backend. Its guarantees are those of the
filesystem underneath, and weaker than the other backends':

- ``write`` is one ``pipe_file``: atomic where the filesystem's single put is (object
  stores), not on filesystems that write in place.
- ``write_new`` asks the filesystem for create-if-absent (``pipe_file(mode="create")``,
  fsspec >= 2024.12). Most implementations check for the file and then write it, so two
  writers racing for the same key can both succeed. Prefer a native backend (local path,
  s3://, gs://, az://) for datasets that several writers append to at once.
"""

from __future__ import annotations

import logging
from typing import Any

from sparkshard.errors import StorageError
from sparkshard.storage.store import check_key

__all__ = ["FsspecStore"]

log = logging.getLogger(__name__)


class FsspecStore:
    """A dataset folder on an fsspec filesystem."""

    def __init__(self, url: str, fs: Any) -> None:
        self._url = url.rstrip("/")
        self._fs = fs
        self._root = str(fs._strip_protocol(url)).rstrip("/")

    def __repr__(self) -> str:
        return f"FsspecStore({self._url!r})"

    @property
    def url(self) -> str:
        return self._url

    @property
    def filesystem(self) -> Any:
        return self._fs

    def _path(self, key: str) -> str:
        key = check_key(key, self._url).strip("/")
        return f"{self._root}/{key}" if key else self._root

    def read(self, key: str) -> bytes:
        try:
            return bytes(self._fs.cat_file(self._path(key)))
        except FileNotFoundError:
            raise FileNotFoundError(f"{self._url}/{key} does not exist") from None
        except OSError as exc:
            raise self._error(exc, "read", key) from exc

    def read_view(self, key: str) -> memoryview:
        return memoryview(self.read(key))

    def read_range(self, key: str, start: int, length: int) -> bytes:
        if start < 0:
            raise ValueError(f"read_range start must be >= 0, got {start}")
        path = self._path(key)
        try:
            if length <= 0:
                if not self._fs.exists(path):
                    raise FileNotFoundError(path)
                return b""
            return bytes(self._fs.cat_file(path, start=start, end=start + length))
        except FileNotFoundError:
            raise FileNotFoundError(f"{self._url}/{key} does not exist") from None
        except OSError as exc:
            raise self._error(exc, "read", key) from exc

    def write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            self._fs.makedirs(self._fs._parent(path), exist_ok=True)
            self._fs.pipe_file(path, bytes(data))
        except OSError as exc:
            raise self._error(exc, "write", key) from exc

    def write_new(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            self._fs.makedirs(self._fs._parent(path), exist_ok=True)
            self._fs.pipe_file(path, bytes(data), mode="create")
        except FileExistsError:
            raise FileExistsError(f"{self._url}/{key} already exists") from None
        except OSError as exc:
            raise self._error(exc, "create", key) from exc

    def exists(self, key: str) -> bool:
        return bool(self._fs.exists(self._path(key)))

    def list(self, prefix: str = "") -> list[str]:
        base = self._path(prefix)
        try:
            paths = self._fs.find(base)
        except FileNotFoundError:
            return []
        start = len(self._root) + 1
        return sorted(str(p).rstrip("/")[start:] for p in paths if str(p).startswith(base))

    def delete(self, key: str) -> None:
        try:
            self._fs.rm_file(self._path(key))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._error(exc, "delete", key) from exc

    def local_path(self, key: str) -> str | None:
        return None

    def _error(self, exc: OSError, op: str, key: str) -> Exception:
        if isinstance(exc, PermissionError):
            return PermissionError(f"access denied: cannot {op} {self._url}/{key}: {exc}")
        return StorageError(f"cannot {op} {self._url}/{key}: {exc}")
