r"""Batches from DataLoader workers to the training loop through shared memory, without copies.

The loop's process makes, for every worker of an iteration, a few *slabs*: anonymous
shared-memory files (``memfd``) that the workers inherit (fork) or receive with their
arguments (spawn, forkserver), so no file descriptor ever travels later and no worker has
to outlive the batches it made. A worker writes each batch into one of its free slabs,
growing it when a batch is larger, and only a small picklable :class:`Packed` header goes
through the DataLoader's queue: where each column lies. The loop's process maps the slab
and builds numpy views of it: fixed-size columns, nullable ones, ragged arrays, tensors and
bytes (read-only ``memoryview``\s, as the batch reader returns them) cost no copy; strings
are decoded once, here. A bytes column read by reference (:class:`~loader.read.spans.FileSpans`,
values that lie in raw shard files on local disk) crosses as its offsets only: the loop's
process maps the same files and cuts the same views a 0-worker read makes, so its bytes are
never copied at all.

A slab is reused only once every view of the batch it held is gone: a finalizer on the
batch's base array marks it free in a small control file both sides map, and a worker with
no free slab (the loop holds that many batches) sends the batch through the pipe instead.
Nothing has a name: nothing in ``/dev/shm``, no lock, nothing to clean up; the memory
returns to the system when the last process that maps it lets go, however the processes
end (a ``break``, an exception, ``kill -9`` of a worker or of the loop's process).
"""

from __future__ import annotations

import logging
import math
import mmap
import os
import sys
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import numpy as np

from loader.memfd import PassedFd, memfd
from loader.read.rows import Rows
from loader.read.spans import FileRef, FileSpans, cut, map_file

__all__ = ["Packed", "SlabSet"]

log = logging.getLogger(__name__)
_ALIGN = 64
_FREE, _IN_USE = 0, 1
SLABS_PER_WORKER = 8  # batches a worker can have in flight and held by the loop at once
_MAPPED_FILES = 64  # shard files the loop's process keeps mapped for by-reference columns


def _round_up(n: int, to: int = _ALIGN) -> int:
    return -(-n // to) * to


@dataclass
class Packed:
    """A batch laid out in slab ``slab`` of worker ``worker``; ``tree`` says where."""

    worker: int
    slab: int  # -1: no slab was free, the bytes travel in ``data`` (through the pipe)
    size: int
    tree: Any
    data: bytearray | None = None


class SlabSet:
    """The slabs of one iteration's workers: made by the loop's process, used by both."""

    def __init__(self, workers: int, per_worker: int = SLABS_PER_WORKER) -> None:
        self.per_worker = per_worker
        self.slab_fds = [
            [PassedFd(memfd(0, "sparkshard-batch")) for _ in range(per_worker)]
            for _ in range(workers)
        ]
        self.control_fds = [PassedFd(memfd(per_worker, "sparkshard-slabs")) for _ in range(workers)]
        self._pid = os.getpid()
        self._controls: dict[int, mmap.mmap] = {}
        self._maps: dict[tuple[int, int], mmap.mmap] = {}  # (worker, slab) -> mapping
        self._files: OrderedDict[FileRef, memoryview] = OrderedDict()  # shard file -> map
        self._warned = False

    def __getstate__(self) -> dict[str, Any]:
        return {"per_worker": self.per_worker, "slab_fds": self.slab_fds,
                "control_fds": self.control_fds}  # fmt: skip

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pid, self._controls, self._maps, self._warned = -1, {}, {}, False
        self._files = OrderedDict()

    def close(self) -> None:
        """Close this process's descriptors (mapped views stay valid until dropped)."""
        for fd in [f for fds in self.slab_fds for f in fds] + self.control_fds:
            if fd.fd >= 0:
                os.close(fd.fd)
                fd.fd = -1
        self._files.clear()  # a shard file stays mapped while a value still views it

    def _control(self, worker: int) -> mmap.mmap:
        control = self._controls.get(worker)
        if control is None:
            control = self._controls[worker] = mmap.mmap(
                self.control_fds[worker].fd, self.per_worker
            )
        return control

    def _mapped(self, worker: int, slab: int, size: int) -> mmap.mmap:
        key = (worker, slab)
        current = self._maps.get(key)
        if current is None or len(current) < size:
            fd = self.slab_fds[worker][slab].fd
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, _round_up(int(size * 1.25), mmap.PAGESIZE))
            current = self._maps[key] = mmap.mmap(fd, os.fstat(fd).st_size)
        return current

    # --- the worker's side -------------------------------------------------------------------
    def pack(self, batch: Any, worker: int) -> Packed | Any:
        """``batch`` as a header over a free slab of ``worker``; if the loop still holds every
        slab, the same layout in a buffer that is pickled through the pipe (one copy more, the
        same batch on arrival); ``batch`` itself if it holds no array."""
        layout = _Layout()
        tree = layout.plan(batch)
        if not layout.parts:
            return batch
        control = self._control(worker)
        free = [i for i in range(self.per_worker) if control[i] == _FREE]
        if not free:
            if not self._warned:
                self._warned = True
                log.warning(
                    "the training loop holds %d batches of DataLoader worker %d: further "
                    "batches are pickled (slower) until it drops some",
                    self.per_worker,
                    worker,
                )
            data = bytearray(layout.size)
            layout.write(data)
            return Packed(worker, -1, layout.size, tree, data)
        slab = free[0]
        layout.write(self._mapped(worker, slab, layout.size))
        control[slab] = _IN_USE
        return Packed(worker, slab, layout.size, tree)

    # --- the loop's side ----------------------------------------------------------------------
    def unpack(self, packed: Any) -> Any:
        """The batch a :class:`Packed` header describes, as views of its slab."""
        if not isinstance(packed, Packed):
            return packed
        return _build(packed.tree, self._base(packed))

    def unpack_each(self, packed: Any) -> list[Callable[[], Any]]:
        """For a hand-off of several batches, one builder per batch: each batch is built
        only when it is delivered, so a group's values never wait (and age into Python's
        oldest GC generation, whose full collections stall the loop) as objects."""
        if not isinstance(packed, Packed):
            return [partial(_same, batch) for batch in packed]
        tag, trees = packed.tree
        assert tag == "list", tag
        base = self._base(packed)  # the builders hold it until the last batch is built
        return [partial(_build, tree, base) for tree in trees]

    def _base(self, packed: Packed) -> _Base:
        if packed.data is not None:
            return _Base(np.frombuffer(packed.data, np.uint8), self._file)
        slab = self._mapped(packed.worker, packed.slab, packed.size)
        array = np.frombuffer(slab, np.uint8, count=packed.size)
        control = self._control(packed.worker)
        weakref.finalize(array, _release, control, packed.slab)  # the last view frees the slab
        return _Base(array, self._file)

    def _file(self, ref: FileRef) -> memoryview:
        """A shard file a worker read by reference, mapped here (a few stay mapped)."""
        view = self._files.get(ref)
        if view is None:
            view = self._files[ref] = map_file(ref)
            if len(self._files) > _MAPPED_FILES:
                self._files.popitem(last=False)  # unmapped once its last value is dropped
        else:
            self._files.move_to_end(ref)
        return view


class _Base(NamedTuple):
    """What a batch is built from: its slab (or pickled buffer) and the shard files."""

    slab: np.ndarray
    file: Callable[[FileRef], memoryview]


def _same(batch: Any) -> Any:
    return batch


def _release(control: mmap.mmap, slab: int) -> None:
    if not control.closed:
        control[slab] = _FREE


class _Layout:
    """Plans where each array of a batch goes in a slab, then copies them there."""

    def __init__(self) -> None:
        self.parts: list[tuple[int, Any]] = []  # (offset, buffer to copy)
        self.size = 0

    def _place(self, buffer: Any) -> int:
        offset = self.size
        nbytes = memoryview(buffer).nbytes
        self.parts.append((offset, buffer))
        self.size = _round_up(offset + nbytes)
        return offset

    def array(self, value: np.ndarray) -> tuple[Any, ...]:
        value = np.ascontiguousarray(value)
        if value.dtype.hasobject:
            raise TypeError("object arrays are pickled")
        return ("nd", value.dtype.str, value.shape, self._place(value.reshape(-1).view(np.uint8)))

    def plan(self, value: Any) -> Any:
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(value, torch.Tensor) and not value.is_cuda:
            try:
                return ("tensor", self.array(value.detach().cpu().numpy()))
            except (TypeError, RuntimeError):  # dtypes numpy lacks (bfloat16): pickled
                return ("obj", value)
        if isinstance(value, np.ma.MaskedArray):
            mask = np.ma.getmaskarray(value)
            return ("masked", self.array(np.ma.getdata(value)), self.array(mask))
        if isinstance(value, np.ndarray) and not value.dtype.hasobject:
            return self.array(value)
        if isinstance(value, FileSpans):  # a bytes column by reference: its offsets only
            parts = (self.array(value.file), self.array(value.start), self.array(value.end))
            return ("spans", list(value.files), *parts)
        if isinstance(value, memoryview):  # a value of a bytes column, alone
            return ("view", self.array(np.frombuffer(value, np.uint8)))
        if isinstance(value, dict):
            return ("dict", [(k, self.plan(v)) for k, v in value.items()])
        if isinstance(value, tuple):
            items = [self.plan(v) for v in value]
            named = type(value) if hasattr(value, "_fields") else None
            return ("tuple", named, items)
        if isinstance(value, Rows) and value.intact():  # one matrix's rows: the matrix
            return ("rows", self.array(value.matrix))
        if isinstance(value, list):
            return self._sequence(value)
        return ("obj", value)

    def _sequence(self, values: list[Any]) -> Any:
        """A column of variable-size values: one buffer plus offsets, or pickled as is."""
        kind = _kind(values)
        if kind is None:
            return ("list", [self.plan(v) for v in values])
        if kind == "array":
            return self._arrays(values)
        nulls = [i for i, v in enumerate(values) if v is None]
        empty: Any = "" if kind == "str" else b""
        present: list[Any] = [empty if v is None else v for v in values] if nulls else values
        if kind == "str":  # decoded once in the loop's process, then cut at character ends
            text = "".join(present).encode("utf-8", "surrogatepass")
            ends = np.cumsum(np.fromiter(map(len, present), np.int64, len(present)))
            return ("text", self._place(text), len(text), self.array(ends), nulls)
        lengths = (
            [memoryview(v).nbytes for v in present]
            if kind == "memoryview"
            else list(map(len, present))
        )
        ends = np.cumsum(np.asarray(lengths, np.int64))
        total = int(ends[-1]) if len(ends) else 0
        if total <= _JOIN_BELOW * len(present):  # small values: one C-level join, one copy
            return ("values", kind, self._place(b"".join(present)), self.array(ends), nulls)
        data_offset = self.size
        for buffer, length in zip(present, lengths):  # large values: placed one by one
            self.parts.append((self.size, buffer))
            self.size += length
        self.size = _round_up(self.size)
        return ("values", kind, data_offset, self.array(ends), nulls)

    def _arrays(self, values: list[Any]) -> Any:
        """A column of arrays (ragged values): those of one dtype and shape cross as one
        stacked array, its rows on the way out; those that agree in dtype and trailing shape
        cross as one array plus row ends (one node; one slice per value on the way out):
        small values joined by one C call, large ones laid back to back straight into the
        slab (each copied once). Others are placed one by one."""
        present = [v for v in values if v is not None]
        first = present[0]
        same = first.ndim >= 1 and all(
            v.dtype == first.dtype and v.shape[1:] == first.shape[1:] for v in present
        )
        if not same:
            return ("arrays", [None if v is None else self.array(v) for v in values])
        nulls = [i for i, v in enumerate(values) if v is None]
        if not nulls and all(v.shape == first.shape for v in present):
            # One shape (embeddings): one stacked array; its rows are the values again.
            return ("rows", self.array(np.stack(present)))
        ends = np.cumsum(np.fromiter((len(v) for v in present), np.int64, len(present)))
        if sum(v.nbytes for v in present) <= _JOIN_BELOW * len(present):  # small: one C join
            joined = self.array(np.concatenate(present) if len(present) > 1 else first)
            return ("ragged", joined, self.array(ends), nulls, len(values))
        offset = self.size
        for value in present:  # large: back to back (one dtype, so elements stay aligned)
            flat = np.ascontiguousarray(value).reshape(-1).view(np.uint8)
            self.parts.append((self.size, flat))
            self.size += flat.nbytes
        self.size = _round_up(self.size)
        joined = ("nd", first.dtype.str, (int(ends[-1]), *first.shape[1:]), offset)
        return ("ragged", joined, self.array(ends), nulls, len(values))

    def write(self, slab: mmap.mmap | bytearray) -> None:
        target = np.frombuffer(slab, np.uint8)
        for offset, buffer in self.parts:
            source = np.frombuffer(buffer, np.uint8)
            target[offset : offset + len(source)] = source


_KINDS: dict[type, str] = {
    str: "str",
    bytes: "bytes",
    memoryview: "memoryview",
    np.ndarray: "array",
}
_JOIN_BELOW = 64 << 10  # mean bytes per value under which a column is joined before the copy


def _kind(values: list[Any]) -> str | None:
    """What every non-null value of a column is (None: mixed, other objects, or no values)."""
    types = set(map(type, values))
    types.discard(type(None))
    kind = _KINDS.get(types.pop()) if len(types) == 1 else None
    if kind == "array" and any(v.dtype.hasobject for v in values if v is not None):
        return None
    return kind


def _build(node: Any, base: _Base) -> Any:
    tag = node[0]
    if tag == "nd":
        _, dtype, shape, offset = node
        count = math.prod(shape)
        if not count:
            return np.empty(shape, np.dtype(dtype))
        return np.frombuffer(base.slab, np.dtype(dtype), count, offset).reshape(shape)
    return _BUILDERS[tag](node, base)


def _build_values(node: Any, base: _Base) -> list[Any]:
    _, kind, data_offset, ends_node, nulls = node
    ends = _build(ends_node, base).tolist()
    data = memoryview(base.slab).toreadonly()  # type: ignore[arg-type]
    starts = [0, *ends[:-1]]
    out: list[Any]
    if kind == "bytes":
        out = [bytes(data[data_offset + a : data_offset + b]) for a, b in zip(starts, ends)]
    else:
        out = [data[data_offset + a : data_offset + b] for a, b in zip(starts, ends)]
    for i in nulls:
        out[i] = None
    return out


def _build_text(node: Any, base: _Base) -> list[Any]:
    _, offset, size, ends_node, nulls = node
    text = str(memoryview(base.slab)[offset : offset + size], "utf-8", "surrogatepass")  # type: ignore[arg-type]
    ends = _build(ends_node, base).tolist()
    out: list[Any] = [text[a:b] for a, b in zip([0, *ends[:-1]], ends)]
    for i in nulls:
        out[i] = None
    return out


def _build_ragged(node: Any, base: _Base) -> list[Any]:
    _, joined_node, ends_node, nulls, n = node
    joined, ends = _build(joined_node, base), _build(ends_node, base).tolist()
    present = [joined[a:b] for a, b in zip([0, *ends[:-1]], ends)]
    if not nulls:
        return present
    out: list[Any] = [None] * n
    values = iter(present)
    null = set(nulls)
    for i in range(n):
        if i not in null:
            out[i] = next(values)
    return out


def _build_spans(node: Any, base: _Base) -> list[Any]:
    _, files, file_node, start_node, end_node = node
    buffers = [base.file(ref) for ref in files]
    return cut(buffers, _build(file_node, base), _build(start_node, base), _build(end_node, base))


def _build_tensor(node: Any, base: _Base) -> Any:
    import torch

    return torch.from_numpy(_build(node[1], base))


_BUILDERS: dict[str, Callable[[Any, _Base], Any]] = {
    "obj": lambda node, base: node[1],
    "view": lambda node, base: memoryview(_build(node[1], base)).toreadonly(),
    "tensor": _build_tensor,
    "masked": lambda node, base: np.ma.MaskedArray(_build(node[1], base), _build(node[2], base)),
    "dict": lambda node, base: {k: _build(v, base) for k, v in node[1]},
    "tuple": lambda node, base: (
        node[1](*[_build(v, base) for v in node[2]])
        if node[1] is not None
        else tuple(_build(v, base) for v in node[2])
    ),
    "list": lambda node, base: [_build(v, base) for v in node[1]],
    "arrays": lambda node, base: [None if v is None else _build(v, base) for v in node[1]],
    "values": _build_values,
    "text": _build_text,
    "spans": _build_spans,
    "ragged": _build_ragged,
    "rows": lambda node, base: Rows(_build(node[1], base)),
}
