"""``StoreWrapper``: a Store that forwards every call to another one.

Subclass it to change one or two operations and keep the rest of the contract, as
:class:`sparkshard.write.commit.GuardedStore` does for writes that must undo themselves
after their job finished, and as the fault-injecting stores of the tests do.
"""

from __future__ import annotations

from sparkshard.storage.store import Store

__all__ = ["StoreWrapper"]


class StoreWrapper:
    """Forwards every :class:`Store` operation to ``inner``; override what should differ."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"

    @property
    def url(self) -> str:
        return self.inner.url

    def read(self, key: str) -> bytes:
        return self.inner.read(key)

    def read_view(self, key: str) -> memoryview:
        return self.inner.read_view(key)

    def read_range(self, key: str, start: int, length: int) -> bytes:
        return self.inner.read_range(key, start, length)

    def write(self, key: str, data: bytes) -> None:
        self.inner.write(key, data)

    def write_new(self, key: str, data: bytes) -> None:
        self.inner.write_new(key, data)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list(self, prefix: str = "") -> list[str]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def local_path(self, key: str) -> str | None:
        return self.inner.local_path(key)
