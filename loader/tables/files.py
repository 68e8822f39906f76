"""The data files of a local (or mounted) table: footers, deletion vectors, row groups.

Each file is checked against the size its snapshot records before it is read, so a file
replaced under the same name is refused, and a file that is gone (a ``VACUUM`` removed it
after a newer version dropped it) is reported with the file, the version and the fix.
Nothing is ever written beside the table: files are opened read-only.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from loader.tables.deletion import deleted_rows
from loader.tables.snapshot import TableFile, TableSnapshot
from sparkshard.errors import CorruptShardError

__all__ = ["DECODE_ROWS", "LocalFiles", "missing_file_error", "read_row_group"]

_OPEN_FILES = 64  # Parquet files kept open per reader
# Rows per record batch a row group is decoded in. Whole, pyarrow grows each column's output
# by doubling; in batches each batch's buffers are sized once. Over 10 alternating fresh
# processes, the delta-rs W2 row group (47 MB) took 20-34 ms in batches of 8,192 against
# 22-302 ms (median 54) whole; all of W1's took 66-80 ms against 73-832 ms.
DECODE_ROWS = 8192


def read_row_group(handle: Any, group: int, columns: list[str], rows: int = DECODE_ROWS) -> Any:
    """Row group ``group`` of an open ``pyarrow.parquet.ParquetFile`` as a table whose chunks
    are the record batches of ``rows`` it was decoded in (they are not joined: that would
    copy every column once more)."""
    if handle.metadata.row_group(group).num_rows <= rows:
        return handle.read_row_group(group, columns=columns, use_threads=False)
    import pyarrow as pa

    batches = handle.iter_batches(
        batch_size=rows, row_groups=[group], columns=columns, use_threads=False
    )
    return pa.Table.from_batches(list(batches))


def missing_file_error(snapshot: TableSnapshot, file: TableFile, where: str) -> FileNotFoundError:
    """The error for a data file of the pinned snapshot that is no longer there."""
    if snapshot.kind == "delta":
        fix = (
            f"it was probably removed by VACUUM after a later version dropped it. Read a "
            f"version whose files still exist (version=None reads the latest), or keep "
            f"files longer (delta.deletedFileRetentionDuration) while readers pin version "
            f"{snapshot.version}"
        )
    else:
        fix = "the file list changed since the dataset was opened; open it again"
    return FileNotFoundError(f"data file {where} of {snapshot.name} is gone: {fix}")


class LocalFiles:
    """Row groups of a snapshot's files on a local file system, read in place."""

    def __init__(self, snapshot: TableSnapshot, root: Path, decode_rows: int = DECODE_ROWS) -> None:
        self.snapshot, self.root, self.decode_rows = snapshot, root, decode_rows
        self._open: OrderedDict[int, Any] = OrderedDict()
        self.bytes_read = self.bytes_downloaded = 0

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_open": OrderedDict()}

    def path(self, i: int) -> Path:
        file = self.snapshot.files[i]
        if file.path.startswith("/"):
            return Path(file.path)
        if "://" in file.path:
            return Path(file.path.removeprefix("file://"))
        return self.root / file.path

    fetches_ahead = False

    def footer(self, i: int) -> tuple[Any, int, int, str | None]:
        import pyarrow.parquet as pq

        path = self._checked(i)
        metadata = pq.read_metadata(path)
        return metadata, metadata.serialized_size + 8, os.stat(path).st_size, None

    def prefetch(self, shards: Any, processes: int) -> None:
        """Local files are read in place: nothing to fetch ahead."""

    def deletions(self, i: int) -> np.ndarray:
        descriptor = self.snapshot.files[i].deletion_vector
        if not descriptor:
            return np.zeros(0, np.int64)

        def read(path: str, offset: int, length: int) -> bytes:
            full = Path(path) if path.startswith("/") else self.root / path
            try:
                with open(full, "rb") as f:
                    f.seek(offset)
                    return f.read(length)
            except FileNotFoundError:
                raise missing_file_error(self.snapshot, self.snapshot.files[i], str(full)) from None

        return deleted_rows(descriptor, read, f"{self.snapshot.name}, file {self.path(i)}")

    def read(self, i: int, group: int, columns: list[str]) -> Any:
        """Row group ``group`` of file ``i`` (the physical ``columns`` it has)."""
        handle = self._open.get(i)
        if handle is None:
            handle = self._opened(i)
        else:
            self._open.move_to_end(i)
        self.bytes_read += handle.metadata.row_group(group).total_byte_size
        return read_row_group(handle, group, columns, self.decode_rows)

    def _opened(self, i: int) -> Any:
        import pyarrow.parquet as pq

        # Mapped, not read: pyarrow decodes the column chunks from the page cache. A 47 MB
        # row group's first read in a fresh process took 21-33 ms mapped here, against
        # 27-329 ms read into fresh buffers (this VM backs fresh memory slowly and unevenly).
        handle = pq.ParquetFile(self._checked(i), memory_map=True)
        self._open[i] = handle
        while len(self._open) > _OPEN_FILES:
            _, old = self._open.popitem(last=False)
            old.close()
        return handle

    def _checked(self, i: int) -> str:
        file, path = self.snapshot.files[i], self.path(i)
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            raise missing_file_error(self.snapshot, file, str(path)) from None
        if file.size >= 0 and size != file.size:
            raise CorruptShardError(
                f"data file {path} of {self.snapshot.name} has {size} bytes, but the table "
                f"records {file.size}: it was replaced or truncated under the same name; "
                "restore it, or open the dataset again on a version that lists it as it is"
            )
        return str(path)

    def close(self) -> None:
        for handle in self._open.values():
            handle.close()
        self._open.clear()
