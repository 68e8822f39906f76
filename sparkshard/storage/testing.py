"""``StoreContract``: the behaviour every :class:`Store` promises, as a pytest suite.

Every backend of sparkshard runs it (a temp dir, S3, Azure, GCS and fsspec in sparkshard's
own tests), and so can a Store of yours: subclass it in a test module with a ``store``
fixture that returns a fresh, empty store::

    from sparkshard.storage.testing import StoreContract

    class TestMyStore(StoreContract):
        atomic_create = True  # False if write_new cannot be create-if-absent under contention

        @pytest.fixture
        def store(self, tmp_path):
            return MyStore(...)

Needs pytest (imported here only: the library itself never imports this module).
"""

from __future__ import annotations

import os
import pickle
import threading
from typing import Any

import pytest

from sparkshard.storage.store import Store

__all__ = ["StoreContract"]

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
        with pytest.raises(FileExistsError, match=r"1\.json"):
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
