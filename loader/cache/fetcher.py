"""Fetching one shard from a remote store into the cache: retried, timed out, verified.

A fetch GETs the stored (possibly compressed) file, checks its size and the cheapest hash the
index records for it, decompresses it into a temp file in the cache (checked against the raw
size, and against the raw hash when the index records no stored one) and renames it into
place; checks and decompression are :mod:`sparkshard.dataset.shards`'s.
A corrupt, truncated or failed download is tried again ``retries`` times; then the error
names the shard and its URL.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from pathlib import Path
from typing import Any

from loader.cache.directory import ShardCache
from loader.options import DownloadOptions
from sparkshard.dataset.shards import decompress_into, file_problem
from sparkshard.errors import CorruptShardError, DownloadError
from sparkshard.format.index import ShardRecord
from sparkshard.storage import Store

__all__ = ["ShardFetcher"]

log = logging.getLogger(__name__)
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_PERMANENT = (FileNotFoundError, PermissionError, NotImplementedError, TypeError)


def _read_within(store: Store, key: str, timeout: float) -> memoryview:
    """``store.read_view(key)``, abandoned with TimeoutError after ``timeout`` seconds."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["data"] = store.read_view(key)
        except BaseException as exc:  # handed to the waiting thread
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"sparkshard-get-{key}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"no answer within download_timeout={timeout}s")
    if "error" in box:
        raise box["error"]
    data: memoryview = box["data"]
    return data


class ShardFetcher:
    """Downloads shards of one dataset version from ``store`` into ``cache``."""

    def __init__(
        self, store: Store, cache: ShardCache, options: DownloadOptions, *, verify: bool = True
    ) -> None:
        self.store, self.cache, self.options, self.verify = store, cache, options, verify
        self._placed: set[str] = set()  # keys this process downloaded and checked
        self._lock = threading.Lock()
        self.bytes_downloaded = 0

    def checked(self, record: ShardRecord) -> bool:
        """Whether this process placed ``record`` itself, checked as it arrived."""
        return self.verify and self.cache.path(record).name in self._placed

    def url(self, record: ShardRecord) -> str:
        return f"{self.cache.remote_url}/{record.stored.basename}"

    def fetch(self, record: ShardRecord) -> bool:
        """Make sure ``record`` is placed in the cache; True if this call downloaded it."""
        options = self.options
        wait = options.timeout * (options.retries + 1) + 5.0
        with self.cache.fetching(record, wait) as tmp:
            if tmp is None:
                return False  # present (another process fetched it meanwhile)
            self.cache.reserve(record, wait)
            self._download(record, tmp)
            self.cache.place(record, tmp)
        with self._lock:
            self._placed.add(self.cache.path(record).name)
        return True

    def _download(self, record: ShardRecord, tmp: Path) -> None:
        """Write ``record``'s verified, decompressed bytes to ``tmp`` (``retries`` retries)."""
        info, options = record.stored, self.options
        problems: list[str] = []
        damaged = False  # whether some attempt got bytes back, and they were bad
        for attempt in range(options.retries + 1):
            if attempt:
                time.sleep(min(0.2 * 2**attempt, 5.0))
            try:
                data = _read_within(self.store, info.basename, options.timeout)
            except _PERMANENT as exc:
                if isinstance(exc, FileNotFoundError):
                    raise FileNotFoundError(
                        f"shard {info.basename} is missing from {self.url(record)}: the remote "
                        "dataset changed or was deleted after this run opened it; reopen the "
                        "dataset (a new StreamingDataset) to read its current version"
                    ) from exc
                raise
            except Exception as exc:
                problems.append(f"attempt {attempt + 1}: {type(exc).__name__}: {exc}")
                log.warning("download of %s failed (%s); retrying", self.url(record), exc)
                continue
            with self._lock:
                self.bytes_downloaded += len(data)
            problem = file_problem(data, info, verify=self.verify)
            if problem is None:
                problem = self._write_raw(data, record, tmp)
            if problem is None:
                return
            damaged = True
            problems.append(f"attempt {attempt + 1}: {problem}")
            log.warning("downloaded shard %s is bad (%s); refetching", self.url(record), problem)
        detail = "; ".join(problems)
        if not damaged:
            raise DownloadError(
                f"could not download shard {info.basename} from {self.url(record)} in "
                f"{options.retries + 1} attempts ({detail}); check the network and credentials, "
                "or raise download_retry / download_timeout"
            )
        raise CorruptShardError(
            f"shard {info.basename} downloaded from {self.url(record)} is damaged after "
            f"{options.retries + 1} attempts ({detail}): the remote file itself is corrupt; "
            "rewrite the dataset (or pass verify_hashes=False to skip the hash check)"
        )

    def _write_raw(self, data: bytes | memoryview, record: ShardRecord, path: Path) -> str | None:
        """Write the raw shard to ``path`` (decompressed, then checked against its raw hash:
        a damaged download never lands in the cache); what is wrong with it, if anything.

        A full local disk is not the remote's fault: it raises at once, naming the cache."""
        # Stored bytes that passed their own hash decompress to one result, so hashing the
        # raw bytes as well would check the same thing twice (the raw size is still checked);
        # an index that records only raw hashes has them checked as the bytes are written.
        raw_check = self.verify and not record.stored.hashes
        try:
            with open(path, "wb") as out:  # the stored bytes were checked already
                if record.zip_data is None:
                    out.write(data)
                else:  # no read-back pass: checked as it is written
                    decompress_into(record, data, out, "it", verify=raw_check)
        except CorruptShardError as exc:
            return str(exc)
        except OSError as exc:
            if exc.errno not in _DISK_FULL:
                raise
            limit = self.cache.limit
            raise OSError(
                exc.errno,
                f"the disk holding the shard cache {self.cache.root} is full ({exc.strerror}) "
                f"while writing shard {record.raw_data.basename} ({record.raw_data.bytes} "
                "bytes): free space there, point local= at a larger disk, or set cache_limit "
                f"(now {limit if limit is not None else 'unbounded'}) below the free space",
            ) from exc
        return None
