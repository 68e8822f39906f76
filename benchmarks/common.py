"""Shared helpers for the side-by-side benchmarks (stable API, importable by both venvs).

This module must import in the main venv AND in the Mosaic peer venv (numpy 2.1): it
depends only on the standard library, numpy and pyarrow, never on sparkshard, loader,
torch or streaming.

Public API:

- ``REPO_ROOT``, ``output_dir(name)``: where benchmark data goes (``bench-output/``).
- ``main_python()``, ``mosaic_python()``: interpreters of the two environments.
- ``Stopwatch``: ``with Stopwatch() as sw: ...; sw.seconds``.
- ``peak_rss_mib()``: peak resident memory of the current process so far.
- ``run_child(argv, ...)``: run a subprocess, return its JSON result (last stdout line),
  its wall time and its own peak RSS (from ``os.wait4``).
- ``emit_result(obj)``: print a child's JSON result as its last stdout line.
- ``workload(name)`` / ``workload_w1()``, ``workload_w2()``, ``workload_w3()``:
  synthetic pyarrow Tables with a fixed seed; ``write_parquet(table, path)``.
- ``Ratio`` and ``print_ratios(title, rows)``: the printed comparison table.
- ``machine_note()``: CPUs and load average, printed with results (shared machines are noisy).
- ``spark_session()``: the one Spark session of the Spark benchmarks (both venvs).
- ``drain(loader, max_seconds)``: the one timed epoch loop of the loader benchmarks;
  ``peer_epoch_main(argv, epoch)``: the command line of a peer's epoch child.
- ``mosaic_first_batch(ds, batch, at)``: Mosaic's start-up up to its first batch.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO_ROOT = Path(__file__).resolve().parent.parent
SEED = 20240611

__all__ = [
    "REPO_ROOT",
    "SEED",
    "ChildResult",
    "Ratio",
    "Stopwatch",
    "decode_image",
    "drain",
    "emit_result",
    "litdata_python",
    "machine_note",
    "main_python",
    "mosaic_python",
    "output_dir",
    "peak_rss_mib",
    "peer_epoch_main",
    "print_ratios",
    "run_child",
    "shared_memory_bytes",
    "spark_session",
    "workload",
    "workload_jpeg",
    "workload_w1",
    "workload_w2",
    "workload_w3",
    "write_parquet",
]


def output_dir(name: str) -> Path:
    """Return (and create) ``bench-output/<name>`` under the repository root."""
    path = REPO_ROOT / "bench-output" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def main_python() -> Path:
    """The main venv's interpreter (falls back to the running one)."""
    path = REPO_ROOT / ".venv" / "bin" / "python"
    return path if path.exists() else Path(sys.executable)


def litdata_python() -> Path | None:
    """The LitData peer venv's interpreter (``make bench`` builds it), or None."""
    path = REPO_ROOT / ".venv-litdata" / "bin" / "python"
    return path if path.exists() else None


def mosaic_python() -> Path | None:
    """The Mosaic peer venv's interpreter, or None when it has not been built."""
    path = REPO_ROOT / ".venv-mosaic" / "bin" / "python"
    return path if path.exists() else None


class Stopwatch:
    """Wall-clock timer: ``with Stopwatch() as sw: work(); print(sw.seconds)``."""

    def __init__(self) -> None:
        self.start = 0.0
        self.seconds = 0.0

    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.seconds = time.perf_counter() - self.start


def _maxrss_to_mib(maxrss: int) -> float:
    # Linux reports ru_maxrss in KiB, macOS in bytes.
    return maxrss / (1 << 20) if sys.platform == "darwin" else maxrss / 1024


def peak_rss_mib() -> float:
    """Peak resident set size of the current process so far, in MiB.

    On Linux this is ``VmHWM`` of ``/proc/self/status``: ``ru_maxrss`` survives ``exec``,
    so a child started from a big parent would report the parent's peak instead of its own.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return _maxrss_to_mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


@dataclass(frozen=True)
class ChildResult:
    """What ``run_child`` returns: the child's JSON result, wall time and peak RSS (MiB)."""

    result: dict[str, Any]
    seconds: float
    peak_rss_mib: float


def emit_result(obj: dict[str, Any]) -> None:
    """Print ``obj`` as the last stdout line of a child process (read by ``run_child``).

    Adds ``"peak_rss_mib"`` (the child's own peak so far) unless ``obj`` already has it.
    """
    print(json.dumps({"peak_rss_mib": peak_rss_mib(), **obj}), flush=True)


def run_child(
    argv: list[str | os.PathLike[str]],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 900.0,
) -> ChildResult:
    """Run ``argv`` in ``REPO_ROOT``; return its last stdout line parsed as JSON.

    The peak RSS is the ``"peak_rss_mib"`` the child reported through ``emit_result``
    (its own), else ``os.wait4``'s, which may include this parent's peak (see
    ``peak_rss_mib``). Stderr passes through. Raises ``RuntimeError`` with the child's
    output on failure.
    """
    # The repository first, then the caller's own path (gpu_check.sh puts the wheels the
    # device machine lacks there): a child sees what its parent sees.
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    full_env = {**os.environ, "PYTHONPATH": path, **(env or {})}
    with tempfile.TemporaryFile("w+") as out_file:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [os.fspath(a) for a in argv], cwd=REPO_ROOT, env=full_env, stdout=out_file
        )
        status, usage = _wait4(proc, timeout)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out_file.seek(0)
        out = out_file.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} failed with exit code {proc.returncode}:\n{out[-4000:]}")
    lines = [line for line in out.splitlines() if line.strip()]
    if not lines:
        raise RuntimeError(f"{argv} printed no result")
    result = json.loads(lines[-1])
    peak = float(result.get("peak_rss_mib", _maxrss_to_mib(usage.ru_maxrss)))
    return ChildResult(result, seconds, peak)


def spark_session(app: str = "sparkshard-bench", driver_memory: str = "6g") -> Any:
    """The benchmarks' Spark session, the same in both venvs: ``local[2]``, quiet, no UI."""
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .appName(app)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", driver_memory)
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def drain(loader: Any, max_seconds: float | None = None, key: str = "id") -> dict[str, Any]:
    """Iterate ``loader`` (ours or a peer's) for one epoch, or until ``max_seconds`` passed;
    ``{"samples", "seconds", "first_batch"}`` delivered (seconds from the start of the
    iteration). The one epoch loop every loader benchmark times."""
    samples, first, began = 0, None, time.perf_counter()
    for batch in loader:
        if first is None:
            first = time.perf_counter() - began
        samples += len(batch[key])
        if max_seconds is not None and time.perf_counter() - began > max_seconds:
            break
    return {"samples": samples, "seconds": time.perf_counter() - began, "first_batch": first}


def peer_epoch_main(argv: list[str], epoch: Callable[[str, int, float], dict[str, Any]]) -> None:
    """The command line of a peer's epoch child: ``epoch PATH --workers W --max-seconds S``;
    prints ``epoch(PATH, W, S)`` as the child's result."""
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["epoch"])
    parser.add_argument("path")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=30.0)
    a = parser.parse_args(argv)
    emit_result(epoch(a.path, a.workers, a.max_seconds))


def mosaic_first_batch(ds: Any, batch_size: int, sample_in_epoch: int | None) -> None:
    """Mosaic's StreamingDataLoader over ``ds`` (in the peer venv), resumed at
    ``sample_in_epoch`` of epoch 0 if given, up to its first batch: Mosaic's start-up."""
    from streaming import StreamingDataLoader

    loader = StreamingDataLoader(ds, batch_size=batch_size, num_workers=0)
    if sample_in_epoch is not None:
        state = {
            "epoch": 0,
            "sample_in_epoch": sample_in_epoch,
            "num_canonical_nodes": 1,
            "shuffle_seed": ds.shuffle_seed,
            "initial_physical_nodes": 1,
        }
        loader.load_state_dict(state)
    next(iter(loader))


def _wait4(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, resource.struct_rusage]:
    """Reap ``proc`` with its own rusage; kill it past ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            return status, usage
        if time.monotonic() > deadline:
            proc.kill()
            os.wait4(proc.pid, 0)
            raise TimeoutError(f"{proc.args} ran past {timeout:.0f} s")
        time.sleep(0.02)


def workload_w1(rows: int = 2_000_000, seed: int = SEED) -> pa.Table:
    """W1: ``{id int64, label int32, x fixed_size_list<float32, 16>}`` (small numeric rows)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 16), dtype=np.float32)
    return pa.table(
        {
            "id": pa.array(np.arange(rows, dtype=np.int64)),
            "label": pa.array(rng.integers(0, 1000, rows, dtype=np.int32)),
            "x": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 16),
        }
    )


def workload_w2(rows: int = 60_000, seed: int = SEED) -> pa.Table:
    """W2: ``{id int64, label int32, image binary}`` with 784 random bytes (MNIST-sized)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (rows, 784), dtype=np.uint8)
    offsets = np.arange(0, rows * 784 + 1, 784, dtype=np.int32)
    image = pa.BinaryArray.from_buffers(
        pa.binary(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(pixels.tobytes())]
    )
    return pa.table(
        {
            "id": pa.array(np.arange(rows, dtype=np.int64)),
            "label": pa.array(rng.integers(0, 10, rows, dtype=np.int32)),
            "image": image,
        }
    )


def workload_w3(rows: int = 4_000, seed: int = SEED) -> pa.Table:
    """W3: ``{id int64, blob binary}`` with 256 KiB per row, half random, half zeros."""
    rng = np.random.default_rng(seed)
    half = 128 * 1024
    blobs = [rng.bytes(half) + bytes(half) for _ in range(rows)]
    return pa.table(
        {
            "id": pa.array(np.arange(rows, dtype=np.int64)),
            "blob": pa.array(blobs, type=pa.large_binary()),
        }
    )


def workload_jpeg(rows: int = 3_000, seed: int = SEED) -> pa.Table:
    """JPEG: ``{id int64, label int32, image binary}``: 256x256 RGB JPEGs (quality 90) of
    smooth random images, about 20 KB each; decoded per sample by :func:`decode_image`."""
    import io

    from PIL import Image

    rng = np.random.default_rng(seed)
    images = []
    for _ in range(rows):
        small = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)  # upscaled: JPEG-friendly
        picture = Image.fromarray(small).resize((256, 256), Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=90)
        images.append(buffer.getvalue())
    return pa.table(
        {
            "id": pa.array(np.arange(rows, dtype=np.int64)),
            "label": pa.array(rng.integers(0, 1000, rows, dtype=np.int32)),
            "image": pa.array(images, pa.binary()),
        }
    )


_MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(3, 1, 1)
_STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1)


def decode_image(value: Any) -> np.ndarray:
    """The per-sample work of the JPEG workload, the same for every loader: decode, centre
    crop to 224x224, scale and normalise to a ``(3, 224, 224)`` float32 array."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(value)) as picture:
        rgb = np.asarray(picture.convert("RGB"))
    crop = rgb[16:240, 16:240].transpose(2, 0, 1).astype(np.float32) / 255.0
    return (crop - _MEAN) / _STD


def _proc_number(path: str, field: str) -> int | None:
    """The number after ``field`` on its line of a /proc table (``/proc/vmstat``,
    ``/proc/meminfo``), None where the file or the field is missing."""
    try:
        with open(path, encoding="ascii") as table:
            for line in table:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def huge_page_faults() -> int | None:
    """Transparent huge pages the kernel has faulted in since boot (``thp_fault_alloc`` in
    /proc/vmstat; system-wide, so meaningful with nothing else running), None where the
    kernel does not count them. On this VM a fresh huge page sometimes takes far longer to
    fault in than usual; a run's count says how many it met."""
    return _proc_number("/proc/vmstat", "thp_fault_alloc ")


def shared_memory_bytes() -> int:
    """Bytes of shared memory the system holds now (``Shmem`` in /proc/meminfo): /dev/shm,
    memfd and other tmpfs pages; sampled to report what a run's transport used."""
    kib = _proc_number("/proc/meminfo", "Shmem:")
    return 0 if kib is None else kib * 1024


_WORKLOADS = {"w1": workload_w1, "w2": workload_w2, "w3": workload_w3, "jpeg": workload_jpeg}


def workload(name: str, rows: int | None = None) -> pa.Table:
    """Build workload ``name`` (``"w1"``, ``"w2"``, ``"w3"``, ``"jpeg"``), optionally with
    fewer rows."""
    builder = _WORKLOADS[name.lower()]
    return builder() if rows is None else builder(rows)


def write_parquet(table: pa.Table, path: Path) -> Path:
    """Write ``table`` uncompressed (fast to read back) and return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="none")
    return path


@dataclass(frozen=True)
class Ratio:
    """One line of a comparison: ``ours / theirs`` (or inverted when lower is better)."""

    metric: str
    ours: float
    theirs: float
    unit: str
    higher_is_better: bool = True
    note: str = ""

    @property
    def ratio(self) -> float:
        if self.ours <= 0 or self.theirs <= 0:
            return float("nan")
        return self.ours / self.theirs if self.higher_is_better else self.theirs / self.ours


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def print_ratios(title: str, rows: list[Ratio], *, theirs_name: str = "mosaic") -> None:
    """Print a fixed-width table; ``ratio`` is always "times better than theirs"."""
    header = ("metric", "ours", theirs_name, "unit", "ratio", "note")
    cells = [
        (r.metric, _fmt(r.ours), _fmt(r.theirs), r.unit, f"{r.ratio:.1f}x", r.note) for r in rows
    ]
    widths = [max(len(str(c[i])) for c in [header, *cells]) for i in range(len(header))]
    print(f"\n== {title} ==")
    for line in [header, *cells]:
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    sys.stdout.flush()


def machine_note() -> str:
    """One line on the machine: CPU count and load average (a busy machine skews rates)."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"machine: {os.cpu_count()} CPUs, load average {load} (1/5/15 min)"
