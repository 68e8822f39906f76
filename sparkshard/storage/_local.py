"""A dataset folder on a local or mounted filesystem (also Databricks ``/Volumes``, ``/dbfs``)."""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sparkshard.storage.store import check_key

__all__ = ["LocalStore", "write_atomically"]

log = logging.getLogger(__name__)


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
        return self._root / check_key(key, str(self._root))

    def read(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"{path} does not exist") from None

    def read_view(self, key: str) -> memoryview:
        return memoryview(self.read(key))

    def read_range(self, key: str, start: int, length: int) -> bytes:
        path = self._path(key)
        try:
            with path.open("rb") as f:
                f.seek(start)
                return f.read(max(length, 0))
        except FileNotFoundError:
            raise FileNotFoundError(f"{path} does not exist") from None

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
