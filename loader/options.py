"""The options of a StreamingDataset, typed and validated once, at the door.

:class:`ShuffleOptions` (the order), :class:`CacheOptions` (the local shard cache),
:class:`DownloadOptions` (fetching from object storage) and :class:`Stream` (one dataset of
a mixture) are frozen values that check themselves when made. ``StreamingDataset`` takes
them as arguments (``shuffle=ShuffleOptions(...)``, ``cache=CacheOptions(...)``,
``download=DownloadOptions(...)``) and builds them from Mosaic's flat keywords
(``shuffle_seed=``, ``cache_limit=``, ``download_retry=``, ...), so every path is checked by
the same code before anything is opened.

A ``Stream`` names where its dataset lives (``remote``/``local``/``split``, as for a single
dataset), which version it is pinned to, and at most one weight:

- ``proportion`` (relative): the stream's share of the epoch; shares are normalized over all
  streams, and the epoch holds ``epoch_size`` samples (default: all streams' samples together).
- ``repeat`` (absolute): a multiplier on the stream's size; ``2`` reads every sample twice an
  epoch, ``0.5`` half of them (a seeded subset, see :mod:`loader.order.mix.virtual`).
- ``choose`` (absolute): the exact number of samples per epoch.
- none: the stream's size (every sample once), or, when no stream has a weight and an
  ``epoch_size`` is given, a share proportional to its size.

Relative and absolute weights cannot be mixed in one mixture; how weights combine is checked
by :func:`loader.order.mix.weights.samples_per_stream`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

from loader.order.epoch import SHUFFLE_ALGOS, OrderSettings
from sparkshard.format.hashing import hash_algorithms
from sparkshard.sizes import parse_size

__all__ = [
    "MOSAIC_SHUFFLE_ALGOS",
    "CacheOptions",
    "DownloadOptions",
    "ShuffleOptions",
    "Stream",
    "check_keep_zip",
    "check_validate_hash",
    "options_from",
]

logger = logging.getLogger(__name__)

# Mosaic's shuffle algorithms: accepted, and run as our block shuffle (see the README).
MOSAIC_SHUFFLE_ALGOS = ("naive", "py1b", "py1br", "py1e", "py1s", "py2s")
_DEFAULT_BLOCK = 4_000_000  # samples per shuffle block, over all canonical nodes
_Options = TypeVar("_Options", "ShuffleOptions", "CacheOptions", "DownloadOptions")


def _whole(value: object, name: str, minimum: int) -> int:
    """``value`` as an int >= ``minimum``, or a ValueError naming ``name`` and the fix."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class ShuffleOptions:
    """How the epoch order is made (:mod:`loader.order.epoch`).

    ``block_size`` None: ``max(4M / canonical nodes, 2**18)`` samples per block.
    ``num_canonical_nodes`` None: the number of physical nodes of the run that starts it
    (a resume adopts the state's). Mosaic's ``shuffle_algo`` names run the block shuffle.
    """

    shuffle: bool = False
    seed: int = 9176
    algo: str = "block"
    block_size: int | None = None
    num_canonical_nodes: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.shuffle, bool):
            raise ValueError(f"shuffle must be True or False, got {self.shuffle!r}")
        _whole(self.seed, "shuffle_seed", 0)
        if self.block_size is not None:
            _whole(self.block_size, "shuffle_block_size", 1)
        if self.num_canonical_nodes is not None:
            _whole(self.num_canonical_nodes, "num_canonical_nodes", 1)
        if self.algo in MOSAIC_SHUFFLE_ALGOS:
            logger.warning("shuffle_algo=%r is Mosaic's; using 'block' instead", self.algo)
            object.__setattr__(self, "algo", "block")
        elif self.algo not in SHUFFLE_ALGOS:
            raise ValueError(
                f"shuffle_algo must be one of {SHUFFLE_ALGOS} (Mosaic's "
                f"{MOSAIC_SHUFFLE_ALGOS} run as 'block'), got {self.algo!r}"
            )

    def order_settings(self, physical_nodes: int) -> OrderSettings:
        """The order's settings for a run on ``physical_nodes`` nodes."""
        nodes = self.num_canonical_nodes or physical_nodes
        block = self.block_size or max(_DEFAULT_BLOCK // nodes, 1 << 18)
        return OrderSettings(self.seed, nodes, self.shuffle, block, self.algo)


@dataclass(frozen=True)
class CacheOptions:
    """The local shard cache of a remote dataset: ``limit`` bytes (``"20GB"`` or a count;
    None: unbounded). Least recently used shards nobody reads are evicted beyond it."""

    limit: int | str | None = None

    def __post_init__(self) -> None:
        if self.limit is not None:
            object.__setattr__(self, "limit", parse_size(self.limit, what="cache_limit"))

    @property
    def limit_bytes(self) -> int | None:
        return None if self.limit is None else int(self.limit)


@dataclass(frozen=True)
class DownloadOptions:
    """How shards are fetched: attempts, time limits and how far ahead (per process)."""

    retries: int = 2  # attempts after the first (Mosaic's download_retry)
    timeout: float = 60.0  # seconds for one GET (Mosaic's download_timeout)
    threads: int = 8  # concurrent downloads per process
    prefetch_bytes: int | str = 512 << 20  # downloaded ahead of the reader, at most

    def __post_init__(self) -> None:
        _whole(self.retries, "download_retry", 0)
        if (
            isinstance(self.timeout, bool)
            or not isinstance(self.timeout, (int, float))
            or not self.timeout > 0
        ):
            raise ValueError(f"download_timeout must be > 0 seconds, got {self.timeout!r}")
        _whole(self.threads, "download_threads", 1)
        if self.prefetch_bytes in (0, "0"):
            object.__setattr__(self, "prefetch_bytes", 0)
        else:
            size = parse_size(self.prefetch_bytes, what="prefetch_bytes")
            object.__setattr__(self, "prefetch_bytes", size)

    @property
    def ahead_bytes(self) -> int:
        return int(self.prefetch_bytes)


def check_validate_hash(value: str | None, where: str = "validate_hash") -> None:
    if value is None:
        return
    if not isinstance(value, str) or value not in hash_algorithms():
        raise ValueError(
            f"{where}={value!r} is not a hash algorithm this installation computes; use one the "
            "index records (e.g. 'xxh64', 'sha1'), or omit it: every shard is checked against "
            "its index hash by default"
        )


def check_keep_zip(value: bool | None, remote: str | None, where: str = "keep_zip") -> None:
    if value is None:
        return
    if not isinstance(value, bool):
        raise ValueError(f"{where} must be True or False, got {value!r}")
    if value and remote is not None:
        raise ValueError(
            f"{where}=True keeps the compressed download beside the decompressed shard, but our "
            f"shard cache keeps decompressed shards only (the compressed files stay at "
            f"remote={remote!r}); drop {where}"
        )


def _check_download(retry: int | None, timeout: float | None, where: str) -> None:
    if retry is not None and (isinstance(retry, bool) or not isinstance(retry, int) or retry < 0):
        raise ValueError(f"{where} download_retry must be a whole number >= 0, got {retry!r}")
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ValueError(f"{where} download_timeout must be > 0 seconds, got {timeout!r}")


@dataclass(frozen=True)
class Stream:
    """One dataset of a mixture and its weight (at most one of proportion, repeat, choose).

    ``verify_hashes`` (``None``: the dataset's setting) checks each shard against the hash in
    its index. ``version`` pins the dataset version (``None``: the latest when opened).
    ``delta=`` (a Delta table, ``version`` its Delta version) or ``parquet=`` (a folder, glob
    or list of Parquet files) reads a table in place instead of an MDS dataset; ``local=`` is
    then the cache directory of a remote table.
    Mosaic's ``download_retry``, ``download_timeout``, ``validate_hash`` and ``keep_zip``
    (``None``: the dataset's) have the fates listed in :mod:`loader.mosaic_keywords`.
    """

    remote: str | None = None
    local: str | None = None
    split: str | None = None
    version: int | None = None
    proportion: float | None = None
    repeat: float | None = None
    choose: int | None = None
    verify_hashes: bool | None = None
    download_retry: int | None = None
    download_timeout: float | None = None
    validate_hash: str | None = None
    keep_zip: bool | None = None
    delta: str | None = None
    parquet: str | tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.parquet, (list, tuple)):
            object.__setattr__(self, "parquet", tuple(str(p) for p in self.parquet))
        if self.remote is None and self.local is None and self.table is None:
            raise ValueError(
                "Stream needs remote= (where the dataset lives) or local= (or both), or delta= "
                "/ parquet= for a table read in place"
            )
        for name in ("remote", "local", "split"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"Stream {name}= must be a non-empty string, got {value!r}")
        if self.version is not None and (_not_int(self.version) or self.version < 0):
            raise ValueError(
                f"Stream version= must be a dataset version number (an int >= 0), got "
                f"{self.version!r}; omit it to read the latest version"
            )
        given = [n for n in ("proportion", "repeat", "choose") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(
                f"Stream {self.name} sets {' and '.join(given)}: give at most one of "
                "proportion (relative share), repeat (multiplier) or choose (sample count)"
            )
        for name in ("proportion", "repeat"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise ValueError(
                    f"Stream {self.name}: {name}= must be a finite number >= 0, got {value!r}"
                )
        if self.choose is not None and (_not_int(self.choose) or self.choose < 0):
            raise ValueError(
                f"Stream {self.name}: choose= must be a whole number of samples >= 0, got "
                f"{self.choose!r}; use repeat= for a multiplier"
            )
        if self.verify_hashes is not None and not isinstance(self.verify_hashes, bool):
            raise ValueError(f"Stream verify_hashes= must be a bool, got {self.verify_hashes!r}")
        self._check_mosaic_download()

    def _check_mosaic_download(self) -> None:
        where = f"Stream {self.name}:"
        _check_download(self.download_retry, self.download_timeout, where)
        check_validate_hash(self.validate_hash, f"{where} validate_hash")
        if self.validate_hash is not None and self.verify_hashes is False:
            raise ValueError(
                f"{where} validate_hash={self.validate_hash!r} asks for hash checks but "
                "verify_hashes=False turns them off: drop one of them"
            )
        check_keep_zip(self.keep_zip, self.remote, f"{where} keep_zip")

    def download(self, default: DownloadOptions) -> DownloadOptions:
        """The dataset's download options with this stream's retry/timeout, where given."""
        retries = default.retries if self.download_retry is None else self.download_retry
        timeout = default.timeout if self.download_timeout is None else self.download_timeout
        return replace(default, retries=retries, timeout=timeout)

    def verify(self, default: bool | None) -> bool | None:
        """This stream's hash checking: its own setting, else a validate_hash turns it on,
        else the dataset's (``default``)."""
        if self.verify_hashes is not None:
            return self.verify_hashes
        return True if self.validate_hash is not None else default

    @property
    def table(self) -> str | None:
        """The table read in place (``delta=`` or ``parquet=``), for messages; None if MDS."""
        if self.delta is not None:
            return self.delta
        if isinstance(self.parquet, tuple):
            return self.parquet[0] if self.parquet else ""
        return self.parquet

    @property
    def name(self) -> str:
        """A short name for messages: the remote (or local) location, with the split."""
        where = self.table or (self.remote if self.remote is not None else self.local)
        return f"{where!r}" + (f" (split {self.split!r})" if self.split else "")

    @property
    def weight_kind(self) -> str | None:
        """``"proportion"``, ``"repeat"``, ``"choose"`` or ``None`` (unweighted)."""
        for name in ("proportion", "repeat", "choose"):
            if getattr(self, name) is not None:
                return name
        return None


def _not_int(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)


def options_from(
    cls: type[_Options],
    given: _Options | None,
    name: str,
    keywords: Mapping[str, tuple[str, object]],
) -> _Options:
    """``given`` (an options value passed as ``name=``), or one built from the flat keywords.

    ``keywords`` maps each flat keyword (``download_retry``) to ``(field, value)``; None
    values were not given. Passing both is refused: one of them would be ignored.
    """
    flat = {keyword: value for keyword, (_, value) in keywords.items() if value is not None}
    if given is not None:
        if not isinstance(given, cls):
            raise TypeError(f"{name}= takes a {cls.__name__}, got {type(given).__name__}")
        if flat:
            raise ValueError(
                f"{name}={given!r} and {sorted(flat)} were both given: set those inside "
                f"{cls.__name__}(...) or pass the keywords alone"
            )
        return given
    return cls(**{keywords[k][0]: v for k, v in flat.items()})  # type: ignore[arg-type]
