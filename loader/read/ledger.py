"""Which shard files passed their hash check, shared by a dataset's process and its workers.

A shard file is hashed once, not once per DataLoader worker and epoch: the ledger is one
byte per shard in an anonymous shared-memory file (:mod:`loader.memfd`), made by the reader
in the dataset's process. Workers started by ``fork`` inherit its mapping and those started
by ``spawn`` or ``forkserver`` receive its descriptor, so every worker of every epoch sees
what any of them checked. While a process checks a shard it holds a byte-range lock on the
shard's byte: a worker that needs the same shard checks the others first, then waits for it
rather than hashing it again, and the lock of a process that dies mid-check goes with it.
A check that fails marks nothing, so every reader of that shard reports it.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from loader.memfd import PassedFd, memfd, spawning

__all__ = ["HashLedger"]

_CHECKED = 1


class HashLedger:
    """Shard ``i`` checked (by any process sharing the ledger) or not."""

    def __init__(self, shards: int) -> None:
        self.shards = shards
        self._adopt(None)

    def _adopt(self, fd: PassedFd | None) -> None:
        self._fd = fd or PassedFd(memfd(max(1, self.shards), "sparkshard-verified"))
        self._flags: mmap.mmap | None = None
        weakref.finalize(self, os.close, self._fd.fd)

    def __getstate__(self) -> dict[str, Any]:
        # A worker's start-up arguments carry the ledger itself; any other pickle (a user
        # saving the dataset) carries none, and a fresh one is made where it is loaded.
        return {"shards": self.shards, "fd": self._fd if spawning() else None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.shards = state["shards"]
        self._adopt(state["fd"])

    def checked(self, i: int) -> bool:
        return self._map()[i] == _CHECKED

    def verify(self, shards: Iterable[int], check: Callable[[int], None]) -> None:
        """``check(i)`` (raising if shard ``i`` is bad) for each of ``shards`` that no process
        has checked yet: those no other process is checking first, then the rest, waiting
        for whoever checks them."""
        flags = self._map()
        busy = []
        for i in shards:
            if flags[i] != _CHECKED and not self._check_locked(i, check, wait=False):
                busy.append(i)
        for i in busy:
            self._check_locked(i, check, wait=True)

    def _check_locked(self, i: int, check: Callable[[int], None], *, wait: bool) -> bool:
        fd = self._fd.fd
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB), 1, i, os.SEEK_SET)
        except (BlockingIOError, PermissionError):  # another process is checking it
            return False
        try:
            flags = self._map()
            if flags[i] != _CHECKED:
                check(i)
                flags[i] = _CHECKED
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, i, os.SEEK_SET)
        return True

    def _map(self) -> mmap.mmap:
        if self._flags is None:
            self._flags = mmap.mmap(self._fd.fd, max(1, self.shards))
        return self._flags
