"""What a DataFrame's rows depend on, as one key: plan, schema, input files, Delta versions.

Petastorm keyed its converter cache on the plan alone, so a source overwritten in place
was served stale from the cache. This key also covers the data the plan reads: every input
file with its size and modification time, and the latest version of every Delta table
those files belong to (a delete through deletion vectors changes no data file). Rewriting
a source, adding a file to it or committing to its Delta table changes the key.

The plan part is Spark's canonicalized optimized plan (expression ids normalised), which
is the same for the same code in another process. A plan over in-memory rows (a
``LogicalRDD``, e.g. ``createDataFrame`` from Python objects) does not show its data, so
there the key includes the DataFrame's identity-based semantic hash: such a DataFrame is
recognised only as the same object, never mistaken for different data.

No pyspark import: everything goes through the DataFrame and its session.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlparse

__all__ = ["dataframe_fingerprint", "lineage_fingerprint"]

log = logging.getLogger(__name__)
_MAX_FIELDS = 2**31 - 1
_PARTITION_DEPTH = 8  # how many partition folders above a file to look for _delta_log


def dataframe_fingerprint(df: Any) -> dict[str, Any]:
    """``{"key": hex digest, ...}`` plus the parts it was computed from (for lineage)."""
    plan = _canonical_plan(df)
    files = sorted(df.inputFiles())
    fs = _FileSystem(df.sparkSession)
    parts: dict[str, Any] = {
        "plan": plan,
        "schema": df.schema.json(),
        "files": [[f, *fs.stat(f)] for f in files],
        "delta_versions": _delta_versions(fs, files),
        "spark_version": df.sparkSession.version,
    }
    if plan is None or "LogicalRDD" in plan or "ExistingRDD" in plan:
        parts["object"] = df.semanticHash()
    text = json.dumps(parts, sort_keys=True, default=str).encode("utf-8")
    return {
        "key": hashlib.sha256(text).hexdigest()[:32],
        "input_files": len(files),
        "input_bytes": sum(size for _, size, _ in parts["files"] if size is not None),
        "delta_versions": parts["delta_versions"],
    }


def _canonical_plan(df: Any) -> str | None:
    try:
        plan = df._jdf.queryExecution().optimizedPlan().canonicalized()
    except Exception:  # Spark Connect has no JVM handle: fall back to the semantic hash
        log.info("no JVM plan for this DataFrame; keying it by its semantic hash")
        return None
    try:
        return str(plan.treeString(True, False, _MAX_FIELDS, False))
    except Exception:
        return str(plan.toString())


class _FileSystem:
    """stat and list for the URIs Spark reports: local files directly, others via Hadoop."""

    def __init__(self, spark: Any) -> None:
        self._spark = spark

    def stat(self, uri: str) -> tuple[int | None, int | None]:
        local = _local_path(uri)
        if local is not None:
            try:
                st = os.stat(local)
            except OSError:
                return None, None
            return st.st_size, st.st_mtime_ns
        status = self._hadoop(uri, "getFileStatus")
        if status is None:
            return None, None
        return int(status.getLen()), int(status.getModificationTime())

    def names(self, uri: str) -> list[str] | None:
        local = _local_path(uri)
        if local is not None:
            return sorted(os.listdir(local)) if os.path.isdir(local) else None
        statuses = self._hadoop(uri, "listStatus")
        return None if statuses is None else [s.getPath().getName() for s in statuses]

    def _hadoop(self, uri: str, call: str) -> Any:
        try:
            jvm, conf = self._spark._jvm, self._spark._jsc.hadoopConfiguration()
            path = jvm.org.apache.hadoop.fs.Path(uri)
            return getattr(path.getFileSystem(conf), call)(path)
        except Exception as exc:  # missing file, or no JVM (Spark Connect)
            log.debug("cannot %s %s: %s", call, uri, exc)
            return None


def _local_path(uri: str) -> str | None:
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return unquote(parsed.path) if parsed.scheme else uri
    return None


def _delta_versions(fs: _FileSystem, files: Iterable[str]) -> dict[str, int]:
    """Latest committed version of each Delta table the files lie in (root -> version)."""
    found: dict[str, int] = {}
    seen: set[str] = set()
    for folder in sorted({posixpath.dirname(f) for f in files}):
        candidate = folder
        for _ in range(_PARTITION_DEPTH):
            if candidate in seen or not candidate or candidate.endswith(":"):
                break
            seen.add(candidate)
            names = fs.names(f"{candidate}/_delta_log")
            if names is not None:
                versions = [int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit()]
                found[candidate] = max(versions, default=-1)
                break
            if "=" not in posixpath.basename(candidate):
                break  # not a partition folder: the table root would have been here
            candidate = posixpath.dirname(candidate)
    return found


def lineage_fingerprint(df: Any) -> dict[str, Any]:
    """Where a written DataFrame came from, for the index's lineage: its plan and input files."""
    files = sorted(df.inputFiles())
    digest = hashlib.sha256("\n".join(files).encode()).hexdigest()[:16]
    return {
        "source": "spark",
        "plan_hash": df.semanticHash(),
        "input_files": len(files),
        "input_files_sha256": digest,
        "spark_version": df.sparkSession.version,
    }
