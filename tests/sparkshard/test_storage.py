"""The Store contract, run against every backend: a temp dir, S3 (moto), Azure (Azurite),
GCS (fake-gcs-server) and fsspec (memory://). Backend-specific behaviour follows."""

from __future__ import annotations

import os
import pickle
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sparkshard.storage import (
    CloudStore,
    FsspecStore,
    LocalStore,
    Store,
    UnsupportedURLError,
    open_store,
)

LARGE = 24 << 20  # "tens of MB": big enough to span many network reads


class StoreContract:
    """Subclass with a ``store`` fixture to run the contract against a backend."""

    atomic_create = True  # write_new is create-if-absent under contention

    def test_write_read_and_ranges(self, store: Store) -> None:
        store.write("a/b/data.bin", b"0123456789")
        assert store.read("a/b/data.bin") == b"0123456789"
        view = store.read_view("a/b/data.bin")
        assert isinstance(view, memoryview) and view.readonly and view == b"0123456789"
        assert store.read_range("a/b/data.bin", 3, 4) == b"3456"
        assert store.read_range("a/b/data.bin", 8, 10) == b"89"
        assert store.read_range("a/b/data.bin", 0, 10) == b"0123456789"
        assert store.exists("a/b/data.bin") and not store.exists("a/b/other")

    def test_read_range_at_and_past_the_end_is_empty(self, store: Store) -> None:
        store.write("r", b"01234")
        assert store.read_range("r", 5, 3) == b""
        assert store.read_range("r", 9, 3) == b""
        assert store.read_range("r", 2, 0) == b""

    def test_write_replaces(self, store: Store) -> None:
        store.write("k", b"old")
        store.write("k", b"new")
        assert store.read("k") == b"new"

    def test_empty_object(self, store: Store) -> None:
        store.write("empty", b"")
        assert store.read("empty") == b"" and store.exists("empty")

    def test_missing_key_is_file_not_found_naming_the_url(self, store: Store) -> None:
        with pytest.raises(FileNotFoundError, match="nope"):
            store.read("nope")
        with pytest.raises(FileNotFoundError, match="nope"):
            store.read_view("nope")
        with pytest.raises(FileNotFoundError, match="nope"):
            store.read_range("dir/nope", 0, 4)

    def test_keys_cannot_escape_the_root(self, store: Store) -> None:
        for key in ("../x", "/abs", "a/../../b", "a//b"):
            with pytest.raises(ValueError, match="inside"):
                store.read(key)

    def test_write_new_is_create_if_absent(self, store: Store) -> None:
        store.write_new("v/1.json", b"first")
        with pytest.raises(FileExistsError, match="1.json"):
            store.write_new("v/1.json", b"second")
        assert store.read("v/1.json") == b"first"

    def test_write_new_has_one_winner_under_contention(self, store: Store) -> None:
        if not self.atomic_create:
            pytest.skip("this backend's create-if-absent is best effort (documented)")
        for round_ in range(3):
            key = f"race/{round_}.json"
            wins: list[int] = []
            barrier = threading.Barrier(8)

            def attempt(
                i: int, key: str = key, wins: list[int] = wins, barrier: Any = barrier
            ) -> None:
                barrier.wait()
                try:
                    store.write_new(key, f"writer {i}".encode())
                    wins.append(i)
                except FileExistsError:
                    pass

            threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert len(wins) == 1, f"round {round_}: writers {wins} all won"
            assert store.read(key) == f"writer {wins[0]}".encode()

    def test_list_and_delete(self, store: Store) -> None:
        for key in ("x/1", "x/2", "x/y/3", "xy/4", "z"):
            store.write(key, b".")
        assert store.list("x/") == ["x/1", "x/2", "x/y/3"]
        assert store.list("x") == ["x/1", "x/2", "x/y/3"]  # a folder, not a name prefix
        assert store.list("x/y") == ["x/y/3"]
        assert store.list() == ["x/1", "x/2", "x/y/3", "xy/4", "z"]
        assert store.list("nothing/here") == []
        store.delete("x/1")
        store.delete("x/never-there")
        assert store.list("x/") == ["x/2", "x/y/3"]
        assert not store.exists("x/1")

    def test_large_object_round_trip(self, store: Store) -> None:
        data = os.urandom(LARGE)
        store.write("big/blob.bin", data)
        assert store.read("big/blob.bin") == data
        assert store.read_view("big/blob.bin") == data
        middle = LARGE // 2
        assert (
            store.read_range("big/blob.bin", middle, 1 << 20) == data[middle : middle + (1 << 20)]
        )
        assert store.read_range("big/blob.bin", LARGE - 10, 1 << 20) == data[-10:]

    def test_survives_pickling(self, store: Store) -> None:
        store.write("p", b"pickled")
        clone = pickle.loads(pickle.dumps(store))
        assert clone.url == store.url and clone.read("p") == b"pickled"


class TestLocalStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Store:
        return LocalStore(tmp_path / "root")

    def test_local_path_for_mmap(self, store: Store, tmp_path: Path) -> None:
        assert store.local_path("a/b") == str(tmp_path / "root" / "a" / "b")
        assert store.local_path("") == str(tmp_path / "root")


def _fresh(url: str, options: dict[str, Any]) -> Store:
    return open_store(f"{url}/{uuid.uuid4().hex[:8]}/root", options)


class TestS3Store(StoreContract):
    @pytest.fixture
    def store(self, s3_server: Any) -> Store:
        return _fresh(s3_server.new_bucket(), s3_server.storage_options)


class TestAzureStore(StoreContract):
    @pytest.fixture
    def store(self, azure_server: Any) -> Store:
        return _fresh(azure_server.new_bucket(), azure_server.storage_options)


class TestGcsStore(StoreContract):
    @pytest.fixture
    def store(self, gcs_server: Any) -> Store:
        return _fresh(gcs_server.new_bucket(), gcs_server.storage_options)


class TestFsspecMemoryStore(StoreContract):
    atomic_create = False  # fsspec's memory filesystem checks, then writes

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        root = f"memory://sparkshard-{uuid.uuid4().hex[:8]}"
        store = open_store(f"{root}/root")
        assert isinstance(store, FsspecStore)
        yield store
        fs, path = store.filesystem, store.filesystem._strip_protocol(root)
        if fs.exists(path):
            fs.rm(path, recursive=True)


# ------------------------------------------------------------------------- URL routing


def test_open_store_routes_local_urls(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path), LocalStore)
    assert open_store(f"file://{tmp_path}").url == str(tmp_path)
    assert open_store(f"file://localhost{tmp_path}").url == str(tmp_path)
    assert open_store("/Volumes/main/default/vol/ds").url == "/Volumes/main/default/vol/ds"
    assert open_store("dbfs:/Volumes/main/default/vol/ds").url == "/Volumes/main/default/vol/ds"
    assert open_store("dbfs:/mnt/data/ds").url == "/dbfs/mnt/data/ds"
    assert open_store("/dbfs/mnt/data/ds").url == "/dbfs/mnt/data/ds"
    assert isinstance(open_store(tmp_path, {"anon": True}), LocalStore)  # options ignored


def test_open_store_routes_cloud_urls_without_a_request() -> None:
    # Nothing listens on port 9: opening a store must not touch the network.
    s3 = open_store("s3a://bkt/some/ds/", {"endpoint_url": "http://127.0.0.1:9", "anon": True})
    assert isinstance(s3, CloudStore) and s3.url == "s3a://bkt/some/ds"
    assert s3.options.config["skip_signature"] is True
    assert s3.options.client["allow_http"] is True  # from the http:// endpoint
    gcs = open_store("gs://bkt/ds", {"token": "anon"})
    assert isinstance(gcs, CloudStore) and gcs.options.config == {"skip_signature": True}
    adls = open_store("abfss://cont@myaccount.dfs.core.windows.net/ds", {"anon": True})
    assert isinstance(adls, CloudStore)
    assert adls.options.config["account_name"] == "myaccount"


def test_unknown_scheme_names_what_to_do() -> None:
    with pytest.raises(UnsupportedURLError, match=r"'nosuch://'.*s3://.*sparkshard\[cloud\]"):
        open_store("nosuch://bucket/x")


def test_url_without_bucket_is_refused() -> None:
    with pytest.raises(ValueError, match="names no bucket"):
        open_store("s3:///path/only")


def test_unknown_cloud_option_is_refused() -> None:
    with pytest.raises(ValueError, match="storage_options.*not_an_option"):
        open_store("s3://bkt/ds", {"not_an_option": 1})
    with pytest.raises(ValueError, match="max_retries"):
        open_store("s3://bkt/ds", {"max_retries": -1})
    with pytest.raises(ValueError, match="timeout"):
        open_store("s3://bkt/ds", {"timeout": 0})
