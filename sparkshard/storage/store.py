"""The ``Store`` protocol: storage rooted at one dataset URL, addressed by relative keys."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["Store", "check_key"]


@runtime_checkable
class Store(Protocol):
    """Storage rooted at one dataset URL, addressed by ``/``-separated relative keys.

    Every backend behaves the same (:class:`sparkshard.storage.testing.StoreContract`
    holds each one to it): missing objects raise ``FileNotFoundError``
    naming the URL, denied access ``PermissionError``, other request failures
    :class:`~sparkshard.errors.StorageError`.
    """

    @property
    def url(self) -> str:
        """The root URL, as given (normalised)."""
        ...

    def read(self, key: str) -> bytes:
        """The whole object; ``FileNotFoundError`` naming the URL if absent."""
        ...

    def read_view(self, key: str) -> memoryview:
        """The whole object as a read-only buffer, without the copy ``read`` makes where the
        backend can hand over its own (cloud downloads); errors as for ``read``."""
        ...

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """``length`` bytes from ``start``: fewer at the end of the object, none past it."""
        ...

    def write(self, key: str, data: bytes) -> None:
        """Publish ``data`` atomically: readers see the old object or the new one, never a part."""
        ...

    def write_new(self, key: str, data: bytes) -> None:
        """Create ``key`` only if it does not exist (the commit point); else ``FileExistsError``."""
        ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> list[str]:
        """Every key under the folder ``prefix`` (recursively), sorted, relative to the root.

        ``prefix`` names a folder (``"data/"`` or ``"data"``), not the start of a name:
        ``"data"`` lists ``data/x`` but not ``database/x``. Naming one key lists that key.
        """
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""
        ...

    def local_path(self, key: str) -> str | None:
        """A filesystem path for ``key`` when the store is local (for mmap), else ``None``."""
        ...


def check_key(key: str, root: str) -> str:
    """``key`` if it is a relative key that stays inside ``root`` (``""`` is the root itself)."""
    parts = key.split("/")
    if key.startswith("/") or ".." in parts or "" in parts[:-1]:
        raise ValueError(
            f"store key {key!r} must be a relative '/'-separated path that stays inside {root}"
        )
    return key
