"""``python -m sparkshard inspect | verify | history | gc`` on healthy and damaged datasets.

The tools on every object store (s3://, gs://, abfss://) are tested end to end in
tests/sparkshard/storage/test_end_to_end_clouds.py."""

from __future__ import annotations

import datetime as dt
import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from loader import DatasetReader
from sparkshard import ShardWriter
from sparkshard.cli import main
from sparkshard.dataset.versions import list_versions, version_key
from sparkshard.format.index import DatasetIndex
from sparkshard.format.schema import ColumnSpec
from sparkshard.storage import open_store
from sparkshard.tools.spark_types import spark_type_name

REPO = Path(__file__).resolve().parents[3]
UTC = dt.timezone.utc


def _png(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), shade).save(buffer, format="PNG")
    return buffer.getvalue()


def _rows(ids: range) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(list(ids), pa.int64()),
            "score": pa.array([None if i % 4 == 0 else i / 2 for i in ids], pa.float32()),
            "when": pa.array(
                [dt.datetime(2024, 1, 1, tzinfo=UTC) + dt.timedelta(hours=i) for i in ids],
                pa.timestamp("us", tz="UTC"),
            ),
            "img": pa.array([_png(i % 250) for i in ids], pa.binary()),
        }
    )


def _write(url: str, ids: range, mode: str, options: dict[str, Any] | None = None) -> None:
    with ShardWriter(
        url,
        columns={"img": "png"},
        size_limit="2KB",
        mode=mode,
        storage_options=options,  # type: ignore[arg-type]
    ) as writer:
        writer.write_batch(_rows(ids))


def _three_versions(url: str, options: dict[str, Any] | None = None) -> None:
    _write(url, range(40), "error", options)  # 1
    _write(url, range(40, 60), "append", options)  # 2: keeps version 1's shards
    _write(url, range(100, 110), "overwrite", options)  # 3: only new shards


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    out = tmp_path / "ds"
    _three_versions(str(out))
    return out


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_inspect_shows_schema_lineage_rows_and_a_preview(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "preview.png"
    code, out, _ = _run(capsys, "inspect", str(dataset), "--rows", "2", "--png", str(png))
    assert code == 0
    assert "version   3 of 1..3 (3 kept)" in out and "samples   10 in" in out
    for line in ("id     bigint  (mds: int64)", "score  float  (mds: float32)",
                 "when   timestamp  (mds: int64)", "img    binary  (mds: png)"):  # fmt: skip
        assert line in out, line
    assert '"mode": "overwrite"' in out and "score=None" in out
    assert "[1] id=101, img=<image 8x8 L>, score=50.5, when=2024-01-05T05:00:00+00:00" in out
    with Image.open(png) as preview:
        assert preview.size == (8 * 8, 2 * 8)  # 10 images, 8 per row
    code, out, _ = _run(
        capsys, "inspect", str(dataset), "--version", "1", "--rows", "0", "--shards"
    )
    index = DatasetIndex.from_json((dataset / version_key(1)).read_bytes(), "v1")
    assert code == 0 and "samples   40 in" in out
    for shard in index.shards:
        assert f"  {shard.stored.basename}  {shard.samples:,} samples" in out


def test_history_lists_every_version(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "history", str(dataset))
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 4
    cells = [line.split() for line in lines[1:]]
    assert [(c[0], c[2], c[3], c[4]) for c in cells] == [
        ("1", "error", "40", "40"), ("2", "append", "60", "20"), ("3", "overwrite", "10", "10")
    ]  # fmt: skip


def test_verify_passes_on_a_healthy_dataset(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(dataset.rglob("*"))
    DatasetReader(dataset).get_batch(np.arange(10))
    assert sorted(dataset.rglob("*")) == before  # reading writes nothing into the dataset
    code, out, err = _run(capsys, "verify", str(dataset), "--all-versions")
    assert (
        code == 0
        and out.startswith("OK: ")
        and "version 1, 2, 3" in out
        and not err.count("BROKEN")
    )


def _latest_shard(dataset: Path) -> Path:
    index = DatasetIndex.from_json((dataset / "index.json").read_bytes(), "index")
    return dataset / index.shards[-1].stored.basename


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))


def _stale_index(dataset: Path) -> None:
    shutil.copyfile(dataset / version_key(1), dataset / "index.json")


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda d: _flip(_latest_shard(d)), "fails its xxh64 check"),
        (lambda d: _latest_shard(d).unlink(), "does not exist"),
        (lambda d: _latest_shard(d).write_bytes(_latest_shard(d).read_bytes()[:-9]), "truncated"),
        (_stale_index, "holds version 1 but the latest version is 3"),
    ],
    ids=["flipped-byte", "deleted-shard", "truncated-shard", "stale-index"],
)
def test_verify_names_what_is_broken(
    dataset: Path, damage: Any, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    damage(dataset)
    code, _, err = _run(capsys, "verify", str(dataset))
    assert code == 1 and expected in err and "1 problem(s)" in err, err
    where = err.split("BROKEN ", 1)[1].split(":", 1)[0]
    assert where in ("index.json", _latest_shard(dataset).relative_to(dataset).as_posix())


def test_verify_checks_layout_without_hashes_and_decompressed_copies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "plain"
    with ShardWriter(plain, compression=None, hashes=[]) as writer:  # nothing to check a hash of
        writer.write_batch(pa.table({"id": [1, 2, 3], "s": ["a", "bb", "ccc"]}))
    shard = next((plain / "data").iterdir())
    data = bytearray(shard.read_bytes())
    first = int(np.frombuffer(bytes(data[4:8]), "<u4")[0])
    data[first] = 9  # the first sample's length prefix for "s" now claims 9 bytes
    shard.write_bytes(bytes(data))
    code, _, err = _run(capsys, "verify", str(plain))
    assert code == 1 and "sample 0 spans" in err
    copies = tmp_path / "copies"
    _write(str(copies), range(8), "error")
    zipped = next(p for p in (copies / "data").iterdir() if p.name.endswith(".zstd"))
    raw = zipped.with_suffix("")  # a copy beside it, as Mosaic's reader leaves one
    raw.write_bytes(zstandard.ZstdDecompressor().decompress(zipped.read_bytes()))
    _flip(raw)
    code, _, err = _run(capsys, "verify", str(copies))
    assert code == 1 and f"decompressed copy {raw.relative_to(copies).as_posix()}" in err


def test_gc_is_a_dry_run_until_told(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = sorted(p.relative_to(dataset).as_posix() for p in dataset.rglob("*") if p.is_file())
    (dataset / "data" / "0123456789ab-00000.mds").write_bytes(b"orphan of a running write?")
    (dataset / "notes.txt").write_text("not ours")
    code, out, _ = _run(capsys, "gc", str(dataset), "--retain", "2")
    assert code == 0 and "would remove _sparkshard/versions/0000000001.json" in out
    assert "would remove 1 old version(s), 0 shard file(s)" in out  # v2 still uses v1's shards
    assert "kept data/0123456789ab-00000.mds (unreferenced but recent" in out
    code, out, _ = _run(capsys, "gc", str(dataset), "--retain", "1")
    assert "would remove 2 old version(s)" in out and "run again with --yes" in out
    after = sorted(p.relative_to(dataset).as_posix() for p in dataset.rglob("*") if p.is_file())
    assert set(after) - set(before) == {"data/0123456789ab-00000.mds", "notes.txt"}  # dry run


def test_gc_deletes_only_what_no_kept_version_needs(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store(dataset)
    orphan, marked = "data/0123456789ab-00000.mds", "data/ba9876543210-p00000-a1-00000.mds"
    store.write(orphan, b"fresh, unmarked: maybe a write in progress")
    store.write(marked, b"its job finished: an orphan for sure")
    store.write("_sparkshard/jobs/ba9876543210", b'{"state": "aborted"}')
    store.write("notes.txt", b"not ours")
    code, out, _ = _run(capsys, "gc", str(dataset), "--retain", "1", "--yes")
    assert code == 0 and f"removed {marked}" in out and f"kept {orphan}" in out
    assert list_versions(store) == [3]
    assert store.exists(orphan) and store.exists("notes.txt") and not store.exists(marked)
    index = DatasetIndex.from_json(store.read("index.json"), "index")
    assert set(store.list("data/")) == {orphan} | {s.stored.basename for s in index.shards}
    assert _run(capsys, "verify", str(dataset))[0] == 0
    assert sorted(DatasetReader(dataset).get_batch(np.arange(10))["id"].tolist()) == list(
        range(100, 110)
    )
    code, out, _ = _run(capsys, "gc", str(dataset), "--retain", "1", "--min-age", "0", "--yes")
    assert f"removed {orphan}" in out and "removed _sparkshard/jobs/ba9876543210" in out
    assert (
        _run(capsys, "gc", str(dataset), "--retain", "1")[1].count("would remove") == 1
    )  # summary


def test_gc_removes_half_written_staging_files(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sparkshard.storage._local import _staged

    store = open_store(dataset)
    store.write("_sparkshard/jobs/ba9876543210", b'{"state": "aborted"}')
    with (
        _staged(dataset / "data/ba9876543210-p00000-a1-00000.mds.zstd", b"half") as finished,
        _staged(dataset / "data/0123456789ab-00000.mds", b"half: maybe still writing") as running,
        _staged(dataset / "index.json", b"{") as not_a_shard,
    ):
        code, out, _ = _run(capsys, "gc", str(dataset), "--retain", "3", "--yes")
        assert code == 0 and f"removed data/{finished.name}" in out and not finished.exists()
        assert f"kept data/{running.name} (unreferenced but recent" in out and running.exists()
        _run(capsys, "gc", str(dataset), "--retain", "3", "--min-age", "0", "--yes")
        assert not running.exists() and not_a_shard.exists()  # only shard files are ours


def test_gc_min_age_uses_file_age(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = dataset / "data" / "0123456789ab-00000.mds"
    old.write_bytes(b"left by a crashed writer two hours ago")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    _, out, _ = _run(capsys, "gc", str(dataset), "--retain", "3", "--yes")
    assert "removed data/0123456789ab-00000.mds" in out and not old.exists()
    assert list_versions(open_store(dataset)) == [1, 2, 3]  # retain 3 keeps every version


def test_the_module_runs_as_a_command(dataset: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sparkshard", "verify", str(dataset)],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.startswith("OK:"), proc.stderr
    _latest_shard(dataset).unlink()
    proc = subprocess.run(
        [sys.executable, "-m", "sparkshard", "verify", str(dataset)],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 1 and "BROKEN data/" in proc.stderr


# ---- Spark type names ---------------------------------------------------------------------

_SCALARS = st.sampled_from(
    [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.float32(), pa.float64(), pa.bool_(),
     pa.string(), pa.large_string(), pa.binary(), pa.date32(), pa.timestamp("us"),
     pa.timestamp("us", tz="UTC"), pa.decimal128(12, 3), pa.decimal128(38, 0)]
)  # fmt: skip
_NAMES = st.text(alphabet="abcxyz_", min_size=1, max_size=5)
_TYPES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.builds(pa.list_, inner),
        st.builds(lambda t: pa.list_(t, 2), inner),
        st.builds(
            lambda fields: pa.struct([pa.field(n, t) for n, t in dict(fields).items()]),
            st.lists(st.tuples(_NAMES, inner), min_size=1, max_size=3),
        ),
        st.builds(pa.map_, st.sampled_from([pa.string(), pa.int32()]), inner),
    ),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None)
@given(arrow_type=_TYPES)
def test_spark_type_names_match_spark(arrow_type: pa.DataType) -> None:
    from pyspark.sql.pandas.types import from_arrow_type

    expected = from_arrow_type(arrow_type).simpleString()
    assert spark_type_name(ColumnSpec("c", "json", arrow_type=str(arrow_type))) == expected


def test_spark_type_names_from_mds_encodings() -> None:
    names = {enc: spark_type_name(ColumnSpec("c", enc)) for enc in
             ("int8", "uint32", "int", "str", "bytes", "jpeg", "ndarray:float32:16", "float64")}  # fmt: skip
    assert names == {
        "int8": "tinyint", "uint32": "bigint", "int": "bigint", "str": "string", "bytes": "binary",
        "jpeg": "binary", "ndarray:float32:16": "array<float>", "float64": "double",
    }  # fmt: skip


def test_gc_refuses_while_a_kept_version_misses_shards(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Retaining only a broken latest version would delete the last intact ones."""
    store = open_store(dataset)
    latest = DatasetIndex.from_json(store.read("index.json"), "index")
    (dataset / latest.shards[0].stored.basename).unlink()
    before = sorted(p.relative_to(dataset) for p in dataset.rglob("*"))
    code, _, err = _run(capsys, "gc", str(dataset), "--retain", "1", "--min-age", "0", "--yes")
    assert code == 1 and "refused" in err and "missing shard file" in err and "verify" in err
    assert sorted(p.relative_to(dataset) for p in dataset.rglob("*")) == before
    assert [v for v in (1, 2) if (dataset / version_key(v)).exists()] == [1, 2]


def test_verify_repair_brings_index_json_up_to_date(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _stale_index(dataset)
    code, _, err = _run(capsys, "verify", str(dataset))
    assert code == 1 and "holds version 1 but the latest version is 3" in err
    code, out, _ = _run(capsys, "verify", "--repair", str(dataset))
    assert code == 0 and "index.json rewritten from the latest version" in out
    assert (dataset / "index.json").read_bytes() == (dataset / version_key(3)).read_bytes()
