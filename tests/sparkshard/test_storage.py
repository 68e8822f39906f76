"""The Store contract. Every backend runs these tests (the storage issue adds cloud ones)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sparkshard.storage import LocalStore, Store, UnsupportedURLError, open_store


class StoreContract:
    """Subclass with a ``store`` fixture to run the contract against a backend."""

    def test_write_read_and_ranges(self, store: Store) -> None:
        store.write("a/b/data.bin", b"0123456789")
        assert store.read("a/b/data.bin") == b"0123456789"
        assert store.read_range("a/b/data.bin", 3, 4) == b"3456"
        assert store.read_range("a/b/data.bin", 8, 10) == b"89"
        assert store.exists("a/b/data.bin") and not store.exists("a/b/other")

    def test_write_replaces(self, store: Store) -> None:
        store.write("k", b"old")
        store.write("k", b"new")
        assert store.read("k") == b"new"

    def test_missing_key_is_file_not_found(self, store: Store) -> None:
        with pytest.raises(FileNotFoundError, match="nope"):
            store.read("nope")

    def test_write_new_is_create_if_absent(self, store: Store) -> None:
        store.write_new("v/1.json", b"first")
        with pytest.raises(FileExistsError):
            store.write_new("v/1.json", b"second")
        assert store.read("v/1.json") == b"first"

    def test_write_new_has_one_winner_under_contention(self, store: Store) -> None:
        wins: list[int] = []

        def attempt(i: int) -> None:
            try:
                store.write_new("race.json", str(i).encode())
                wins.append(i)
            except FileExistsError:
                pass

        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1
        assert store.read("race.json") == str(wins[0]).encode()

    def test_list_and_delete(self, store: Store) -> None:
        for key in ("x/1", "x/2", "x/y/3", "z"):
            store.write(key, b".")
        assert store.list("x/") == ["x/1", "x/2", "x/y/3"]
        assert set(store.list()) >= {"x/1", "x/2", "x/y/3", "z"}
        store.delete("x/1")
        store.delete("x/never-there")
        assert store.list("x/") == ["x/2", "x/y/3"]


class TestLocalStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Store:
        return LocalStore(tmp_path / "root")

    def test_keys_cannot_escape_the_root(self, store: Store) -> None:
        with pytest.raises(ValueError, match="inside"):
            store.read("../etc/passwd")

    def test_local_path_for_mmap(self, store: Store, tmp_path: Path) -> None:
        assert store.local_path("a/b") == str(tmp_path / "root" / "a" / "b")


def test_open_store_routes_urls(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path), LocalStore)
    assert open_store(f"file://{tmp_path}").url == str(tmp_path)
    with pytest.raises(UnsupportedURLError, match="'nosuch://'"):
        open_store("nosuch://bucket/x")
