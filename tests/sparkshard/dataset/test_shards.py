"""The one decompress-and-check path: the raw hash is checked as the shard is written."""

from __future__ import annotations

import io

import pytest
import xxhash
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from sparkshard.dataset.shards import decompress_into
from sparkshard.errors import CorruptShardError
from sparkshard.format.index import FileInfo, ShardRecord


def _record(raw: bytes, stored: bytes, raw_hash: str) -> ShardRecord:
    return ShardRecord(
        column_names=("x",),
        column_encodings=("bytes",),
        column_sizes=(None,),
        compression="zstd:3",
        hashes=("xxh3_64",),
        raw_data=FileInfo("shard.00000.mds", len(raw), {"xxh3_64": raw_hash}),
        samples=1,
        size_limit=None,
        zip_data=FileInfo("shard.00000.mds.zstd", len(stored), {}),
    )


@settings(max_examples=30, deadline=None)
@given(raw=st.binary(min_size=1, max_size=3 << 20), flip=st.integers(min_value=0))
def test_decompressed_bytes_are_checked_against_the_raw_hash(raw: bytes, flip: int) -> None:
    stored = zstandard.ZstdCompressor().compress(raw)
    good = _record(raw, stored, xxhash.xxh3_64_hexdigest(raw))
    out = io.BytesIO()
    decompress_into(good, stored, out, "shard x", verify=True)
    assert out.getvalue() == raw

    damaged = bytearray(raw)
    damaged[flip % len(raw)] ^= 0x01  # the index describes other bytes of the same size
    wrong = _record(raw, stored, xxhash.xxh3_64_hexdigest(bytes(damaged)))
    with pytest.raises(CorruptShardError, match="shard x decompresses to data that fails its"):
        decompress_into(wrong, stored, io.BytesIO(), "shard x", verify=True)
    decompress_into(wrong, stored, io.BytesIO(), "shard x", verify=False)  # the opt-out
