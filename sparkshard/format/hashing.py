"""File hashes as MDS records them: lowercase hex digests of whole shard files.

The xxhash family (``xxh32``, ``xxh64``, ``xxh3_64``, ``xxh128``, ``xxh3_128``) is fast
enough to stay on by default; every hashlib algorithm (``sha256``, ``md5``...) works too.
"""

from __future__ import annotations

import hashlib
import mmap
import os
from collections.abc import Callable, Iterable
from typing import Any

import xxhash

__all__ = ["file_hexdigest", "hash_algorithms", "hasher", "hexdigest", "validate_hashes"]

_XXHASH = {"xxh32", "xxh64", "xxh3_64", "xxh128", "xxh3_128"}


def hash_algorithms() -> set[str]:
    """Every algorithm name this installation can compute."""
    names = {a for a in hashlib.algorithms_available if hasattr(hashlib, a)}
    return {a for a in names if not a.startswith("shake_")} | _XXHASH


def _hasher(algo: str) -> Callable[..., Any]:
    if algo in _XXHASH:
        return getattr(xxhash, algo)
    if algo in hash_algorithms():
        return getattr(hashlib, algo)
    raise ValueError(
        f"unknown hash algorithm {algo!r}: expected one of {sorted(hash_algorithms())}"
    )


def hasher(algo: str) -> Any:
    """A fresh incremental hash state for ``algo`` (``update`` / ``hexdigest``)."""
    return _hasher(algo)()


def file_hexdigest(algo: str, path: str | os.PathLike[str]) -> str:
    """The digest of a whole file, hashed where it lies in the page cache (mapped: no copy,
    and no buffer for a fresh process to fault in)."""
    with open(path, "rb", buffering=0) as f:
        if not os.fstat(f.fileno()).st_size:
            return hexdigest(algo, b"")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return hexdigest(algo, mapped)


def hexdigest(algo: str, data: bytes | memoryview | mmap.mmap) -> str:
    """The lowercase hex digest of ``data`` under ``algo``."""
    return str(_hasher(algo)(data).hexdigest())


def validate_hashes(algos: Iterable[str] | None) -> list[str]:
    """Check hash names up front and return them sorted, as index.json stores them."""
    if isinstance(algos, (str, bytes)):
        raise TypeError(
            f"hashes must be a list of algorithm names, e.g. [{algos!r}], got the string "
            f"{algos!r} (a string would be read letter by letter)"
        )
    names = sorted(set(algos or ()))
    for algo in names:
        _hasher(algo)
    return names
