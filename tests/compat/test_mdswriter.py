"""``sparkshard.MDSWriter``: Mosaic's writer keywords over ours, read back by the REAL Mosaic.

The same samples Mosaic's own MDSWriter wrote for the suite (``mosaic_tool.make_sample``:
every encoding, numpy scalars, PIL images, bytes, str, ndarrays, json and pickle values),
written by ours with only the import changed, must decode in Mosaic exactly as Mosaic's own
files do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mosaic_tool  # tests/compat; imports `streaming` lazily, never here
import numpy as np
import pytest

from loader.read.reader import DatasetReader
from sparkshard import MDSWriter
from sparkshard.errors import DatasetExistsError

pytestmark = pytest.mark.mosaic

SameValue = Callable[[Any, Any, str], None]
SUITE_SAMPLES = 24  # what mosaic_tool.write_suite writes per dataset


def _count(path: Path | str) -> int:
    return len(DatasetReader(str(path), allow_unsafe_pickle=True))  # the suite has a pkl column


def _write(out: Any, n: int = SUITE_SAMPLES, **kwargs: Any) -> None:
    with MDSWriter(out=out, columns=mosaic_tool.COLUMNS, **kwargs) as writer:
        for i in range(n):
            writer.write(mosaic_tool.make_sample(i))


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory, mosaic_dump: Any) -> tuple[Path, Any]:
    """Our MDSWriter's datasets (as the suite's, plus a (local, remote) pair with
    keep_local) and Mosaic's reading of them."""
    root = tmp_path_factory.mktemp("mdswriter")
    for compression, hashes in [
        (None, ["xxh64"]),
        ("zstd", ["sha1", "xxh3_64", "xxh64"]),
        ("gz", []),
    ]:
        name = f"enc-{compression or 'none'}"
        _write(str(root / name), compression=compression, hashes=hashes, size_limit=1 << 14)
    _write((str(root / "kept"), str(root / "remote")), keep_local=True, compression="zstd")
    names = ["enc-none", "enc-zstd", "enc-gz", "kept", "remote"]
    return root, mosaic_dump([root / n for n in names], validate_hash="xxh64")


@pytest.mark.parametrize("name", ["enc-none", "enc-zstd", "enc-gz", "kept", "remote"])
def test_mosaic_decodes_ours_as_its_own(
    written: tuple[Path, Any], mosaic_suite: Any, same_value: SameValue, name: str
) -> None:
    root, view = written
    entry = view[str(root / name)]
    assert entry["ok"], entry.get("error")
    theirs = mosaic_suite.samples(name if name.startswith("enc-") else "enc-zstd")
    assert len(entry["samples"]) == len(theirs) == SUITE_SAMPLES
    for i, (ours, own) in enumerate(zip(entry["samples"], theirs, strict=True)):
        assert sorted(ours) == sorted(own)
        for column, value in own.items():
            same_value(ours[column], value, f"Mosaic reading our {name}[{i}].{column}")
    if name == "enc-none":
        assert len(entry["index"]["shards"]) > 3, "size_limit should have cut several shards"


def test_a_remote_pair_writes_to_the_remote_and_keeps_local_only_if_asked(tmp_path: Path) -> None:
    local, remote = tmp_path / "local", tmp_path / "remote"
    _write((str(local), str(remote)), n=5)
    assert (remote / "index.json").exists() and not local.exists()
    _write((str(local), str(remote)), n=7, keep_local=True, exist_ok=True)
    assert _count(local) == 7 == _count(remote)


def test_exist_ok_replaces_and_its_absence_refuses(tmp_path: Path) -> None:
    out = str(tmp_path / "ds")
    _write(out, n=3)
    with pytest.raises(FileExistsError, match="already holds a dataset"):
        _write(out, n=4)
    _write(out, n=4, exist_ok=True)
    assert _count(out) == 4
    with pytest.raises(DatasetExistsError, match="keep_local"):
        _write((out, str(tmp_path / "r")), n=2, keep_local=True)


def test_an_exception_in_the_block_publishes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    writer = MDSWriter(out=str(out), columns={"x": "int"})
    with pytest.raises(RuntimeError, match="boom"), writer:
        writer.write({"x": 1})
        raise RuntimeError("boom")
    assert not (out / "index.json").exists()


def test_progress_bar_logs_each_shard(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    writer = MDSWriter(
        out=str(tmp_path / "ds"), columns={"x": "ndarray:uint8:100"}, size_limit=500,
        progress_bar=True, max_workers=4, retry=3,
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="sparkshard.write.mdswriter"), writer:
        for i in range(12):
            writer.write({"x": np.full(100, i, np.uint8)})
    shards = [r for r in caplog.records if "MDSWriter: wrote" in r.getMessage()]
    assert len(shards) >= 3


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"bogus": 1}, TypeError, "bogus"),
        ({"hashes": ["nope"]}, ValueError, "nope"),
        ({"compression": "lzma"}, ValueError, "lzma"),
        ({"size_limit": 1 << 33}, ValueError, "size_limit"),
        ({"exist_ok": "yes"}, ValueError, "exist_ok"),
        ({"max_workers": 0}, ValueError, "max_workers"),
        ({"retry": -1}, ValueError, "retry"),
        ({"keep_local": True}, ValueError, "keep_local"),
        ({"out": ""}, ValueError, "out"),
        ({"columns": {}}, ValueError, "columns"),
    ],
)
def test_bad_keywords_are_refused(
    tmp_path: Path, kwargs: dict[str, Any], error: type[Exception], text: str
) -> None:
    given: dict[str, Any] = {"out": str(tmp_path / "ds"), "columns": {"x": "int"}, **kwargs}
    if kwargs.get("keep_local"):
        given["out"] = ("", str(tmp_path / "remote"))
    with pytest.raises(error, match=text):
        MDSWriter(**given)
