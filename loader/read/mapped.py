"""One raw (decompressed) MDS shard, decoded singly or by batch: a file on local disk,
memory-mapped, or bytes decompressed into memory (:meth:`MappedShard.of_bytes`).

The batch path gathers whole batches with numpy: when every column has a fixed size the
samples form a regular (samples, bytes) matrix and a batch is one row gather; otherwise
the per-sample length prefixes are gathered in one go and fixed-size columns are still
sliced out as arrays. Only variable-size values become Python objects.
"""

from __future__ import annotations

import mmap
import os
from typing import Any

import numpy as np

from loader.read.spans import FileRef, FileSpans
from sparkshard.format.encodings import NDArray, Scalar, get_encoding
from sparkshard.format.index import ShardRecord
from sparkshard.format.shard import read_offsets

__all__ = ["MappedShard"]

_SMALL_GATHER = 256  # bytes per value up to which a fancy-index gather beats a slice loop


class MappedShard:
    """Random access to the samples of one raw (decompressed) shard file."""

    def __init__(
        self, path: str, record: ShardRecord, fd: int | None = None, data: bytes | None = None
    ) -> None:
        """Map ``path`` (or the already open ``fd`` of it, which the caller keeps owning), or
        use ``data``, the raw shard in memory (``path`` then only names it in messages)."""
        self.path = path
        self.record = record
        self._mmap: mmap.mmap | None = None
        # The file other processes may map for these bytes: only one opened by path (a
        # caller's fd is a leased cache file, which may be evicted once it lets go).
        self.file: FileRef | None = None
        if data is not None:
            self._data: bytes | mmap.mmap = data
        else:
            if fd is None:
                with open(path, "rb") as f:
                    self._mmap = _map(f.fileno())
                    self.file = FileRef.of(path, f.fileno())
            else:
                self._mmap = _map(fd)
            self._data = self._mmap if self._mmap is not None else b""
        self._buf = np.frombuffer(self._data, np.uint8)
        self._offsets = read_offsets(memoryview(self._data), record.samples, path).astype(np.int64)
        self._encodings = [get_encoding(e) for e in record.column_encodings]
        self._sizes = list(record.column_sizes)
        self._nvar = sum(1 for s in self._sizes if s is None)
        self._width = int(sum(s for s in self._sizes if s is not None))  # fixed bytes per sample
        self._where = {name: i for i, name in enumerate(record.column_names)}

    @classmethod
    def of_bytes(cls, data: bytes, record: ShardRecord, name: str) -> MappedShard:
        """A shard decompressed into memory (``name`` identifies it in messages)."""
        return cls(name, record, data=data)

    @property
    def nbytes(self) -> int:
        return len(self._data)

    def close(self) -> None:
        self._buf = np.zeros(0, np.uint8)
        self._data = b""
        if self._mmap is not None:
            try:
                self._mmap.close()
            except BufferError:  # a caller still holds a view: unmapped when it is dropped
                pass
            self._mmap = None

    def span_bytes(self, js: np.ndarray | int) -> int:
        """Stored bytes of the samples ``js`` (what reading them touches)."""
        if isinstance(js, int):
            return int(self._offsets[js + 1] - self._offsets[js])
        if self._nvar == 0:  # every sample has the same size
            return len(js) * self._width
        return int((self._offsets[js + 1] - self._offsets[js]).sum())

    def raw(self, j: int) -> bytes:
        return self._buf[self._offsets[j] : self._offsets[j + 1]].tobytes()

    def sample(self, j: int, names: list[str]) -> dict[str, Any]:
        """Decoded stored values of sample ``j`` for the stored columns ``names``."""
        data = self._buf[self._offsets[j] : self._offsets[j + 1]].data
        lengths = np.frombuffer(data, "<u4", count=self._nvar).tolist()
        pos, var = 4 * self._nvar, 0
        spans = []
        for fixed in self._sizes:
            size = fixed
            if size is None:
                size, var = lengths[var], var + 1
            spans.append((pos, size))
            pos += size
        out = {}
        for name in names:
            i = self._where[name]
            start, size = spans[i]
            out[name] = self._encodings[i].decode(data[start : start + size])
        return out

    def batch(self, js: np.ndarray, names: list[str], by_reference: bool = False) -> dict[str, Any]:
        """Decoded stored columns ``names`` for local sample ids ``js``, vectorized;
        ``by_reference``: a bytes column as :class:`FileSpans` when this shard is a file
        another process may map (:attr:`file`)."""
        starts = self._offsets[js]
        if self._nvar == 0:
            return self._fixed_batch(js, names)
        # (batch, variable columns) lengths from each sample's uint32 prefix.
        prefix = self._buf[starts[:, None] + np.arange(4 * self._nvar)]
        lengths = prefix.view("<u4").astype(np.int64).reshape(len(js), self._nvar)
        column_starts: list[np.ndarray] = []
        running, var = starts + 4 * self._nvar, 0
        for size in self._sizes:
            column_starts.append(running)
            if size is None:
                running, var = running + lengths[:, var], var + 1
            else:
                running = running + size
        out: dict[str, Any] = {}
        var_index = {i: k for k, i in enumerate(i for i, s in enumerate(self._sizes) if s is None)}
        for name in names:
            i = self._where[name]
            size = self._sizes[i]
            if size is None:
                spans = column_starts[i], lengths[:, var_index[i]]
                out[name] = self._decode_many(i, *spans, by_reference=by_reference)
            else:
                out[name] = _from_matrix(self._encodings[i], self._gather(column_starts[i], size))
        return out

    def _fixed_batch(self, js: np.ndarray, names: list[str]) -> dict[str, Any]:
        width = int(sum(s for s in self._sizes if s is not None))
        n = self.record.samples
        first = int(self._offsets[0])
        # (samples, bytes per sample): every sample has the same layout. Each column is one
        # gather of its own bytes (a gather of whole rows and then of the column copies twice).
        rows = self._buf[first : first + n * width].reshape(n, width)
        out = {}
        column_offsets = np.cumsum([0, *[int(s or 0) for s in self._sizes]])
        for name in names:
            i = self._where[name]
            block = rows[js, column_offsets[i] : column_offsets[i + 1]]
            out[name] = _from_matrix(self._encodings[i], block)
        return out

    def _gather(self, starts: np.ndarray, size: int) -> np.ndarray:
        """(batch, size) bytes at ``starts``."""
        if size <= _SMALL_GATHER:
            return self._buf[starts[:, None] + np.arange(size)]
        out = np.empty((len(starts), size), np.uint8)
        for row, start in enumerate(starts.tolist()):
            out[row] = self._buf[start : start + size]
        return out

    def _decode_many(
        self, i: int, starts: np.ndarray, lengths: np.ndarray, *, by_reference: bool
    ) -> list[Any] | FileSpans:
        """Variable-size values: ``bytes`` as read-only memoryviews of the shard (no copy:
        ``bytes(v)`` makes one) or by reference, strings decoded, others through their
        encoding."""
        encoding = self._encodings[i]
        if encoding.name == "bytes" and by_reference and self.file is not None:
            view = memoryview(self._data)
            file = np.zeros(len(starts), np.int32)
            return FileSpans([self.file], file, starts, starts + lengths, [view])
        spans = zip(starts.tolist(), (starts + lengths).tolist())
        if encoding.name == "bytes":
            view = memoryview(self._data)
            return [view[a:b] for a, b in spans]
        raw = self._data  # slicing an mmap or bytes yields bytes
        if encoding.name == "str":
            return [raw[a:b].decode("utf-8") for a, b in spans]
        return [encoding.decode(raw[a:b]) for a, b in spans]


def _map(fd: int) -> mmap.mmap | None:
    size = os.fstat(fd).st_size
    return mmap.mmap(fd, 0, access=mmap.ACCESS_READ) if size else None


def _from_matrix(encoding: Any, block: np.ndarray) -> np.ndarray:
    """(batch, size) bytes of a fixed-size column -> (batch, *shape) values."""
    if isinstance(encoding, Scalar):
        return block.view(encoding.dtype).reshape(len(block))
    if isinstance(encoding, NDArray) and encoding.dtype is not None and encoding.shape:
        return block.view(encoding.dtype).reshape(len(block), *encoding.shape)
    return np.array([encoding.decode(row.tobytes()) for row in block])
