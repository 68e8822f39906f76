"""``python -m sparkshard convert`` in-process on the shared local Spark session."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loader import DatasetReader
from sparkshard.cli import main, one_line

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def parquet_input(tmp_path: Path) -> Path:
    x = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(200, dtype=np.float32)), 2)
    table = pa.table({"id": pa.array(np.arange(100)), "x": x})
    pq.write_table(table, tmp_path / "in.parquet")
    return tmp_path / "in.parquet"


@pytest.mark.spark
def test_convert_parquet_with_column_overrides(
    spark: Any, parquet_input: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ds"
    argv = ["convert", "--input", str(parquet_input), "--output", str(out),
            "--columns", "x:ndarray:float32:2", "--compression", "zstd:7", "--size-limit", "1KB"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "wrote 100 samples as version 1" in captured.out
    assert "sparkshard: reading" in captured.err and "committed version 1" in captured.err
    reader = DatasetReader(out)
    assert len(reader) == 100 and reader.index.shards[0].compression == "zstd:7"
    assert reader.get(7)["x"].tolist() == [14.0, 15.0]
    assert "x" in dict(
        zip(reader.index.shards[0].column_names, reader.index.shards[0].column_encodings)
    )
    encodings = dict(
        zip(reader.index.shards[0].column_names, reader.index.shards[0].column_encodings)
    )
    assert encodings["x"] == "ndarray:float32:2"
    assert main([*argv, "--mode", "append"]) == 0 and len(DatasetReader(out)) == 200


@pytest.mark.spark
def test_convert_a_table_name(spark: Any, tmp_path: Path) -> None:
    spark.range(0, 30, numPartitions=2).createOrReplaceTempView("cli_numbers")
    assert main(["convert", "--input", "cli_numbers", "--output", str(tmp_path / "ds")]) == 0
    ids = DatasetReader(tmp_path / "ds").get_batch(np.arange(30))["id"]
    assert ids.tolist() == list(range(30))


@pytest.mark.spark
@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (["--input", "/nonexistent/in.parquet"], "PATH_NOT_FOUND"),
        (["--columns", "id"], "--columns takes NAME:ENCODING pairs"),
        (["--columns", "id:str"], "column 'id' holds int64, which cannot be stored as 'str'"),
        (["--mode", "error"], "already holds a dataset"),
    ],
)
def test_convert_fails_with_one_line(
    spark: Any,
    parquet_input: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    reason: str,
) -> None:
    out = tmp_path / "ds"
    if extra == ["--mode", "error"]:
        assert main(["convert", "--input", str(parquet_input), "--output", str(out)]) == 0
    capsys.readouterr()
    assert main(["convert", "--input", str(parquet_input), "--output", str(out), *extra]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("sparkshard convert: error: ") and reason in err[-1]


def test_module_entry_point_shows_help() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sparkshard", "convert", "--help"],
        capture_output=True, text=True, check=False, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0 and "--size-limit" in proc.stdout


def test_one_line_picks_the_innermost_python_error() -> None:
    trace = (
        "[PYTHON_EXCEPTION] An exception was thrown from the Python worker: Traceback (most "
        'recent call last):\n  File "x.py", line 1, in f\nsparkshard.errors.EncodingError: '
        "column 'x' has null elements\n SQLSTATE: 38000"
    )
    assert one_line(RuntimeError(trace)) == "EncodingError: column 'x' has null elements"
    assert one_line(ValueError("first\nsecond")) == "first"
