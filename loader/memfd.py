"""Anonymous shared-memory files (``memfd``) that DataLoader workers share with their loop.

:func:`memfd` makes one (no name in ``/dev/shm``, nothing to clean up: the memory returns to
the system when the last process that maps it lets go). :class:`PassedFd` wraps its
descriptor so that a worker started by ``fork`` simply inherits it and one started by
``spawn`` or ``forkserver`` receives a duplicate with its arguments.
"""

from __future__ import annotations

import os
from multiprocessing import reduction
from multiprocessing.context import get_spawning_popen
from typing import Any

__all__ = ["PassedFd", "memfd", "spawning"]


def memfd(size: int, name: str) -> int:
    """A new anonymous shared-memory file of ``size`` bytes (zeros)."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    if size:
        os.ftruncate(fd, size)
    return fd


def spawning() -> bool:
    """Whether the current pickling sends a process its start-up arguments (the only time a
    descriptor can travel with them)."""
    return get_spawning_popen() is not None


class PassedFd:
    """A file descriptor that a spawned or forkserver worker receives with its arguments."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[Any, ...]:
        return (PassedFd._received, (reduction.DupFd(self.fd),))

    @staticmethod
    def _received(dup: Any) -> PassedFd:
        return PassedFd(dup.detach())
