"""Spark sessions and sources: the command line's session, and DataFrames over paths,
tables and pinned Delta versions.

``sparkshard.cli`` and ``sparkshard.delta`` never import pyspark; they come here for a
session or a DataFrame.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = [
    "cli_session",
    "local_session",
    "read_delta_version",
    "read_parquet_files",
    "read_source",
]

log = logging.getLogger(__name__)
_FORMATS = ("parquet", "delta", "json", "csv", "orc")


def local_session(
    app: str = "sparkshard",
    *,
    master: str = "local[2]",
    conf: Mapping[str, str] | None = None,
    ui: bool = False,
    progress: bool = False,
) -> Any:
    """A quiet local SparkSession (log level ERROR) whose Python workers run this interpreter
    unless ``PYSPARK_PYTHON`` says otherwise; ``conf`` adds Spark settings."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(master)
        .appName(app)
        .config("spark.ui.enabled", str(ui).lower())
        .config("spark.ui.showConsoleProgress", str(progress).lower())
    )
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def cli_session(master: str | None) -> tuple[Any, bool]:
    """(session, created): the active/spark-submit session, else a new local one."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        return active, False
    if master is None and "PYSPARK_GATEWAY_PORT" in os.environ:  # launched by spark-submit
        return SparkSession.builder.appName("sparkshard convert").getOrCreate(), False
    session = local_session(
        "sparkshard convert", master=master or "local[*]", ui=True, progress=True
    )
    return session, True


def read_source(spark: Any, source: str, fmt: str | None) -> DataFrame:
    """A DataFrame for a path (format given or guessed from it) or a table name."""
    if fmt is None:
        path = Path(source)
        if "://" not in source and "/" not in source and not path.exists():
            return spark.table(source)
        suffix = path.suffix.lstrip(".").lower().replace("jsonl", "json")
        fmt = suffix if suffix in _FORMATS else None
        fmt = fmt or ("delta" if (path / "_delta_log").is_dir() else "parquet")
    if fmt not in _FORMATS:
        raise ValueError(f"--format must be one of {_FORMATS}, got {fmt!r}")
    if fmt == "csv":
        return spark.read.csv(source, header=True, inferSchema=True)
    if fmt == "delta":
        return _read_delta(spark, source)
    return spark.read.format(fmt).load(source)


def _read_delta(spark: Any, source: str) -> DataFrame:
    """The latest version of a Delta table (delta-spark if present, else its files)."""
    df = read_delta_version(spark, source, None)
    if df is not None:
        return df
    from sparkshard.delta.snapshot import load_snapshot

    uri = source if "://" in source else str(Path(source).absolute())
    snapshot = load_snapshot(uri)
    log.info("reading Delta %s version %d from its files (no delta-spark)", uri, snapshot.version)
    return read_parquet_files(
        spark,
        [snapshot.file_uri(f) for f in snapshot.files],
        schema_json=snapshot.schema_json,
        base_path=snapshot.uri if snapshot.partition_columns else None,
    )


# ---- Delta sources (sparkshard.delta never imports pyspark) ------------------------------

_NO_DELTA_SOURCE = ("DATA_SOURCE_NOT_FOUND", "Failed to find data source: delta")
_GLOB = str.maketrans({c: "\\" + c for c in "\\*?[]{}"})


def read_delta_version(spark: Any, uri: str, version: int | None) -> DataFrame | None:
    """Version ``version`` through Spark's Delta source, or None when delta-spark is absent."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    try:
        return reader.load(uri)
    except Exception as exc:
        if any(marker in str(exc) for marker in _NO_DELTA_SOURCE):
            return None
        raise


def read_parquet_files(
    spark: Any, uris: list[str], *, schema_json: str, base_path: str | None
) -> DataFrame:
    """Exactly these Parquet files, typed by a Delta (Spark JSON) schema, in schema order.

    ``base_path`` (the table root) lets Spark take partition values from the file paths;
    their types come from the schema, not from inference.
    """
    from pyspark.sql.types import StructType

    schema = StructType.fromJson(json.loads(schema_json))
    if not uris:
        return spark.createDataFrame([], schema)
    reader = spark.read.schema(schema)
    if base_path is not None:
        reader = reader.option("basePath", base_path)
    df = reader.parquet(*[uri.translate(_GLOB) for uri in uris])  # paths, not glob patterns
    return df.select(*[f"`{name}`" for name in schema.names])
