"""A dataset folder on a local or mounted filesystem (also Databricks ``/Volumes``, ``/dbfs``)."""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sparkshard.storage.store import Store, check_key

__all__ = ["LocalStore", "staging_files", "write_atomically"]

log = logging.getLogger(__name__)
_STAGING = re.compile(r"\.(?P<target>.+)\.[0-9a-f]{32}\.tmp")  # see _staging_path


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


def staging_files(store: Store, prefix: str = "") -> dict[str, str]:
    """What interrupted writes to a local store left under the folder ``prefix``: the key of
    each staging file -> the key it was being written to.

    A local write stages its data in a hidden ``.{name}.{uuid}.tmp`` beside the target, then
    renames it into place; a writer killed in between leaves the staging file behind, and
    :meth:`LocalStore.list` hides it. One may also belong to a write still in progress.
    Stores without local paths have no partial objects: ``{}``.
    """
    root = store.local_path("")
    if root is None:
        return {}
    base = Path(root) / prefix if prefix else Path(root)
    if not base.is_dir():
        return {}
    found = {}
    for path in base.rglob(".*.tmp"):
        match = _STAGING.fullmatch(path.name)
        if match and path.is_file():
            found[path.relative_to(root).as_posix()] = (
                path.with_name(match["target"]).relative_to(root).as_posix()
            )
    return dict(sorted(found.items()))


def _staging_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


@contextmanager
def _staged(path: Path, data: bytes) -> Iterator[Path]:
    """``data`` in a private temp file beside ``path``, removed when the block ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _staging_path(path)
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
