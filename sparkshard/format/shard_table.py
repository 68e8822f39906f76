"""The shard entries of an index as columns: a few numpy arrays, records built on demand.

An index of 100,000 shards is a handful of arrays here (samples, sizes, basenames as one
offsets + bytes buffer per kind of file, digests per algorithm, and each shard's layout as
a code into the few distinct layouts), not 100,000 Python objects. :class:`ShardTable` is a
``Sequence[ShardRecord]``: ``table[i]`` builds shard ``i``'s record when that shard is
opened; the loader's start-up reads the arrays only. It pickles as its arrays (what a
DataLoader worker receives), and :mod:`sparkshard.format.columnar_index` stores it on disk.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple, overload

import numpy as np

from sparkshard.format.records import FileInfo, ShardRecord

__all__ = ["HashColumn", "Layout", "ShardTable", "Strings"]

PARTS = ("raw", "zip")  # the two files of a shard: raw_data and zip_data


class Strings:
    """An immutable column of strings: UTF-8 bytes back to back, cut by ``offsets``."""

    def __init__(self, offsets: np.ndarray, data: np.ndarray) -> None:
        self.offsets, self.data = offsets, data  # (n + 1,) int64, (bytes,) uint8

    @classmethod
    def of(cls, values: Iterable[str]) -> Strings:
        encoded = [v.encode("utf-8") for v in values]
        offsets = np.zeros(len(encoded) + 1, np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        return cls(offsets, np.frombuffer(b"".join(encoded), np.uint8))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str:
        start, stop = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.data[start:stop].tobytes().decode("utf-8")

    def tolist(self) -> list[str]:
        data, bounds = self.data.tobytes(), self.offsets.tolist()
        return [data[a:b].decode("utf-8") for a, b in itertools.pairwise(bounds)]

    def take(self, rows: np.ndarray) -> Strings:
        starts, lengths = self.offsets[rows], self.offsets[rows + 1] - self.offsets[rows]
        offsets = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # Each byte of the result is its string's start plus its distance into the string.
        picks = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1], dtype=np.int64)
        return Strings(offsets, self.data[picks])

    @staticmethod
    def concat(parts: Sequence[Strings]) -> Strings:
        shifts = np.cumsum([0] + [len(p.data) for p in parts])
        offsets = [parts[0].offsets[:1]] + [p.offsets[1:] + s for p, s in zip(parts, shifts)]
        return Strings(np.concatenate(offsets), np.concatenate([p.data for p in parts]))

    def equals(self, other: Strings) -> bool:
        return np.array_equal(self.offsets, other.offsets) and np.array_equal(self.data, other.data)


class Layout(NamedTuple):
    """What most shards of an index share: columns, compression, hash names, size limit."""

    column_names: tuple[str, ...]
    column_encodings: tuple[str, ...]
    column_sizes: tuple[int | None, ...]
    compression: str | None
    hashes: tuple[str, ...]
    size_limit: Any

    @classmethod
    def of(cls, record: ShardRecord) -> Layout:
        return cls(
            record.column_names,
            record.column_encodings,
            record.column_sizes,
            record.compression,
            record.hashes,
            record.size_limit,
        )

    def to_json(self) -> list[Any]:
        return [list(v) if isinstance(v, tuple) else v for v in self]

    @classmethod
    def from_json(cls, obj: list[Any]) -> Layout:
        names, encodings, sizes, compression, hashes, size_limit = obj
        return cls(
            tuple(names), tuple(encodings), tuple(sizes), compression, tuple(hashes), size_limit
        )


class HashColumn(NamedTuple):
    """One algorithm's digests of one part (``raw`` or ``zip``) of every shard."""

    part: str
    algo: str
    present: np.ndarray  # (n,) bool: the shard's file records this algorithm
    values: Strings  # "" where absent

    def take(self, rows: np.ndarray) -> HashColumn:
        return HashColumn(self.part, self.algo, self.present[rows], self.values.take(rows))


class ShardTable(Sequence[ShardRecord]):
    """Every shard entry of an index, column by column (see the module docstring)."""

    def __init__(
        self,
        *,
        samples: np.ndarray,
        raw_bytes: np.ndarray,
        zip_bytes: np.ndarray,
        raw_names: Strings,
        zip_names: Strings,
        layout: np.ndarray,
        layouts: Sequence[Layout],
        hashes: Sequence[HashColumn] = (),
        fingerprint: str | None = None,
    ) -> None:
        self.samples = samples  # (n,) int64
        self.raw_bytes = raw_bytes  # (n,) int64
        self.zip_bytes = zip_bytes  # (n,) int64, -1 where the shard is stored uncompressed
        self.raw_names, self.zip_names = raw_names, zip_names  # zip: "" where uncompressed
        self.layout = layout  # (n,) uint32 code into layouts
        self.layouts = tuple(layouts)
        self.hashes = tuple(sorted(hashes, key=lambda h: (h.part, h.algo)))
        self._fingerprint = fingerprint

    # --- building -----------------------------------------------------------------------
    @classmethod
    def from_records(cls, records: Iterable[ShardRecord]) -> ShardTable:
        if isinstance(records, ShardTable):
            return records
        records = list(records)
        codes: dict[Layout, int] = {}
        layout = np.array([codes.setdefault(Layout.of(r), len(codes)) for r in records], np.uint32)
        algos = sorted(
            {("raw", a) for r in records for a in r.raw_data.hashes}
            | {("zip", a) for r in records if r.zip_data for a in r.zip_data.hashes}
        )
        hashes = []
        for part, algo in algos:
            files = [r.raw_data if part == "raw" else r.zip_data for r in records]
            present = np.array([f is not None and algo in f.hashes for f in files], np.bool_)
            values = Strings.of(f.hashes.get(algo, "") if f else "" for f in files)
            hashes.append(HashColumn(part, algo, present, values))
        return cls(
            samples=np.array([r.samples for r in records], np.int64),
            raw_bytes=np.array([r.raw_data.bytes for r in records], np.int64),
            zip_bytes=np.array([r.zip_data.bytes if r.zip_data else -1 for r in records], np.int64),
            raw_names=Strings.of(r.raw_data.basename for r in records),
            zip_names=Strings.of(r.zip_data.basename if r.zip_data else "" for r in records),
            layout=layout,
            layouts=list(codes),
            hashes=hashes,
        )

    def take(self, rows: Sequence[int] | np.ndarray) -> ShardTable:
        """The shards ``rows`` (in that order) as a table of their own."""
        rows = np.asarray(rows, np.int64).reshape(-1)
        return ShardTable(
            samples=self.samples[rows],
            raw_bytes=self.raw_bytes[rows],
            zip_bytes=self.zip_bytes[rows],
            raw_names=self.raw_names.take(rows),
            zip_names=self.zip_names.take(rows),
            layout=self.layout[rows],
            layouts=self.layouts,
            hashes=[h.take(rows) for h in self.hashes],
        )

    @staticmethod
    def concat(tables: Sequence[ShardTable | Sequence[ShardRecord]]) -> ShardTable:
        """The shards of ``tables`` one after the other (an append), without building records."""
        parts = [ShardTable.from_records(t) for t in tables]
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return ShardTable.from_records(())
        merged: dict[Layout, int] = {}
        codes = []
        for p in parts:
            remap = np.array([merged.setdefault(lay, len(merged)) for lay in p.layouts] or [0])
            codes.append(remap[p.layout].astype(np.uint32))
        keys = sorted({(h.part, h.algo) for p in parts for h in p.hashes})
        hashes = [HashColumn(*key, *_joined([p.hash_column(*key) for p in parts])) for key in keys]
        return ShardTable(
            samples=np.concatenate([p.samples for p in parts]),
            raw_bytes=np.concatenate([p.raw_bytes for p in parts]),
            zip_bytes=np.concatenate([p.zip_bytes for p in parts]),
            raw_names=Strings.concat([p.raw_names for p in parts]),
            zip_names=Strings.concat([p.zip_names for p in parts]),
            layout=np.concatenate(codes),
            layouts=list(merged),
            hashes=hashes,
        )

    def hash_column(self, part: str, algo: str) -> tuple[np.ndarray, Strings]:
        """(present, values) of one algorithm's digests; all absent if no shard records it."""
        for h in self.hashes:
            if (h.part, h.algo) == (part, algo):
                return h.present, h.values
        return np.zeros(len(self), np.bool_), Strings.of([""] * len(self))

    # --- the sequence of records --------------------------------------------------------
    def __len__(self) -> int:
        return len(self.samples)

    @overload
    def __getitem__(self, i: int) -> ShardRecord: ...
    @overload
    def __getitem__(self, i: slice) -> ShardTable: ...
    def __getitem__(self, i: int | slice) -> ShardRecord | ShardTable:
        if isinstance(i, slice):
            return self.take(np.arange(len(self))[i])
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"shard {i} is out of range: the index has {n} shards")
        return self.record(int(i) % n)

    def __iter__(self) -> Iterator[ShardRecord]:
        return (self.record(i) for i in range(len(self)))

    def record(self, i: int) -> ShardRecord:
        """Shard ``i``'s index entry as a :class:`ShardRecord` (built now, not kept)."""
        lay = self.layouts[int(self.layout[i])]
        raw = FileInfo(self.raw_names[i], int(self.raw_bytes[i]), self._digests("raw", i))
        zipped = None
        if self.zip_bytes[i] >= 0:
            zipped = FileInfo(self.zip_names[i], int(self.zip_bytes[i]), self._digests("zip", i))
        return ShardRecord(
            column_names=lay.column_names,
            column_encodings=lay.column_encodings,
            column_sizes=lay.column_sizes,
            compression=lay.compression,
            hashes=lay.hashes,
            raw_data=raw,
            samples=int(self.samples[i]),
            size_limit=lay.size_limit,
            zip_data=zipped,
        )

    def _digests(self, part: str, i: int) -> dict[str, str]:
        return {h.algo: h.values[i] for h in self.hashes if h.part == part and h.present[i]}

    # --- whole-table facts --------------------------------------------------------------
    @property
    def num_samples(self) -> int:
        return int(self.samples.sum())

    @property
    def stored_bytes(self) -> np.ndarray:
        """(n,) bytes of each shard's file as stored (compressed where compression is on)."""
        return np.where(self.zip_bytes >= 0, self.zip_bytes, self.raw_bytes)

    def stored_name(self, i: int) -> str:
        return self.zip_names[i] if self.zip_bytes[i] >= 0 else self.raw_names[i]

    def stored_names(self) -> list[str]:
        zipped, raw = self.zip_names.tolist(), self.raw_names.tolist()
        return [z if b >= 0 else r for z, r, b in zip(zipped, raw, self.zip_bytes.tolist())]

    def used_layouts(self) -> list[Layout]:
        """The distinct layouts of the shards (one for almost every dataset)."""
        return [self.layouts[c] for c in np.unique(self.layout).tolist()]

    def fingerprint(self) -> str:
        """A digest of what the samples are: shard files, their sizes and hashes, in order
        (the value :meth:`DatasetIndex.fingerprint` has always had; computed once)."""
        if self._fingerprint is None:
            names = [list(lay.column_names) for lay in self.layouts]
            digests = [(h.algo, h.present.tolist(), h.values.tolist()) for h in self.hashes]
            raw = [d for d, h in zip(digests, self.hashes) if h.part == "raw"]
            content = [
                (
                    {"basename": b, "bytes": n, "hashes": {a: v[i] for a, p, v in raw if p[i]}},
                    s,
                    names[c],
                )
                for i, (b, n, s, c) in enumerate(
                    zip(
                        self.raw_names.tolist(),
                        self.raw_bytes.tolist(),
                        self.samples.tolist(),
                        self.layout.tolist(),
                    )
                )
            ]
            text = json.dumps(content, sort_keys=True).encode("utf-8")
            self._fingerprint = hashlib.sha256(text).hexdigest()[:32]
        return self._fingerprint

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        if len(self) != len(other):
            return False
        return all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ShardTable({len(self)} shards, {self.num_samples} samples)"


def _joined(columns: list[tuple[np.ndarray, Strings]]) -> tuple[np.ndarray, Strings]:
    return np.concatenate([p for p, _ in columns]), Strings.concat([v for _, v in columns])
