"""Bytes values by reference: the loop's process cuts them from its own map of the file the
worker read, and a file deleted or replaced in between is an error naming it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loader.read.spans import FileRef, FileSpans, cut, map_file


def _ref(path: Path) -> FileRef:
    fd = os.open(path, os.O_RDONLY)
    try:
        return FileRef.of(str(path), fd)
    finally:
        os.close(fd)


def test_the_loop_cuts_the_values_the_worker_named(tmp_path: Path) -> None:
    a, b = tmp_path / "a.mds", tmp_path / "b.mds"
    a.write_bytes(b"0123456789")
    b.write_bytes(b"abcdefghij")
    spans = FileSpans.empty(4)
    left = FileSpans([_ref(a)], np.zeros(2, np.int32), np.array([0, 5]), np.array([3, 9]))
    left.buffers = [memoryview(a.read_bytes())]
    right = FileSpans([_ref(b)], np.zeros(1, np.int32), np.array([2]), np.array([4]))
    right.buffers = [memoryview(b.read_bytes())]
    spans.put(np.array([3, 0]), left)
    spans.put(np.array([1]), right)  # position 2 stays a null
    expected = [b"5678", b"cd", None, b"012"]
    assert [None if v is None else bytes(v) for v in spans.views()] == expected
    maps = [map_file(ref) for ref in spans.files]
    assert [
        None if v is None else bytes(v) for v in cut(maps, spans.file, spans.start, spans.end)
    ] == expected


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 20), st.integers(0, 20)), max_size=30))
def test_cut_is_slicing(values: list[tuple[int, int, int]]) -> None:
    buffers = [memoryview(bytes(range(k * 30, k * 30 + 30))) for k in range(2)]
    file = np.array([f - 1 for f, _, _ in values], np.int32)  # -1: a null
    start = np.array([min(a, b) for _, a, b in values], np.int64)
    end = np.array([max(a, b) for _, a, b in values], np.int64)
    got = cut(buffers, file, start, end)
    assert [None if v is None else bytes(v) for v in got] == [
        None if f < 0 else bytes(buffers[f][a:b]) for f, a, b in zip(file, start, end)
    ]


def test_a_file_removed_or_replaced_meanwhile_is_named(tmp_path: Path) -> None:
    shard = tmp_path / "shard.00000.mds"
    shard.write_bytes(b"x" * 100)
    ref = _ref(shard)
    assert bytes(map_file(ref)[:3]) == b"xxx"
    other = tmp_path / "new"
    other.write_bytes(b"y" * 100)  # the same size, another file
    other.replace(shard)
    with pytest.raises(RuntimeError, match=r"shard\.00000\.mds was replaced"):
        map_file(ref)
    shard.unlink()
    with pytest.raises(FileNotFoundError, match=r"shard\.00000\.mds was removed"):
        map_file(ref)
