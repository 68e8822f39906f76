"""The columnar index: every field of index.json round-trips, damage is always detected."""

from __future__ import annotations

import hashlib
import json
import pickle
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparkshard.errors import IndexFormatError
from sparkshard.format.columnar_index import (
    FORMAT,
    MAGIC,
    decode_columnar,
    encode_columnar,
    source_digest,
)
from sparkshard.format.index import DatasetIndex, FileInfo, ShardRecord, ShardTable

_NAME = st.text(st.sampled_from("abc_-.0123456789é✓"), min_size=1, max_size=12)
_BASENAME = (
    st.lists(_NAME, min_size=1, max_size=3).map("/".join).filter(lambda n: ".." not in n.split("/"))
)
_HEX = st.sampled_from(["0123456789abcdef", "deadbeef", "", "ABCDEF01", "f" * 64])
_HASHES = st.dictionaries(st.sampled_from(["xxh64", "sha256", "xxh3_64", "md5"]), _HEX)
_FILE = st.builds(FileInfo, _BASENAME, st.integers(0, 2**40), _HASHES)


@st.composite
def _layouts(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(_NAME, min_size=1, max_size=3, unique=True))
    encodings = draw(st.lists(st.sampled_from(["int64", "str", "bytes", "ndarray:uint8:3"]),
                              min_size=len(names), max_size=len(names)))  # fmt: skip
    sizes = [8 if e == "int64" else None for e in encodings]
    return {
        "column_names": tuple(names),
        "column_encodings": tuple(encodings),
        "column_sizes": tuple(sizes),
        "compression": draw(st.sampled_from([None, "zstd", "zstd:7", "br:11"])),
        "hashes": tuple(draw(st.lists(st.sampled_from(["sha256", "xxh64"]), unique=True))),
        "size_limit": draw(st.sampled_from([None, 1 << 26, 1500])),
    }


@st.composite
def _records(draw: st.DrawFn) -> list[ShardRecord]:
    # A merged index: a few layouts among the shards, sub-directory basenames, empty shards.
    layouts = draw(st.lists(_layouts(), min_size=1, max_size=3))
    count = draw(st.integers(0, 12))
    records = []
    for _ in range(count):
        layout = draw(st.sampled_from(layouts))
        zipped = draw(st.one_of(st.none(), _FILE))
        records.append(
            ShardRecord(
                **layout,
                raw_data=draw(_FILE),
                samples=draw(st.sampled_from([0, 1, 60, 10_000, 2**33])),
                zip_data=zipped,
            )
        )
    return records


_META = st.dictionaries(
    st.sampled_from(["format", "dataset_version", "lineage", "note"]),
    st.one_of(st.integers(0, 9), st.text(max_size=5), st.dictionaries(st.text(max_size=3), st.integers())),
)  # fmt: skip


def _old_fingerprint(records: list[ShardRecord]) -> str:
    """DatasetIndex.fingerprint as it was computed from records (resume states carry it)."""
    content = [(r.raw_data.to_json(), r.samples, list(r.column_names)) for r in records]
    text = json.dumps(content, sort_keys=True).encode("utf-8")
    return hashlib.sha256(text).hexdigest()[:32]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=_records(), meta=_META)
def test_every_field_of_the_index_round_trips(records: list[ShardRecord], meta: Any) -> None:
    index = DatasetIndex(tuple(records), meta)
    data = index.to_json()
    parsed = DatasetIndex.from_json(data, "index.json")
    decoded = decode_columnar(encode_columnar(parsed, data), "x.columnar")
    assert decoded.derived_from(source_digest(data), len(data))
    got = decoded.index
    assert list(got.shards) == records == list(parsed.shards)
    assert dict(got.meta) == dict(parsed.meta)
    assert got.to_json() == data  # byte for byte the same index.json
    assert got.num_samples == sum(r.samples for r in records)
    assert got.fingerprint() == parsed.fingerprint() == _old_fingerprint(records)
    assert np.array_equal(got.table.samples, [r.samples for r in records])
    assert got.table.stored_names() == [r.stored.basename for r in records]
    assert got.table.stored_bytes.tolist() == [r.stored.bytes for r in records]
    again = pickle.loads(pickle.dumps(got))  # what a DataLoader worker receives
    assert list(again.shards) == records and again.fingerprint() == got.fingerprint()


@settings(max_examples=60, deadline=None)
@given(a=_records(), b=_records(), data=st.data())
def test_take_concat_and_slices_match_the_records(
    a: list[ShardRecord], b: list[ShardRecord], data: st.DataObject
) -> None:
    joined = ShardTable.concat([ShardTable.from_records(a), b])
    assert list(joined) == a + b
    assert joined.fingerprint() == _old_fingerprint(a + b)
    rows = data.draw(st.lists(st.integers(0, max(len(a + b) - 1, 0)), max_size=8))
    if a + b:
        assert list(joined.take(rows)) == [(a + b)[i] for i in rows]
        assert list(joined[1::2]) == (a + b)[1::2]
        assert joined[-1] == (a + b)[-1]
    with pytest.raises(IndexError, match="out of range"):
        joined[len(a + b)]


def _sample_file() -> tuple[bytes, bytes]:
    record = ShardRecord(
        ("id",), ("int64",), (8,), "zstd", ("xxh64",),
        FileInfo("data/a.mds", 100, {"xxh64": "00ff00ff00ff00ff"}), 12, 1 << 20,
        FileInfo("data/a.mds.zstd", 40, {"xxh64": "0123456789abcdef"}),
    )  # fmt: skip
    index = DatasetIndex((record, record), {"dataset_version": 3})
    data = index.to_json()
    return data, encode_columnar(index, data)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_flipped_byte_is_detected(data: st.DataObject) -> None:
    _, file = _sample_file()
    at = data.draw(st.integers(0, len(file) - 1))
    damaged = bytearray(file)
    damaged[at] ^= data.draw(st.integers(1, 255))
    with pytest.raises(IndexFormatError, match=r"x\.columnar"):
        decode_columnar(bytes(damaged), "x.columnar")


@pytest.mark.parametrize("cut", [0, 5, 20, -17, -1])
def test_a_truncated_file_is_detected(cut: int) -> None:
    _, file = _sample_file()
    with pytest.raises(IndexFormatError, match="x.columnar"):
        decode_columnar(file[:cut], "x.columnar")


def test_a_newer_format_is_refused_with_its_number() -> None:
    import xxhash

    _, file = _sample_file()
    (size,) = struct.unpack_from("<Q", file, len(MAGIC))
    start = len(MAGIC) + 8
    header = json.loads(file[start : start + size])
    header["format"] = FORMAT + 1
    head = json.dumps(header).encode()
    body = file[start + size : -16]
    rebuilt = MAGIC + struct.pack("<Q", len(head)) + head + body
    rebuilt += xxhash.xxh3_128_digest(rebuilt)
    with pytest.raises(IndexFormatError, match=f"format {FORMAT + 1}"):
        decode_columnar(rebuilt, "x.columnar")


def test_the_digest_names_the_exact_json_bytes() -> None:
    data, file = _sample_file()
    decoded = decode_columnar(file, "x.columnar")
    assert decoded.derived_from(source_digest(data), len(data))
    other = data.replace(b"0123456789abcdef", b"0123456789abcdee")  # same length, other bytes
    assert not decoded.derived_from(source_digest(other), len(other))


def test_a_hundred_thousand_shards_cost_arrays_not_objects() -> None:
    record = ShardRecord(
        ("id",), ("int64",), (8,), None, ("xxh64",),
        FileInfo("data/a.mds", 80_008, {"xxh64": "00ff00ff00ff00ff"}), 10_000, 1 << 26, None,
    )  # fmt: skip
    table = ShardTable.from_records([record]).take(np.zeros(100_000, np.int64))
    index = DatasetIndex(table, {})
    file = encode_columnar(index, b"{}")
    assert len(file) < 2 << 20  # zstd: repeated names and digests cost next to nothing
    decoded = decode_columnar(file, "x").index
    assert decoded.num_samples == 10**9 and decoded.table.used_layouts() == list(table.layouts[:1])
    assert len(pickle.dumps(decoded)) < 8 << 20


def test_the_golden_columnar_file_keeps_loading() -> None:
    # Written once by format 1 from tests/golden/dataset_v1/index.json; a later sparkshard
    # must still decode it to the same index (regenerate only with a new FORMAT).
    from pathlib import Path

    golden = Path(__file__).resolve().parents[2] / "golden"
    data = (golden / "dataset_v1" / "index.json").read_bytes()
    decoded = decode_columnar(
        (golden / "columnar" / "dataset_v1-format1.columnar").read_bytes(), "g"
    )
    assert decoded.derived_from(source_digest(data), len(data))
    assert decoded.index == DatasetIndex.from_json(data, "golden")
    assert decoded.index.to_json() == DatasetIndex.from_json(data, "golden").to_json()
    assert (
        decoded.index.fingerprint() == "d93ea301422402b7cf9c4bd073787621"
    )  # resume states carry it
