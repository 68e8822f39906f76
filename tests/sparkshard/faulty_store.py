"""A Store that fails one chosen mutating request, the way real storage fails."""

from __future__ import annotations

import errno

from sparkshard.storage import Store, StoreWrapper


class FailingStore(StoreWrapper):
    """Fails the ``fail_at``-th mutating request (``write`` or ``write_new``, counted from 1).

    ``landed=True`` performs the request first and then fails (a response lost on the way
    back: the server stored the object); ``blind=True`` also fails every later read of that
    key (the store cannot be asked what happened). ``calls`` lists every mutating request.
    """

    def __init__(
        self, inner: Store, fail_at: int = 0, *, landed: bool = False, blind: bool = False
    ) -> None:
        super().__init__(inner)
        self.fail_at, self.landed, self.blind = fail_at, landed, blind
        self.calls: list[tuple[str, str]] = []
        self.failed: str | None = None

    def _request(self, op: str, key: str, data: bytes) -> None:
        self.calls.append((op, key))
        if len(self.calls) != self.fail_at:
            getattr(self.inner, op)(key, data)
            return
        self.failed = key
        if self.landed:
            getattr(self.inner, op)(key, data)
        raise OSError(errno.ENOSPC, f"injected failure of {op} {key}")

    def write(self, key: str, data: bytes) -> None:
        self._request("write", key, data)

    def write_new(self, key: str, data: bytes) -> None:
        self._request("write_new", key, data)

    def read(self, key: str) -> bytes:
        if self.blind and key == self.failed:
            raise OSError(errno.EIO, f"injected failure reading {key}")
        return self.inner.read(key)
