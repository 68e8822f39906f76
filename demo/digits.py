"""The demo's data: scikit-learn's digits as a Spark DataFrame, written as shards.

``load_digits()`` ships 1,797 real 8x8 grey-level images (0..16) inside scikit-learn, so
nothing is downloaded. Every fifth image (``id % 5 == 0``) is held out for evaluation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["HELD_OUT_EVERY", "digits_dataframe", "local_spark", "write_digits"]

HELD_OUT_EVERY = 5


def local_spark() -> Any:
    """A quiet local Spark session on 2 cores (Spark's Python workers use this interpreter)."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # no hostname warnings; stays local
    from sparkshard.spark.session import local_session

    return local_session("sparkshard-demo", conf={"spark.sql.shuffle.partitions": "4"})


def digits_dataframe(spark: Any) -> Any:
    """``id long, image array<array<tinyint>> (8x8), label tinyint`` for the 1,797 digits."""
    from pyspark.sql import types as T
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = T.ArrayType(T.ArrayType(T.ByteType(), False), False)
    schema = T.StructType(
        [
            T.StructField("id", T.LongType(), False),
            T.StructField("image", pixels, False),
            T.StructField("label", T.ByteType(), False),
        ]
    )
    images = digits.images.astype(np.int8).tolist()
    rows = [(i, images[i], int(label)) for i, label in enumerate(digits.target)]
    return spark.createDataFrame(rows, schema)


def write_digits(spark: Any, out: str | Path) -> dict[str, Any]:
    """Write ``out/train`` and ``out/test`` with sparkshard; return their DatasetInfo."""
    import sparkshard

    df = digits_dataframe(spark)
    columns = {"image": "ndarray:uint8:8,8"}  # a fixed-shape array, as Mosaic reads it too
    held_out = df.id % HELD_OUT_EVERY == 0
    return {
        split: sparkshard.dataframe_to_shards(
            part, f"{out}/{split}", columns=columns, size_limit="8KB", mode="overwrite"
        )
        for split, part in (("train", df.filter(~held_out)), ("test", df.filter(held_out)))
    }
