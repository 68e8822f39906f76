"""``dataframe_to_mds``: Mosaic's converter signature over sparkshard's exactly-once write.

A Mosaic user changes one import; ``mds_kwargs`` take ``MDSWriter``'s names and map onto
:func:`sparkshard.spark.write.dataframe_to_shards`'s options.
"""

from __future__ import annotations

import collections.abc
import inspect
import logging
import time
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from sparkshard.dataset.versions import DatasetInfo
from sparkshard.errors import SchemaError
from sparkshard.format.schema import Schema, schema_from_arrow
from sparkshard.spark.fingerprint import lineage_fingerprint
from sparkshard.spark.write import dataframe_to_shards, prepare_frame, run_job
from sparkshard.write.commit import Job, new_job
from sparkshard.write.mosaic_names import MOSAIC_WRITER_EXTRAS, mosaic_out, mosaic_writer_options
from sparkshard.write.settings import WriterSettings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["dataframe_to_mds"]

log = logging.getLogger(__name__)


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
    local, remote = mosaic_out(kwargs.pop("out", None))
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
        _job(url, Schema.from_encodings(columns), options),
        udf_iterable,
        dict(udf_kwargs or {}),
    )
    prepared, _ = prepare_frame(dataframe)
    source = {**lineage_fingerprint(dataframe), "udf": getattr(udf_iterable, "__qualname__", "udf")}
    run_job(prepared, job, options["mode"], source, time.perf_counter())
    return local, remote


def _mosaic_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Mosaic's MDSWriter keyword arguments -> ``dataframe_to_shards`` options (the extras
    ``keep_local``, ``progress_bar``, ``max_workers``, ``retry`` are validated and dropped:
    executors write straight to the output, nothing is kept locally)."""
    options = mosaic_writer_options(kwargs)
    for name in MOSAIC_WRITER_EXTRAS:
        options.pop(name, None)
    return options


def _mosaic_columns(
    df: DataFrame, url: str, columns: Mapping[str, str] | None, options: dict[str, Any]
) -> DatasetInfo:
    """Write ``df``; explicit Mosaic ``columns`` are the exact stored layout (no null masks)."""
    if not columns:
        return dataframe_to_shards(df, url, **options)
    started = time.perf_counter()
    from pyspark.sql import functions as F

    prepared, arrow_schema = prepare_frame(df.select(*[F.col(f"`{c}`") for c in columns]))
    strict = pa.schema([f.with_nullable(False) for f in arrow_schema])
    job = _job(url, schema_from_arrow(strict, columns), options)
    return run_job(prepared, job, options["mode"], lineage_fingerprint(df), started)


def _job(url: str, schema: Schema, options: dict[str, Any]) -> Job:
    settings = WriterSettings.of(options["compression"], options["hashes"], options["size_limit"])
    return new_job(url, options["storage_options"], schema, settings)


def _with_udf(job: Job, udf: Callable[..., Any], kwargs: dict[str, Any]) -> Job:
    if not callable(udf):
        raise TypeError(f"udf_iterable must be callable, got {type(udf).__name__}")
    values = {**job.__dict__, "udf": udf, "udf_kwargs": kwargs}
    values["udf_takes_frames"] = _takes_frames(udf)
    return Job(**values)


def _takes_frames(udf: Callable[..., Any]) -> bool:
    """Whether ``udf``'s first parameter is annotated as an iterator/iterable of frames."""
    try:
        first = next(iter(inspect.signature(udf).parameters))
        hint = typing.get_type_hints(udf).get(first)
    except (StopIteration, TypeError, ValueError, NameError):
        return False
    origin = typing.get_origin(hint) or hint
    return origin in (collections.abc.Iterator, collections.abc.Iterable)
