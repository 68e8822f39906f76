"""Fetching one shard from a remote store into the cache: retried, timed out, verified.

A fetch GETs the stored (possibly compressed) file, checks its size and the cheapest hash the
index records, decompresses it, checks the raw size, writes it to a temp file in the cache
and renames it into place. A corrupt, truncated or failed download is tried again
``retries`` times; then the error names the shard and its URL.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard

from loader.cache import ShardCache
from sparkshard.errors import CorruptShardError
from sparkshard.format.compression import parse_compression
from sparkshard.format.hashing import hexdigest
from sparkshard.format.index import FileInfo, ShardRecord
from sparkshard.sizes import parse_size
from sparkshard.storage import Store

__all__ = ["DownloadOptions", "ShardFetcher", "check_bytes"]

log = logging.getLogger(__name__)
# Cheapest first: the hash a download is checked against when the index records several.
PREFERRED_HASHES = ("xxh3_64", "xxh64", "xxh128", "xxh3_128", "xxh32")
_CHUNK = 1 << 20  # bytes per write when streaming decompressed data into a file
_PERMANENT = (FileNotFoundError, PermissionError, NotImplementedError, TypeError)


@dataclass(frozen=True)
class DownloadOptions:
    """How shards are fetched: attempts, time limits, checks and how far ahead."""

    retries: int = 2  # attempts after the first (Mosaic's download_retry)
    timeout: float = 60.0  # seconds for one GET (Mosaic's download_timeout)
    verify: bool = True  # check the index hash of every downloaded file
    threads: int = 8  # concurrent downloads per process
    prefetch_bytes: int = 512 << 20  # downloaded ahead of the reader, at most (per process)

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"download_retry must be >= 0 attempts, got {self.retries}")
        if not self.timeout > 0:
            raise ValueError(f"download_timeout must be > 0 seconds, got {self.timeout}")
        if self.threads < 1:
            raise ValueError(f"download_threads must be >= 1, got {self.threads}")
        if self.prefetch_bytes < 0:
            raise ValueError(f"prefetch_bytes must be >= 0, got {self.prefetch_bytes}")

    @classmethod
    def of(cls, prefetch_bytes: int | str, **kwargs: Any) -> DownloadOptions:
        size = 0 if prefetch_bytes in (0, "0") else parse_size(prefetch_bytes, what="prefetch")
        return cls(prefetch_bytes=size, **kwargs)


def check_bytes(data: bytes | memoryview, info: FileInfo, verify: bool) -> str | None:
    """What is wrong with ``data`` as the file ``info`` describes (size, cheapest hash)."""
    if len(data) != info.bytes:
        return f"{len(data)} bytes where the index says {info.bytes} (truncated or replaced)"
    if not verify or not info.hashes:
        return None
    algo = next((a for a in PREFERRED_HASHES if a in info.hashes), sorted(info.hashes)[0])
    actual = hexdigest(algo, data)
    if actual != info.hashes[algo]:
        return f"its {algo} is {actual} where the index says {info.hashes[algo]} (corrupt)"
    return None


def write_raw(data: bytes | memoryview, record: ShardRecord, path: Path) -> str | None:
    """Write the decompressed shard to ``path``; what is wrong with it, if anything.

    zstd streams into the file through a small buffer (no shard-sized intermediate copy).
    """
    compression = parse_compression(record.compression) if record.zip_data else None
    if record.zip_data is not None and compression is None:
        return "the index records compressed data but no compression"
    try:
        with open(path, "wb") as f:
            if compression is None:
                f.write(data)
            elif compression.family == "zstd":
                decompressor = zstandard.ZstdDecompressor()
                with decompressor.stream_writer(f, write_size=_CHUNK, closefd=False) as out:
                    out.write(data)
            else:
                f.write(compression.decompress(data))
    except Exception as exc:
        return f"it does not decompress as {record.compression} ({exc})"
    size = path.stat().st_size
    if size != record.raw_data.bytes:
        return f"it decompresses to {size} bytes where the index says {record.raw_data.bytes}"
    return None


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

    def __init__(self, store: Store, cache: ShardCache, options: DownloadOptions) -> None:
        self.store, self.cache, self.options = store, cache, options
        self._lock = threading.Lock()
        self.bytes_downloaded = 0

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
            problem = check_bytes(data, info, options.verify)
            if problem is None:
                problem = write_raw(data, record, tmp)
            if problem is None:
                return
            damaged = True
            problems.append(f"attempt {attempt + 1}: {problem}")
            log.warning("downloaded shard %s is bad (%s); refetching", self.url(record), problem)
        detail = "; ".join(problems)
        if not damaged:
            raise ConnectionError(
                f"could not download shard {info.basename} from {self.url(record)} in "
                f"{options.retries + 1} attempts ({detail}); check the network and credentials, "
                "or raise download_retry / download_timeout"
            )
        raise CorruptShardError(
            f"shard {info.basename} downloaded from {self.url(record)} is damaged after "
            f"{options.retries + 1} attempts ({detail}): the remote file itself is corrupt; "
            "rewrite the dataset (or pass verify_hashes=False to skip the hash check)"
        )
