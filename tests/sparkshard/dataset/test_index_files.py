"""Index files and their columnar forms: written by every commit, trusted only when derived
from exactly the JSON at hand, rebuilt (outside the dataset) when stale or damaged."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from sparkshard import ShardWriter
from sparkshard.dataset import index_files
from sparkshard.dataset.index_files import columnar_key, columnar_problem, repair_columnar
from sparkshard.dataset.versions import list_versions, read_index, version_key
from sparkshard.format.columnar_index import decode_columnar, source_digest
from sparkshard.format.index import DatasetIndex
from sparkshard.storage import LocalStore, Store, StoreWrapper, open_store


def _write(path: Path, n: int, mode: str = "overwrite", label: int = 0) -> Path:
    table = pa.table({"id": np.arange(n, dtype=np.int64), "label": np.full(n, label)})
    with ShardWriter(path, size_limit=1500, compression="zstd", mode=mode) as writer:
        writer.write_batch(table)
    return path


class _Recording(StoreWrapper):
    """A store that records what is downloaded; ``remote`` hides local paths (object storage)."""

    def __init__(self, inner: Store, remote: bool = False) -> None:
        super().__init__(inner)
        self.reads: list[str] = []
        self.remote = remote

    def read(self, key: str) -> bytes:
        self.reads.append(key)
        return self.inner.read(key)

    def read_view(self, key: str) -> memoryview:
        self.reads.append(key)
        return self.inner.read_view(key)

    def local_path(self, key: str) -> str | None:
        return None if self.remote else self.inner.local_path(key)


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every JSON index parsed (by name) while the test runs."""
    seen: list[str] = []
    original = DatasetIndex.from_json.__func__  # type: ignore[attr-defined]

    def spy(cls: type[DatasetIndex], data: bytes | str, source: str) -> DatasetIndex:
        seen.append(source)
        return original(cls, data, source)  # type: ignore[no-any-return]

    monkeypatch.setattr(DatasetIndex, "from_json", classmethod(spy))
    return seen


def test_every_commit_writes_the_columnar_form_of_its_record(tmp_path: Path) -> None:
    path = _write(_write(tmp_path / "ds", 300), 200, mode="append")
    store = LocalStore(path)
    assert list_versions(store) == [1, 2]
    for v in (1, 2):
        key = version_key(v)
        assert columnar_problem(store, key, store.read(key)) is None
        decoded = decode_columnar((path / columnar_key(key)).read_bytes(), key).index
        assert decoded == DatasetIndex.from_json(store.read(key), key)
    assert not (path / "index.columnar").exists()  # index.json is Mosaic's: left as it is


def test_read_index_loads_the_columnar_form_and_parses_no_json(
    tmp_path: Path, parses: list[str]
) -> None:
    path = _write(tmp_path / "ds", 300)
    expected = DatasetIndex.from_json((path / version_key(1)).read_bytes(), "v1")
    parses.clear()
    assert read_index(LocalStore(path)) == expected
    assert read_index(LocalStore(path), 1).fingerprint() == expected.fingerprint()
    assert parses == []


def test_a_stale_columnar_form_is_detected_even_at_the_same_length(
    tmp_path: Path, parses: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    # Two datasets whose version records have the same length but other content.
    a, b = _write(tmp_path / "a", 300, label=1), _write(tmp_path / "b", 300, label=2)
    key = version_key(1)
    assert (a / key).stat().st_size == (b / key).stat().st_size
    shutil.copyfile(b / columnar_key(key), a / columnar_key(key))
    parses.clear()
    with caplog.at_level(logging.INFO, logger="sparkshard.dataset.index_files"):
        got = read_index(LocalStore(a))
    assert len(parses) == 1 and "is stale" in caplog.text  # parsed from the JSON instead
    assert got == DatasetIndex.from_json((a / key).read_bytes(), "a")
    assert got.fingerprint() != read_index(LocalStore(b)).fingerprint()
    assert "is stale" in (columnar_problem(LocalStore(a), key, (a / key).read_bytes()) or "")


def test_a_damaged_columnar_form_is_never_trusted_and_verify_repair_rewrites_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path / "ds", 300)
    key, store = version_key(1), LocalStore(path)
    side = path / columnar_key(key)
    damaged = bytearray(side.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    side.write_bytes(bytes(damaged))
    with caplog.at_level(logging.WARNING, logger="sparkshard.dataset.index_files"):
        got = read_index(store)
    assert got == DatasetIndex.from_json(store.read(key), key)
    assert "fails its xxh3_128 check" in caplog.text
    assert "xxh3_128" in (columnar_problem(store, key, store.read(key)) or "")
    assert repair_columnar(store, [key]) == [columnar_key(key)]
    assert columnar_problem(store, key, store.read(key)) is None
    assert repair_columnar(store, [key]) == []  # sound now: left alone


def test_a_plain_mds_index_is_derived_into_the_callers_directory_and_rechecked(
    tmp_path: Path, parses: list[str]
) -> None:
    path = _write(tmp_path / "ds", 300)
    shutil.rmtree(path / "_sparkshard")  # index.json only, as Mosaic writes datasets
    derived = tmp_path / "cache"
    parses.clear()
    first = read_index(LocalStore(path), derived=derived)
    assert len(parses) == 1 and sorted(p.name for p in derived.iterdir()) == ["index.columnar"]
    assert read_index(LocalStore(path), derived=derived) == first and len(parses) == 1
    assert sorted(p.name for p in path.iterdir()) == ["data", "index.json"]  # nothing written
    # Rewritten in place (Mosaic does that): the derived form no longer matches, so it is
    # rebuilt from the new JSON.
    _write(tmp_path / "other", 240, label=5)
    shutil.copyfile(tmp_path / "other" / "index.json", path / "index.json")
    shutil.rmtree(path / "data")
    shutil.copytree(tmp_path / "other" / "data", path / "data")
    newer = read_index(LocalStore(path), derived=derived)
    assert newer.num_samples == 240 and len(parses) == 2
    cached = decode_columnar((derived / "index.columnar").read_bytes(), "cached")
    assert cached.source_digest == source_digest((path / "index.json").read_bytes())


def test_object_storage_fetches_the_columnar_form_never_the_json(
    tmp_path: Path, s3_server: object
) -> None:
    local = _write(_write(tmp_path / "ds", 300), 100, mode="append")
    url = s3_server.new_bucket()  # type: ignore[attr-defined]
    s3 = open_store(url, s3_server.storage_options)  # type: ignore[attr-defined]
    for file in local.rglob("*"):
        if file.is_file():
            s3.write(file.relative_to(local).as_posix(), file.read_bytes())
    store = _Recording(s3)
    got = read_index(store)
    assert got == DatasetIndex.from_json((local / version_key(2)).read_bytes(), "v2")
    assert store.reads == [columnar_key(version_key(2))]
    # A columnar form of another length than its record (a stale one) is not used.
    s3.write(columnar_key(version_key(2)), (local / columnar_key(version_key(1))).read_bytes())
    store.reads.clear()
    assert read_index(store) == got
    assert version_key(2) in store.reads


def test_a_remote_stale_index_json_is_downloaded_and_compared(tmp_path: Path) -> None:
    # index.json may be rewritten: without a local path its digest is checked after download.
    path = _write(tmp_path / "ds", 300)
    shutil.rmtree(path / "_sparkshard")
    inner = LocalStore(path)
    data = inner.read("index.json")
    index_files.write_columnar(inner, "index.json", data, DatasetIndex.from_json(data, "i"))
    store = _Recording(inner, remote=True)
    assert read_index(store).num_samples == 300 and "index.json" in store.reads
    _write(tmp_path / "other", 120)
    shutil.copyfile(tmp_path / "other" / "index.json", path / "index.json")
    assert read_index(store).num_samples == 120  # the stale index.columnar was not trusted


def test_a_delta_sync_commits_through_the_same_function(tmp_path: Path) -> None:
    from deltalake import write_deltalake

    import sparkshard

    uri, out = str(tmp_path / "table"), str(tmp_path / "ds")
    write_deltalake(uri, pa.table({"x": np.arange(50, dtype=np.int64)}))
    sparkshard.delta_to_shards(uri, out)
    write_deltalake(uri, pa.table({"x": np.arange(50, 80, dtype=np.int64)}), mode="append")
    sparkshard.delta_to_shards(uri, out)  # the sync appends the new rows as version 2
    store = LocalStore(out)
    assert list_versions(store) == [1, 2]
    for v in (1, 2):
        key = version_key(v)
        assert (Path(out) / columnar_key(key)).exists()
        assert columnar_problem(store, key, store.read(key)) is None
    assert read_index(store).num_samples == 80
