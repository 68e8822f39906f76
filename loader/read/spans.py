"""Values of a bytes column named by where they lie in shard files, not copied out of them.

A DataLoader worker that reads a batch with nothing to do to it (no transforms) need not
move the bytes of a variable-size ``bytes`` column at all: the raw shard files it maps in
place are on local disk, so the loop's process can map them too. The reader then returns
the column as :class:`FileSpans` (value ``i`` is bytes ``start[i]:end[i]`` of file
``files[file[i]]``, ``file[i] == -1`` for a null), the transport sends the three arrays and
the file names, and the loop's process cuts the same read-only ``memoryview``\\s out of its
own maps that a 0-worker read returns (:func:`cut`). Only files opened by path qualify:
a leased cache file may be evicted once the worker lets go, and a decompressed shard lives
in the worker's memory.

Each file travels with its identity (device, inode, size) as the worker mapped it; the loop's
process checks it when it maps the file (:func:`map_file`), so a shard deleted or replaced
during the epoch is an error that names it, never other bytes.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

__all__ = ["FileRef", "FileSpans", "cut", "map_file"]


class FileRef(NamedTuple):
    """A shard file as the worker mapped it: its path and identity."""

    path: str
    device: int
    inode: int
    size: int

    @classmethod
    def of(cls, path: str, fd: int) -> FileRef:
        st = os.fstat(fd)
        return cls(path, st.st_dev, st.st_ino, st.st_size)


@dataclass
class FileSpans:
    """A column of ``len(start)`` bytes values by reference (see the module docstring).
    ``buffers`` are this process's maps of ``files`` (never sent), for :meth:`views`."""

    files: list[FileRef]
    file: np.ndarray  # int32 per value, -1: null
    start: np.ndarray  # int64 per value
    end: np.ndarray  # int64 per value
    buffers: list[memoryview] = field(default_factory=list, repr=False)

    @classmethod
    def empty(cls, n: int) -> FileSpans:
        return cls([], np.full(n, -1, np.int32), np.zeros(n, np.int64), np.zeros(n, np.int64))

    def __len__(self) -> int:
        return len(self.start)

    @property
    def nbytes(self) -> int:
        """What travels: the three arrays (the values stay in their files)."""
        return int(self.file.nbytes + self.start.nbytes + self.end.nbytes)

    def put(self, where: np.ndarray, part: FileSpans) -> None:
        """Place ``part``'s values at positions ``where`` (``part`` from another shard)."""
        codes = np.empty(len(part.files) + 1, np.int32)
        codes[-1] = -1  # a null stays a null
        for k, (ref, buffer) in enumerate(zip(part.files, part.buffers)):
            if ref not in self.files:
                self.files.append(ref)
                self.buffers.append(buffer)
            codes[k] = self.files.index(ref)
        self.file[where] = codes[part.file]
        self.start[where] = part.start
        self.end[where] = part.end

    def without(self, nulls: np.ndarray) -> FileSpans:
        """The same column with the values at the boolean mask ``nulls`` made null."""
        file = self.file.copy()
        file[nulls] = -1
        return FileSpans(self.files, file, self.start, self.end, self.buffers)

    def views(self) -> list[memoryview | None]:
        """The values as the 0-worker read returns them, from this process's maps."""
        return cut(self.buffers, self.file, self.start, self.end)


def cut(
    buffers: Sequence[memoryview], file: np.ndarray, start: np.ndarray, end: np.ndarray
) -> list[Any]:
    """Value ``i`` is ``buffers[file[i]][start[i]:end[i]]`` (None where ``file[i] == -1``)."""
    if len(buffers) == 1 and file.min(initial=0) == 0:  # one file, no nulls: the common case
        only = buffers[0]
        return [only[a:b] for a, b in zip(start.tolist(), end.tolist())]
    return [
        None if f < 0 else buffers[f][a:b]
        for f, a, b in zip(file.tolist(), start.tolist(), end.tolist())
    ]


def map_file(ref: FileRef) -> memoryview:
    """A read-only view of the whole file ``ref`` names, refused unless it is still the file
    the worker mapped."""
    try:
        fd = os.open(ref.path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"shard file {ref.path} was removed while a DataLoader worker read from it: do not "
            "delete or rewrite a dataset's files while it is read"
        ) from None
    try:
        if FileRef.of(ref.path, fd) != ref:
            raise RuntimeError(
                f"shard file {ref.path} was replaced while a DataLoader worker read from it "
                "(another file now has its name): do not rewrite a dataset's files while it "
                "is read"
            )
        if not ref.size:
            return memoryview(b"")
        return memoryview(mmap.mmap(fd, 0, access=mmap.ACCESS_READ))
    finally:
        os.close(fd)
