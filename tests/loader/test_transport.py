"""Worker batches cross through shared memory: the same values, nothing left behind.

Every column kind a batch can hold reaches the loop equal, value for value and in order,
to what a single process reads, from compressed shards (through the cache) and from raw ones
read in place (whose bytes columns cross by reference: the loop maps the shard files
itself); and however a run ends (done, ``break``, an exception in a
worker, ``kill -9`` of a worker or of the loop's process) nothing is left in /dev/shm and
the next run works.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image

from loader import FieldSpec, StreamingDataLoader, StreamingDataset
from loader.read.rows import Rows
from loader.transport import SlabSet
from sparkshard import ShardWriter

N = 150
EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def _png(i: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (4, 4), i % 250).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module", params=["zstd", None], ids=["zstd", "raw"])
def every_kind(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    ids = np.arange(N, dtype=np.int64)
    table = pa.table(
        {
            "id": ids,
            "f32": pa.array(ids.astype(np.float32) / 7),
            "maybe": pa.array([None if i % 5 == 0 else i * 1.5 for i in range(N)]),
            "never_null": pa.array([float(i) for i in range(N)], pa.float64()).cast(pa.float64()),
            "text": pa.array([None if i % 7 == 0 else f"s{i}é" * (i % 4) for i in range(N)]),
            "blob": pa.array([bytes([i % 256]) * (i % 9) for i in range(N)], pa.binary()),
            "maybe_blob": pa.array(
                [None if i % 4 == 1 else bytes([i % 256]) * (i % 5) for i in range(N)], pa.binary()
            ),
            "ragged": pa.array([[float(j) for j in range(i % 6)] for i in range(N)]),
            "grid": pa.array(
                [np.full((2, 3), i, np.int16).tolist() for i in range(N)],
                pa.list_(pa.list_(pa.int16(), 3), 2),
            ),
            "flag": pa.array([i % 2 == 0 for i in range(N)]),
            "day": pa.array([dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(N)]),
            "when": pa.array(
                [
                    dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=i)
                    for i in range(N)
                ],
                pa.timestamp("us", tz="UTC"),
            ),
            "price": pa.array([Decimal(i) / 4 for i in range(N)], pa.decimal128(8, 2)),
            "img": pa.array([_png(i) for i in range(N)], pa.binary()),
            "meta": pa.array([{"k": i, "tags": ["a"] * (i % 3)} for i in range(N)]),
        }
    )
    path = tmp_path_factory.mktemp("kinds") / "ds"
    with ShardWriter(
        path, columns={"img": "png"}, size_limit=2000, compression=request.param
    ) as writer:
        writer.write_batch(table)
    return path


def _plain(value: Any) -> Any:
    """A value as comparable data: tensors and arrays as lists, images as pixel bytes."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, np.ma.MaskedArray):
        return [None if m else v for v, m in zip(value.data.tolist(), value.mask.tolist())]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "tobytes") and hasattr(value, "mode"):
        return (value.mode, value.size, value.tobytes())
    return value


def _kind(value: Any) -> Any:
    """What a value is, beyond its data: its type, dtype and shape (a list's, per value)."""
    if isinstance(value, list):
        return ("list", tuple(_kind(v) for v in value))
    return (type(value).__name__, str(getattr(value, "dtype", "")), getattr(value, "shape", ()))


def _epoch(path: Path, workers: int, batch: int = 16, **kwargs: Any) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in b.items()} for b in _batches(path, workers, batch, **kwargs)]


def _batches(path: Path, workers: int, batch: int = 16, **kwargs: Any) -> list[dict[str, Any]]:
    ds = StreamingDataset(local=str(path), batch_size=batch, shuffle=True, shuffle_seed=5)
    return list(StreamingDataLoader(ds, batch_size=batch, num_workers=workers, **kwargs))


@pytest.mark.parametrize(("output", "batch"), [("torch", 16), ("numpy", 16), ("torch", 1)])
def test_every_column_kind_crosses_unchanged(every_kind: Path, output: str, batch: int) -> None:
    read = _batches(every_kind, 0, batch, output=output)
    alone = [{k: _plain(v) for k, v in b.items()} for b in read]
    kinds = [{k: _kind(v) for k, v in b.items()} for b in read]
    assert {i for b in alone for i in b["id"]} == set(range(N))  # (the tail may repeat)
    for workers in (1, 2):
        got = _batches(every_kind, workers, batch, output=output)
        assert [{k: _plain(v) for k, v in b.items()} for b in got] == alone, f"{workers} workers"
        for b, kind in zip(got, kinds):
            for k, v in b.items():
                assert _kind(v) == kind[k], (workers, k)


def _mapped_file(view: memoryview) -> str | None:
    """The file mapped where ``view``'s bytes lie in this process (None: anonymous memory)."""
    address = np.frombuffer(view, np.uint8).ctypes.data
    for line in Path("/proc/self/maps").read_text().splitlines():
        span, _, _, _, _, *name = line.split(maxsplit=5)
        low, high = (int(x, 16) for x in span.split("-"))
        if low <= address < high:
            return name[0] if name and name[0].startswith("/") else None
    return None


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_bytes_of_raw_shards_stay_in_their_files(every_kind: Path, workers: int) -> None:
    # Raw shards are read in place: with or without workers a bytes value is a view of the
    # shard file's mapping in the loop's process (never copied through shared memory).
    # Compressed shards are decompressed in the worker: their values arrive in a slab.
    raw = not list(every_kind.glob("**/*.zstd"))
    ds = StreamingDataset(local=str(every_kind), batch_size=16, shuffle=True)
    loader = StreamingDataLoader(ds, batch_size=16, num_workers=workers)
    for batch in loader:
        views = [v for v in batch["blob"] + batch["maybe_blob"] if v is not None and len(v)]
        assert views and all(v.readonly for v in views)
        where = {_mapped_file(v) for v in views}
        if raw:
            assert where and all(w is not None and w.endswith(".mds") for w in where), where
        elif workers:
            assert where == {None} or all(w is None or "memfd" in w for w in where), where


def test_forkserver_workers_deliver_the_same_batches(every_kind: Path) -> None:
    # Workers that receive the slabs, the hash ledger and the dataset pickled (not forked).
    alone = _epoch(every_kind, 0)
    assert _epoch(every_kind, 2, multiprocessing_context="forkserver") == alone


def test_a_batch_finds_no_free_slab_and_arrives_the_same(every_kind: Path) -> None:
    ds = StreamingDataset(local=str(every_kind), batch_size=4)
    batches = [b for _, b in zip(range(3), ds.iter_batches())]
    slabs = SlabSet(1, per_worker=1)
    packed = [slabs.pack(b, 0) for b in batches]  # the loop holds the only slab after one
    assert [p.slab for p in packed] == [0, -1, -1]
    arrived = [slabs.unpack(p) for p in packed]
    assert [{k: _plain(v) for k, v in b.items()} for b in arrived] == [
        {k: _plain(v) for k, v in b.items()} for b in batches
    ]
    assert all(isinstance(v, memoryview) for b in arrived for v in b["blob"] if v is not None)
    slabs.close()


def test_transformed_batches_cross_unchanged(every_kind: Path) -> None:
    fields = [FieldSpec("img", _pixels, per_sample=True), FieldSpec("f32", _double)]
    alone = _epoch_tuples(every_kind, 0, fields=fields, batch_transform=_as_tuple)
    assert _epoch_tuples(every_kind, 2, fields=fields, batch_transform=_as_tuple) == alone


def _pixels(image: Any) -> np.ndarray:
    return np.asarray(image, np.float32) / 255


def _double(column: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(column * 2)


def _as_tuple(batch: dict[str, Any]) -> Any:
    return batch["img"], batch["f32"], batch["text"], batch["id"]


def _epoch_tuples(path: Path, workers: int, **kwargs: Any) -> list[Any]:
    ds = StreamingDataset(local=str(path), batch_size=16, shuffle=True, shuffle_seed=5)
    loader = StreamingDataLoader(ds, batch_size=16, num_workers=workers, **kwargs)
    return [_plain(list(batch)) for batch in loader]


def test_batches_are_writable_zero_copy_views(every_kind: Path) -> None:
    ds = StreamingDataset(local=str(every_kind), batch_size=16)
    loader = StreamingDataLoader(ds, batch_size=16, num_workers=1)
    batch = next(iter(loader))
    batch["f32"] += 1  # in place, as augmentations do: no error, no warning
    assert isinstance(batch["blob"][0], memoryview) and batch["blob"][0].readonly


def _shm() -> set[str]:
    return set(os.listdir("/dev/shm"))


_RUN = """
import multiprocessing, os, signal, sys, time
from loader import FieldSpec, StreamingDataLoader, StreamingDataset

def boom(column):
    raise RuntimeError("transform failed")

how = sys.argv[2]
# batches of one sample: many hand-offs per worker, so workers still have work when killed
ds = StreamingDataset(local=sys.argv[1], batch_size=1, shuffle=True)
fields = [FieldSpec("f32", boom)] if how == "worker-error" else None
loader = StreamingDataLoader(ds, batch_size=1, num_workers=2, fields=fields)
held = []
try:
    for i, batch in enumerate(loader):
        held.append(batch)
        if how == "break" and i == 2:
            break
        if how == "kill-worker" and i == 2:
            os.kill(multiprocessing.active_children()[0].pid, signal.SIGKILL)
        if how == "kill-main" and i == 2:
            print("ready", flush=True)
            time.sleep(60)
except Exception as exc:
    print("raised", type(exc).__name__, flush=True)
print("end", len(held), flush=True)
"""


@pytest.mark.parametrize("how", ["end", "break", "worker-error", "kill-worker", "kill-main"])
def test_no_run_leaves_shared_memory_behind(every_kind: Path, tmp_path: Path, how: str) -> None:
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(_RUN))
    before = _shm()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(every_kind), how],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    if how == "kill-main":
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    if how == "worker-error":
        assert "raised RuntimeError" in out, err
    if how == "kill-worker":
        assert "raised RuntimeError" in out, err  # torch: "worker ... exited unexpectedly"
    deadline = time.monotonic() + 20  # killed workers notice their parent's death
    while _shm() - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _shm() - before == set(), f"left in /dev/shm after {how}"
    again = _epoch(every_kind, 2)  # and nothing blocks the next run
    assert {i for b in again for i in b["id"]} == set(range(N))


@pytest.mark.parametrize("size", [10, 200_000])  # joined into one copy / placed one by one
def test_variable_size_values_arrive_exactly(size: int) -> None:
    rng = np.random.default_rng(size)
    blobs = [rng.bytes(size + i) for i in range(3)] + [None]
    batch = {
        "view": [None if b is None else memoryview(b) for b in blobs],
        "bytes": blobs,
        "text": ["é" * size, None, "", "ab"],
    }
    slabs = SlabSet(1, per_worker=1)
    arrived = slabs.unpack(slabs.pack(batch, 0))
    assert [None if v is None else bytes(v) for v in arrived["view"]] == blobs
    assert all(v.readonly for v in arrived["view"] if v is not None)
    assert arrived["bytes"] == blobs and arrived["text"] == batch["text"]
    slabs.close()


def test_ragged_arrays_arrive_exactly() -> None:
    rng = np.random.default_rng(3)
    joined = [rng.random(n).astype(np.float32) for n in (3, 0, 5)] + [None]  # one buffer
    grids = [np.arange(6 * n, dtype=np.int16).reshape(n, 2, 3) for n in (1, 2, 0)]
    mixed = [np.arange(3, dtype=np.int64), np.ones(2, np.float64), None]  # one by one
    images = [rng.random((n, 120, 120)).astype(np.float32) for n in (1, 2)]  # back to back
    rows = [rng.random(16).astype(np.float32) for _ in range(5)]  # one shape: stacked
    batch = {
        "joined": joined,
        "grids": grids,
        "mixed": mixed,
        "images": [None, *images],
        "rows": rows,
    }
    slabs = SlabSet(1, per_worker=1)
    arrived = slabs.unpack(slabs.pack(batch, 0))
    for name, sent in batch.items():
        got = arrived[name]
        assert len(got) == len(sent), name
        for a, b in zip(got, sent):
            assert (a is None) == (b is None), name
            if b is not None:
                assert a.dtype == b.dtype and a.shape == b.shape and (a == b).all(), name
    arrived["joined"][0][0] = 7  # writable, and a value of its own row only
    assert arrived["joined"][0][0] == 7 and arrived["joined"][2][0] == joined[2][0]
    arrived["rows"][0][-1] = 7
    assert arrived["rows"][0][-1] == 7 and arrived["rows"][1][0] == rows[1][0]
    slabs.close()


def test_a_matrix_of_rows_crosses_as_one_array_unless_a_transform_changed_it() -> None:
    matrix = np.arange(5 * 4, dtype=np.float32).reshape(5, 4)
    slabs = SlabSet(1, per_worker=2)
    packed = slabs.pack({"x": Rows(matrix)}, 0)
    assert packed.tree[1][0][1][0] == "rows"  # one array, not five values checked one by one
    arrived = slabs.unpack(packed)["x"]
    assert isinstance(arrived, Rows) and arrived.intact()  # the same type as 0 workers
    assert np.array_equal(arrived.matrix, matrix) and [r.tolist() for r in arrived] == [
        r.tolist() for r in matrix
    ]
    changed = Rows(matrix)
    changed[2] = np.full(4, -1, np.float32)  # a transform replaced one row
    changed.append(np.zeros(4, np.float32))  # and added one
    arrived = slabs.unpack(slabs.pack({"x": changed}, 0))["x"]
    assert [r.tolist() for r in arrived] == [r.tolist() for r in changed]
    slabs.close()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_every_column_kind_reaches_the_gpu_unchanged(every_kind: Path) -> None:
    # Slab views pinned and copied on a side stream: the values on the device equal what a
    # single process reads on the host, and the kinds that are no tensors stay as they are.
    alone = _batches(every_kind, 0)
    got = _batches(every_kind, 2, device="cuda", prefetch_to_device=2)
    assert len(got) == len(alone)
    for host, device in zip(alone, got):
        assert host.keys() == device.keys()
        for k, v in host.items():
            if isinstance(v, torch.Tensor):
                assert device[k].device.type == "cuda" and device[k].dtype == v.dtype, k
            else:
                assert _kind(device[k]) == _kind(v), k
            assert _plain(device[k]) == _plain(v), k
