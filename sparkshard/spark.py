"""DataFrame -> MDS shards on Spark executors, committed exactly once on the driver.

    info = dataframe_to_shards(df, "s3://bucket/ds", compression="zstd", mode="append")

How a write runs (DESIGN.md §3):

1. Driver: the write mode and the schema are checked and every column's encoding is chosen
   from the DataFrame's Arrow schema before any task runs. A job token names this write.
2. Executors (``mapInArrow``): each task attempt encodes its partition's Arrow batches with
   the vectorized :class:`ShardSink`, streaming every sealed shard to the store under
   ``data/{job}-p{partition}-a{attempt}-{seq}.mds[.zstd]``, and returns one metadata row
   per shard plus a closing row. Nothing but those rows reaches the driver.
3. Driver: one finished attempt per partition is kept (the lowest attempt id), its records
   are ordered by partition then shard, and a new dataset version is committed. Then a
   ``_sparkshard/jobs/{job}`` marker is written and every file of the job that the version
   does not reference is deleted (failed, killed or speculative attempts). A straggler
   attempt that writes a shard after that checks the marker and deletes its own file.
   If anything fails before the commit, the job's files are removed and the previous
   version stays as it was. The job and its commit protocol live in :mod:`sparkshard.job`.

Only this module imports pyspark.
"""

from __future__ import annotations

import collections.abc
import hashlib
import inspect
import json
import logging
import time
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from sparkshard.errors import SchemaError
from sparkshard.format.index import ShardRecord
from sparkshard.format.schema import Schema, schema_from_arrow
from sparkshard.job import GuardedStore as _GuardedStore
from sparkshard.job import Job as _Job
from sparkshard.job import JobFinishedError as _JobFinishedError  # noqa: F401 (tests)
from sparkshard.job import clean_up as _clean_up
from sparkshard.job import commit_job as _commit
from sparkshard.job import new_job as _new_job
from sparkshard.job import select_records as _select
from sparkshard.sink import ShardSink
from sparkshard.storage import open_store
from sparkshard.versions import DatasetInfo
from sparkshard.writer import Mode, check_append_schema, check_mode

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["dataframe_to_mds", "dataframe_to_shards"]

log = logging.getLogger(__name__)
_RESULT = "partition int, attempt long, seq int, samples long, record string"


def dataframe_to_shards(
    df: DataFrame,
    out: str,
    *,
    columns: Mapping[str, str] | None = None,
    compression: str | None = "zstd",
    hashes: Iterable[str] | None = ("xxh64",),
    size_limit: int | str = "64MB",
    mode: Mode = "error",
    storage_options: Mapping[str, Any] | None = None,
    lineage: Mapping[str, Any] | None = None,
    base_version: int | None = None,
) -> DatasetInfo:
    """Write ``df`` as a new version of the MDS dataset at ``out``; return what was committed.

    Args:
        df: any DataFrame. Samples keep partition order, then row order within a partition.
        out: dataset folder or URL (every backend :func:`open_store` serves).
        columns: column name -> MDS encoding, for the columns whose inferred encoding you
            want to change (e.g. ``{"image": "jpeg", "x": "ndarray:float32:16"}``). Every
            column of ``df`` is written: select first to drop some.
        compression, hashes, size_limit: as for :class:`ShardWriter`.
        mode: ``"error"`` refuses an existing dataset, ``"overwrite"`` replaces it with a new
            version (readers see the old one or the new one), ``"append"`` adds this data as
            a new version after the existing shards.
        lineage: extra provenance recorded in the index (merged over the DataFrame's plan
            fingerprint).
        base_version: the dataset version this write was planned against (``0``: none); if
            another writer has committed since, ``VersionConflictError`` before any task runs.

    Raises:
        SchemaError, DatasetExistsError, ValueError: before any task runs.
    """
    started = time.perf_counter()
    prepared, arrow_schema = _prepare(df)
    schema = schema_from_arrow(arrow_schema, columns)
    job = _new_job(out, storage_options, schema, compression, hashes, size_limit)
    source = {**_fingerprint(df), **dict(lineage or {})}
    return _run(prepared, job, mode, source, started, base_version)


def dataframe_to_mds(
    dataframe: DataFrame,
    merge_index: bool = True,
    mds_kwargs: Mapping[str, Any] | None = None,
    udf_iterable: Callable[..., Iterable[Mapping[str, Any]]] | None = None,
    udf_kwargs: Mapping[str, Any] | None = None,
) -> tuple[str, str]:
    """Drop-in for ``streaming.base.converters.dataframe_to_mds``, exactly once and vectorized.

    ``mds_kwargs`` takes Mosaic's ``MDSWriter`` arguments: ``out`` (a path/URL, or a
    ``(local, remote)`` pair: shards go straight to ``remote`` when given, nothing is staged
    locally), ``columns`` (only these columns are written, with these encodings),
    ``compression`` (default ``"zstd"``, as Mosaic), ``hashes`` (default ``["xxh64"]``),
    ``size_limit``, ``exist_ok`` (True replaces an existing dataset, as
    ``mode="overwrite"``), and ``keep_local``, ``progress_bar``, ``max_workers``, ``retry``
    (accepted; nothing is kept locally). Our own extras: ``mode`` and ``storage_options``.
    ``merge_index`` is accepted for compatibility: one merged ``index.json`` is always
    written, as the last step (the commit).

    ``udf_iterable`` differs from Mosaic on purpose. Mosaic calls it once per Arrow batch
    (10,000 rows by default), which silently restarts stateful UDFs such as token packing
    at every batch boundary. Here it is called ONCE PER PARTITION, returning an iterable of
    sample dicts (keys = ``columns``, required as in Mosaic), with ``**udf_kwargs``:

    - if its first parameter is annotated ``Iterator[pd.DataFrame]`` (or ``Iterable``), it
      receives an iterator over the partition's batches as pandas DataFrames: memory stays
      bounded by one batch, and state carries across the whole partition;
    - otherwise (Mosaic's documented ``df: pd.DataFrame`` signature, or none) it receives
      the whole partition as one pandas DataFrame (empty partitions are skipped): Mosaic
      UDFs run unchanged and see every row of the partition at once. Repartition to bound
      the memory this takes.

    Returns ``(local, remote)`` as Mosaic does (``remote`` is ``""`` for a plain path).
    """
    kwargs = dict(mds_kwargs or {})
    local, remote = _mosaic_out(kwargs.pop("out", None))
    url = remote or local
    options = _mosaic_options(kwargs)
    if not merge_index:
        log.info("merge_index=False ignored: sparkshard always commits one merged index")
    columns = options.pop("columns")
    if udf_iterable is None:
        _mosaic_columns(dataframe, url, columns, options)
        return local, remote
    if not columns:
        raise SchemaError(
            "udf_iterable needs mds_kwargs['columns'] (name -> MDS encoding of the samples it "
            "yields), as in Mosaic: e.g. {'tokens': 'bytes'}"
        )
    job = _with_udf(
        _options_job(url, Schema.from_encodings(columns), options),
        udf_iterable,
        dict(udf_kwargs or {}),
    )
    prepared, _ = _prepare(dataframe)
    source = {**_fingerprint(dataframe), "udf": getattr(udf_iterable, "__qualname__", "udf")}
    _run(prepared, job, options["mode"], source, time.perf_counter())
    return local, remote


# ---- driver: options and schema -------------------------------------------------------

_MOSAIC_IGNORED = ("keep_local", "progress_bar", "max_workers", "retry")


def _mosaic_out(out: Any) -> tuple[str, str]:
    if isinstance(out, (tuple, list)) and len(out) == 2:
        return str(out[0] or ""), str(out[1] or "")
    if isinstance(out, str) and out:
        return out, ""
    raise ValueError(f"mds_kwargs['out'] must be a path/URL or a (local, remote) pair, got {out!r}")


def _mosaic_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Mosaic's MDSWriter keyword arguments -> ``dataframe_to_shards`` options."""
    options = {
        "columns": kwargs.pop("columns", None),
        "compression": kwargs.pop("compression", "zstd"),
        "hashes": kwargs.pop("hashes", None) or ("xxh64",),
        "size_limit": kwargs.pop("size_limit", "64MB"),
        "storage_options": kwargs.pop("storage_options", None),
        "mode": kwargs.pop("mode", "overwrite" if kwargs.pop("exist_ok", False) else "error"),
    }
    for name in _MOSAIC_IGNORED:
        kwargs.pop(name, None)
    if kwargs:
        known = ["out", "columns", "compression", "hashes", "size_limit", "exist_ok", "mode"]
        raise TypeError(
            f"unknown mds_kwargs {sorted(kwargs)}; accepted: {known + list(_MOSAIC_IGNORED)} "
            "and storage_options"
        )
    return options


def _mosaic_columns(
    df: DataFrame, url: str, columns: Mapping[str, str] | None, options: dict[str, Any]
) -> DatasetInfo:
    """Write ``df``; explicit Mosaic ``columns`` are the exact stored layout (no null masks)."""
    if not columns:
        return dataframe_to_shards(df, url, **options)
    started = time.perf_counter()
    prepared, arrow_schema = _prepare(df.select(*columns))
    strict = pa.schema([f.with_nullable(False) for f in arrow_schema])
    job = _options_job(url, schema_from_arrow(strict, columns), options)
    return _run(prepared, job, options["mode"], _fingerprint(df), started)


def _options_job(url: str, schema: Schema, options: dict[str, Any]) -> _Job:
    return _new_job(
        url, options["storage_options"], schema, options["compression"], options["hashes"],
        options["size_limit"],
    )  # fmt: skip


def _with_udf(job: _Job, udf: Callable[..., Any], kwargs: dict[str, Any]) -> _Job:
    if not callable(udf):
        raise TypeError(f"udf_iterable must be callable, got {type(udf).__name__}")
    values = {**job.__dict__, "udf": udf, "udf_kwargs": kwargs}
    values["udf_takes_frames"] = _takes_frames(udf)
    return _Job(**values)


def _takes_frames(udf: Callable[..., Any]) -> bool:
    """Whether ``udf``'s first parameter is annotated as an iterator/iterable of frames."""
    try:
        first = next(iter(inspect.signature(udf).parameters))
        hint = typing.get_type_hints(udf).get(first)
    except (StopIteration, TypeError, ValueError, NameError):
        return False
    origin = typing.get_origin(hint) or hint
    return origin in (collections.abc.Iterator, collections.abc.Iterable)


def _prepare(df: DataFrame) -> tuple[DataFrame, pa.Schema]:
    """``df`` with ML vectors as float64 arrays, and the Arrow schema its batches will have."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.ml.linalg import VectorUDT
    from pyspark.mllib.linalg import VectorUDT as OldVectorUDT
    from pyspark.sql import functions as F

    if not df.columns:
        raise SchemaError("the DataFrame has no columns: select at least one column to write")
    exprs = []
    for f in df.schema.fields:
        col = F.col(f"`{f.name}`")
        if isinstance(f.dataType, (VectorUDT, OldVectorUDT)):
            array = vector_to_array(col, "float64")
            col = F.when(col.isNull(), F.lit(None)).otherwise(array) if f.nullable else array
        exprs.append(col.alias(f.name))
    prepared = df.select(*exprs)
    return prepared, _arrow_schema(prepared)


def _arrow_schema(df: DataFrame) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import StructType

    tz = df.sparkSession.conf.get("spark.sql.session.timeZone")
    fields = []
    for f in df.schema.fields:
        try:
            try:
                one = to_arrow_schema(StructType([f]), timezone=tz)
            except TypeError:  # pyspark < 4 has no timezone argument
                one = to_arrow_schema(StructType([f]))
        except Exception as exc:
            raise SchemaError(
                f"column '{f.name}' has Spark type {f.dataType.simpleString()}, which Spark "
                f"cannot hand to Python as Arrow ({str(exc).strip() or type(exc).__name__}): "
                "cast it (e.g. to string or a struct of plain fields) or drop it"
            ) from None
        fields.append(one.field(0))
    return pa.schema(fields)


def _fingerprint(df: DataFrame) -> dict[str, Any]:
    """Where the data came from: a hash of the plan and of the input files."""
    files = sorted(df.inputFiles())
    digest = hashlib.sha256("\n".join(files).encode()).hexdigest()[:16]
    return {
        "source": "spark",
        "plan_hash": df.semanticHash(),
        "input_files": len(files),
        "input_files_sha256": digest,
        "spark_version": df.sparkSession.version,
    }


# ---- executors ------------------------------------------------------------------------


def _task(job: _Job) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The ``mapInArrow`` function: write one partition, return its shard records."""

    def write_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        context = TaskContext.get()
        if context is None:
            raise RuntimeError("sparkshard's write task must run inside a Spark task")
        partition, attempt = context.partitionId(), context.taskAttemptId()
        store = _GuardedStore(open_store(job.url, job.storage_options), job.marker)
        sink = ShardSink(
            store,
            job.schema,
            prefix=f"{job.data_prefix}p{partition:05d}-a{attempt}-",
            compression=job.compression,
            hashes=job.hashes,
            size_limit=job.size_limit,
        )
        try:
            if job.udf is None:
                for batch in batches:
                    sink.write_batch(batch)
            else:
                for sample in _udf_samples(job, batches):
                    sink.write(sample)
            records = sink.close()
        except BaseException:
            sink.abort()
            raise
        yield _result_batch(partition, attempt, records)

    return write_partition


def _udf_samples(job: _Job, batches: Iterator[pa.RecordBatch]) -> Iterable[Mapping[str, Any]]:
    """Call the user's UDF once for the whole partition (see ``dataframe_to_mds``)."""
    assert job.udf is not None
    if job.udf_takes_frames:
        return job.udf((batch.to_pandas() for batch in batches), **job.udf_kwargs)
    collected = list(batches)
    if not collected:
        return ()
    return job.udf(pa.Table.from_batches(collected).to_pandas(), **job.udf_kwargs)


def _result_batch(partition: int, attempt: int, records: list[ShardRecord]) -> pa.RecordBatch:
    """One row per shard, then a closing row (seq -1) with the attempt's sample count."""
    n = len(records)
    return pa.RecordBatch.from_pydict(
        {
            "partition": pa.array([partition] * (n + 1), pa.int32()),
            "attempt": pa.array([attempt] * (n + 1), pa.int64()),
            "seq": pa.array([*range(n), -1], pa.int32()),
            "samples": pa.array([r.samples for r in records] + [sum(r.samples for r in records)]),
            "record": pa.array([json.dumps(r.to_json()) for r in records] + [None], pa.string()),
        }
    )


# ---- driver: run, choose attempts, commit, clean up ------------------------------------


def _run(
    df: DataFrame,
    job: _Job,
    mode: str,
    source: dict[str, Any],
    started: float,
    base_version: int | None = None,
) -> DatasetInfo:
    store = open_store(job.url, job.storage_options)
    previous = check_mode(store, mode, base_version)
    if mode == "append" and previous is not None:
        check_append_schema(previous, job.schema, store.url)
    log.info("writing to %s as job %s (%s)", store.url, job.token, mode)
    keep: set[str] | None = None
    try:
        rows = df.mapInArrow(_task(job), _RESULT).collect()
        tasks_done = time.perf_counter()
        records = _select(rows, job)
        info = _commit(store, job, mode, previous, records, source, started)
        keep = {r.stored.basename for r in records}
    finally:
        _clean_up(store, job, keep)
    log.info(
        "committed version %d: %d samples in %d shards; tasks %.1f s, commit %.2f s",
        info.version, info.new_samples, len(records), tasks_done - started,
        time.perf_counter() - tasks_done,
    )  # fmt: skip
    return info


# ---- the command line's Spark side (sparkshard.cli never imports pyspark) ---------------

_FORMATS = ("parquet", "delta", "json", "csv", "orc")


def cli_session(master: str | None) -> tuple[Any, bool]:
    """(session, created): the active/spark-submit session, else a new local one."""
    import os

    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        return active, False
    builder = SparkSession.builder.appName("sparkshard convert")
    if master is None and "PYSPARK_GATEWAY_PORT" in os.environ:  # launched by spark-submit
        return builder.getOrCreate(), False
    session = (
        builder.master(master or "local[*]").config("spark.ui.showConsoleProgress", "true")
    ).getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
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
    from sparkshard.delta_snapshot import load_snapshot

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
