"""``SparseFile``: a remote file of which only some spans were fetched reads as the file
with zeros between those spans, whatever reads pyarrow makes."""

from __future__ import annotations

import io
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from loader.tables.remote import SparseFile


@st.composite
def sparse_files(draw: st.DrawFn) -> tuple[int, list[tuple[int, bytes]]]:
    size = draw(st.integers(1, 40))
    cuts = sorted(draw(st.sets(st.integers(0, size), min_size=2, max_size=8)))
    spans = [(a, bytes((a + k) % 251 + 1 for k in range(b - a))) for a, b in pairwise(cuts)]
    return size, draw(st.permutations([span for span in spans if draw(st.booleans())]))


@given(file=sparse_files(), reads=st.lists(st.tuples(st.integers(0, 45), st.integers(0, 30))))
def test_reads_see_the_spans_and_zeros_between(
    file: tuple[int, list[tuple[int, bytes]]], reads: list[tuple[int, int]]
) -> None:
    size, spans = file
    whole = bytearray(size)
    for start, data in spans:
        whole[start : start + len(data)] = data
    raw = SparseFile(size, spans, "f")
    buffered = io.BufferedReader(SparseFile(size, spans, "f"), buffer_size=7)
    for at, n in reads:
        raw.seek(at)
        into = bytearray(b"\xff" * n)  # what a reused buffer held before
        got = raw.readinto(into)
        assert bytes(into[:got]) == bytes(whole[at : at + n]) and raw.tell() == at + got
        raw.seek(at)
        assert bytes(raw.read(n)) == bytes(whole[at : at + n])  # a view where it can be
        assert raw.tell() == min(at + n, max(size, at))
        buffered.seek(at)
        assert buffered.read(n) == bytes(whole[at : at + n])
