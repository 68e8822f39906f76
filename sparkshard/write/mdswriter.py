"""``MDSWriter``: Mosaic's writer signature over our :class:`ShardWriter` (one process).

    from sparkshard import MDSWriter          # was: from streaming import MDSWriter

    with MDSWriter(out="/data/train", columns={"x": "ndarray:float32", "y": "int"}) as out:
        for sample in samples:
            out.write(sample)                  # numpy scalars, PIL images, bytes, str, ndarray

The keywords are Mosaic's, mapped by :mod:`sparkshard.write.mosaic_names` (shared with
``dataframe_to_mds``). What each does here:

- ``out``: a local path or URL; or ``(local, remote)``: shards go straight to ``remote``
  (nothing is staged), and ``keep_local=True`` leaves a complete copy in ``local`` after
  :meth:`finish` (``False``: nothing is kept locally, as Mosaic deletes its staging copy).
- ``columns``, ``compression`` (default None, as Mosaic), ``hashes`` (None or ``[]``:
  ``xxh64``, so hash checks work by default), ``size_limit`` (None: no limit under 4 GiB):
  honoured.
- ``exist_ok``: True replaces an existing dataset with a new version; False refuses a folder
  that holds one (:class:`~sparkshard.errors.DatasetExistsError`, a ``FileExistsError``).
- ``progress_bar``: no bar (library code logs): each finished shard is logged at INFO.
- ``max_workers``, ``retry``: validated; shards are sealed and uploaded by one background
  thread, two in flight, and the storage client retries on its own.

One difference on purpose: leaving the ``with`` block by an exception publishes nothing
(Mosaic's ``__exit__`` writes an index over whatever was written so far).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from sparkshard.dataset.versions import DatasetInfo, read_index
from sparkshard.format.index import ShardRecord
from sparkshard.storage import LocalStore, open_store
from sparkshard.write.mosaic_names import mosaic_out, mosaic_writer_options
from sparkshard.write.writer import ShardWriter

__all__ = ["MDSWriter"]

log = logging.getLogger(__name__)


class MDSWriter:
    """Mosaic's ``streaming.MDSWriter`` keywords over :class:`ShardWriter`."""

    def __init__(
        self,
        *,
        columns: Mapping[str, str],
        out: str | tuple[str, str],
        keep_local: bool = False,
        compression: str | None = None,
        hashes: list[str] | None = None,
        size_limit: int | str | None = 1 << 26,
        **kwargs: Any,
    ) -> None:
        if not isinstance(columns, Mapping) or not columns:
            raise ValueError(
                "MDSWriter needs columns=, a mapping of column name to MDS encoding, e.g. "
                "{'image': 'jpeg', 'label': 'int'}"
            )
        local, remote = mosaic_out(out, where="out")
        given: dict[str, Any] = {"columns": columns, "compression": compression, "hashes": hashes}
        given |= {"size_limit": size_limit, "keep_local": keep_local, **kwargs}
        options = mosaic_writer_options(given, compression=None, where="MDSWriter keywords")
        self.local, self.remote = local, remote or None
        self.keep_local = bool(options.pop("keep_local", False))
        self._progress = bool(options.pop("progress_bar", False))
        options.pop("max_workers", None)
        options.pop("retry", None)
        self._storage_options = options["storage_options"]
        if self.remote is not None and self.keep_local:
            _check_local_copy(local, options["mode"])
        self._writer = ShardWriter(
            self.remote or local,
            options["columns"],
            options["compression"],
            options["hashes"],
            options["size_limit"],
            mode=options["mode"],
            storage_options=options["storage_options"],
            lineage={"writer": "MDSWriter"},
            on_shard=self._shard_written if self._progress else None,
        )
        self._info: DatasetInfo | None = None

    def write(self, sample: Mapping[str, Any]) -> None:
        """Write one sample dict (keys: the columns; values as their encodings take them)."""
        self._writer.write(sample)

    def finish(self) -> DatasetInfo:
        """Publish the dataset (idempotent); with ``keep_local``, copy it into ``local``."""
        if self._info is None:
            self._info = self._writer.close()
            if self.remote is not None and self.keep_local:
                self._copy_to_local()
        return self._info

    def __enter__(self) -> MDSWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish()
        else:
            self._writer.abort()

    def _shard_written(self, record: ShardRecord) -> None:
        log.info(
            "MDSWriter: wrote %s (%d samples, %d bytes)",
            record.stored.basename, record.samples, record.stored.bytes,
        )  # fmt: skip

    def _copy_to_local(self) -> None:
        """The published index and every shard it names, copied from ``remote`` to ``local``."""
        assert self.remote is not None
        source = open_store(self.remote, self._storage_options)
        target = LocalStore(self.local)
        index = read_index(source)
        for record in index.shards:
            name = record.stored.basename
            target.write(name, source.read(name))
        target.write("index.json", source.read("index.json"))
        log.info("MDSWriter: kept a local copy of %s in %s", self.remote, self.local)


def _check_local_copy(local: str, mode: str) -> None:
    """``keep_local`` writes a copy into ``local``: refuse one that holds a dataset unless
    ``exist_ok`` (the same rule as for the output itself)."""
    if not local:
        raise ValueError("keep_local=True needs out=(local, remote) with a local directory")
    if mode == "error" and LocalStore(local).exists("index.json"):
        from sparkshard.errors import DatasetExistsError

        raise DatasetExistsError(
            f"keep_local=True would copy the dataset into {local}, which already holds one: "
            "pass exist_ok=True to replace it, or choose another local directory"
        )
