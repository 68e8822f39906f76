"""An index file of a store and its columnar form: read fast, written by one function.

Every JSON index file ``X.json`` of a dataset (a version record, or a plain MDS
``index.json``) may have ``X.columnar`` beside it (:mod:`sparkshard.format.columnar_index`).

- :func:`write_columnar` is the one function that writes it; every writer commits through
  :func:`sparkshard.dataset.versions.commit_version`, which calls it for the version record
  it created (never before the record exists: a losing writer leaves nothing behind).
- :func:`load_index` reads an index, from the columnar form whenever that is known to be
  derived from exactly the JSON at hand, never otherwise:

  - on a local (or mounted) store, the JSON file's size and xxh3_128 digest are compared with
    those the columnar file records (a read at page-cache speed, no parse);
  - on object storage, a version record is immutable (created once, never rewritten), so its
    size is checked with a two-byte ranged read: the rank fetches the columnar form, never the
    JSON; a mutable ``index.json`` there is downloaded and its digest compared;
  - a damaged, stale or missing columnar file is ignored and the index is parsed from the
    JSON; the result is kept in ``derived`` (a directory the caller owns, such as the
    loader's cache), never written into the dataset, which may be read-only or Mosaic's. The
    next open finds it there, checked against the JSON's digest the same way.
- :func:`repair_columnar` (``verify --repair``) writes missing or stale columnar files of the
  version records into the dataset.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path, PurePosixPath

from sparkshard.errors import IndexFormatError
from sparkshard.format.columnar_index import (
    SUFFIX,
    Columnar,
    decode_columnar,
    encode_columnar,
    source_digest,
)
from sparkshard.format.hashing import file_hexdigest
from sparkshard.format.index import DatasetIndex
from sparkshard.storage import Store, write_atomically

__all__ = ["columnar_key", "columnar_problem", "load_index", "repair_columnar", "write_columnar"]

log = logging.getLogger(__name__)


def columnar_key(key: str) -> str:
    """The key of the columnar form of the JSON index file ``key``."""
    return key.removesuffix(".json") + SUFFIX


def write_columnar(store: Store, key: str, data: bytes, index: DatasetIndex) -> bool:
    """Write the columnar form of index file ``key`` (which holds ``data``, the serialised
    ``index``). Best effort: it is an accelerator, so a failure is logged (readers parse the
    JSON instead) and False returned."""
    try:
        store.write(columnar_key(key), encode_columnar(index, data))
    except Exception as exc:
        log.warning(
            "could not write %s/%s (%s); readers parse %s instead (slower start-up); "
            "python -m sparkshard verify --repair %s writes it",
            store.url, columnar_key(key), exc, key, store.url,
        )  # fmt: skip
        return False
    return True


def load_index(
    store: Store,
    key: str,
    where: str,
    *,
    immutable: bool,
    derived: str | os.PathLike[str] | None = None,
) -> DatasetIndex:
    """The index in ``key`` (``immutable``: a version record); see the module docstring."""
    found = _stored(store, key)
    if found is not None and _fresh(store, key, found, immutable):
        return found.index
    data = store.read(key)
    digest = source_digest(data)
    if found is not None:
        if found.derived_from(digest, len(data)):
            return found.index
        log.info("%s/%s is stale (not derived from %s): ignored", store.url, columnar_key(key), key)
    kept = Path(os.fspath(derived)) / PurePosixPath(columnar_key(key)).name if derived else None
    cached = _derived(kept, digest, len(data)) if kept is not None else None
    if cached is not None:
        return cached.index
    index = DatasetIndex.from_json(data, where)
    if kept is not None:
        try:
            kept.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(kept, encode_columnar(index, data))
        except OSError as exc:
            log.warning("could not keep the columnar index in %s (%s)", kept, exc)
    return index


def _stored(store: Store, key: str) -> Columnar | None:
    where = f"{store.url}/{columnar_key(key)}"
    try:
        return decode_columnar(store.read_view(columnar_key(key)), where)
    except FileNotFoundError:
        return None
    except IndexFormatError as exc:
        log.warning("%s; the index is read from %s instead", exc, key)
        return None


def _fresh(store: Store, key: str, found: Columnar, immutable: bool) -> bool:
    """Whether ``found`` is known to be derived from ``key`` without downloading it."""
    path = store.local_path(key)
    if path is not None:
        try:
            if os.stat(path).st_size != found.source_bytes:
                return False
        except FileNotFoundError:
            return False
        return f"xxh3_128:{file_hexdigest('xxh3_128', path)}" == found.source_digest
    if not immutable or found.source_bytes < 1:
        return False
    # Exactly one byte at the last offset: the record has the recorded length.
    return len(store.read_range(key, found.source_bytes - 1, 2)) == 1


def _derived(path: Path, digest: str, size: int) -> Columnar | None:
    try:
        found = decode_columnar(path.read_bytes(), str(path))
    except FileNotFoundError:
        return None
    except OSError as exc:  # an unusable cache directory never stops a read
        log.warning("could not read the columnar index kept in %s (%s)", path, exc)
        return None
    except IndexFormatError as exc:
        log.warning("%s; rebuilding it", exc)
        return None
    return found if found.derived_from(digest, size) else None


def columnar_problem(store: Store, key: str, data: bytes) -> str | None:
    """What is wrong with the columnar form of ``key`` (which holds ``data``): None if it is
    absent or sound; else why it is damaged or stale (``verify`` reports it)."""
    try:
        found = decode_columnar(store.read(columnar_key(key)), columnar_key(key))
    except FileNotFoundError:
        return None
    except IndexFormatError as exc:
        return str(exc)
    if not found.derived_from(source_digest(data), len(data)):
        return f"is stale: it was not derived from {key} as it is now (readers ignore it)"
    return None


def repair_columnar(store: Store, keys: list[str]) -> list[str]:
    """Write the columnar form of each index file in ``keys`` that lacks a sound one; returns
    the keys written."""
    written = []
    for key in keys:
        data = store.read(key)
        if store.exists(columnar_key(key)) and columnar_problem(store, key, data) is None:
            continue
        index = DatasetIndex.from_json(data, f"{store.url}/{key}")
        if write_columnar(store, key, data, index):
            written.append(columnar_key(key))
    return written
