"""The Store contract, run against every backend: a temp dir, S3 (moto), Azure (Azurite),
GCS (fake-gcs-server) and fsspec (memory://). Backend-specific behaviour follows."""

from __future__ import annotations

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
    StoreWrapper,
    UnsupportedURLError,
    open_store,
    staging_files,
)
from sparkshard.storage.testing import StoreContract


class TestLocalStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Store:
        return LocalStore(tmp_path / "root")

    def test_local_path_for_mmap(self, store: Store, tmp_path: Path) -> None:
        assert store.local_path("a/b") == str(tmp_path / "root" / "a" / "b")
        assert store.local_path("") == str(tmp_path / "root")

    def test_staging_files_are_what_an_unfinished_write_leaves(self, store: Store) -> None:
        from sparkshard.storage._local import _staged

        store.write("data/done.mds", b"whole")
        store.write("data/x.tmp", b"a key that merely ends in .tmp")
        root = Path(str(store.local_path("")))
        with _staged(root / "data" / "sub" / "cut.mds.zstd", b"half") as tmp:  # as if killed
            key = tmp.relative_to(root).as_posix()
            assert staging_files(store) == {key: "data/sub/cut.mds.zstd"}
            assert staging_files(StoreWrapper(store), "data/sub") == {key: "data/sub/cut.mds.zstd"}
            assert staging_files(store, "other/") == {}
            assert key not in store.list()  # list() hides it: only staging_files finds it
            store.delete(key)
        assert staging_files(store) == {}


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


def test_object_stores_have_no_staging_files() -> None:
    store = open_store(f"memory://{uuid.uuid4().hex[:8]}/root")
    store.write("data/.a.mds.0123456789abcdef0123456789abcdef.tmp", b"an object like any other")
    assert staging_files(store) == {}


def test_open_store_routes_local_urls(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path), LocalStore)
    assert open_store(f"file://{tmp_path}").url == str(tmp_path)
    assert open_store(f"file://localhost{tmp_path}").url == str(tmp_path)
    assert open_store("/Volumes/main/default/vol/ds").url == "/Volumes/main/default/vol/ds"
    assert open_store("dbfs:/Volumes/main/default/vol/ds").url == "/Volumes/main/default/vol/ds"
    assert open_store("dbfs:/mnt/data/ds").url == "/dbfs/mnt/data/ds"
    assert open_store("/dbfs/mnt/data/ds").url == "/dbfs/mnt/data/ds"
    # Options would have no effect on a local path: refused, never silently ignored.
    with pytest.raises(ValueError, match=r"storage_options \['anon'\].*no effect: drop them"):
        open_store(tmp_path, {"anon": True})
    store = LocalStore(tmp_path)
    assert open_store(store) is store  # a Store is used as it is


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
