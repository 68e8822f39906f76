"""Loader statistics: what a training loop got from its loader, ready to print or log.

A :class:`StatsRecorder` lives in the training loop's process and records, per delivered
batch, how long the loop waited for it (from asking for the batch to receiving it) and the
I/O the workers reported with it. :meth:`StatsRecorder.snapshot` returns a frozen
:class:`LoaderStats`; ``str()`` of it is one line, :meth:`LoaderStats.as_dict` suits loggers
(TensorBoard, MLflow, W&B).

The wait percentiles are over the most recent ``window`` steps, so memory stays bounded on
runs of any length; the totals cover everything from the recorder's creation (the start of
the epoch) to :meth:`StatsRecorder.finish` (its end) or to now.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["LoaderStats", "StatsRecorder", "percentile"]

IO_KEYS = ("bytes_read", "bytes_downloaded")


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``, linear interpolation; 0.0 when empty."""
    if not 0 <= q <= 100:
        raise ValueError(f"a percentile lies in [0, 100], got {q}")
    array = np.fromiter(values, np.float64)
    return float(np.percentile(array, q)) if len(array) else 0.0


@dataclass(frozen=True)
class LoaderStats:
    """Where a loader's time and bytes went, since the epoch (``iter()``) began.

    ``wait_*`` are the seconds the training loop spent waiting for a batch; the first step's
    wait includes starting the workers. ``bytes_read`` counts shard bytes decoded (cache
    hits included), ``bytes_downloaded`` bytes fetched from remote storage; both are None
    when the dataset does not report I/O.
    """

    steps: int
    samples: int
    seconds: float
    wait_seconds: float
    wait_p50: float
    wait_p99: float
    bytes_read: int | None
    bytes_downloaded: int | None

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0

    @property
    def wait_fraction(self) -> float:
        """Share of the elapsed time the loop spent waiting for data (0..1)."""
        return min(self.wait_seconds / self.seconds, 1.0) if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, float | int | None]:
        """Flat numbers for a metrics logger (derived rates included)."""
        return {
            **asdict(self),
            "samples_per_s": self.samples_per_s,
            "wait_fraction": self.wait_fraction,
        }

    def __str__(self) -> str:
        io = (
            "I/O not reported"
            if self.bytes_read is None
            else f"read {_size(self.bytes_read)}, downloaded {_size(self.bytes_downloaded or 0)}"
        )
        return (
            f"{self.steps} steps, {self.samples:,} samples in {self.seconds:.2f} s "
            f"({self.samples_per_s:,.0f} samples/s); waited for data "
            f"p50 {self.wait_p50 * 1e3:.2f} ms, p99 {self.wait_p99 * 1e3:.2f} ms "
            f"({self.wait_fraction:.1%} of the time); {io}"
        )


def _size(num_bytes: int) -> str:
    value = float(num_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


class StatsRecorder:
    """Collects per-step waits and reported I/O in the loop's process (not thread-safe)."""

    def __init__(self, window: int = 10_000, clock: Callable[[], float] | None = None) -> None:
        if window < 1:
            raise ValueError(f"window must hold at least 1 step, got {window}")
        self._clock = clock or time.perf_counter
        self._began = self._clock()
        self._ended: float | None = None
        self._waits: deque[float] = deque(maxlen=window)
        self._wait_total = 0.0
        self._steps = 0
        self._samples = 0
        self._io: dict[str, int] | None = None

    def now(self) -> float:
        return self._clock()

    def record(self, wait: float, samples: int, io: Mapping[str, int] | None = None) -> None:
        """One delivered batch of ``samples`` after ``wait`` seconds; ``io`` is a delta."""
        self._waits.append(wait)
        self._wait_total += wait
        self._steps += 1
        self._samples += samples
        self.add_io(io)

    def add_io(self, io: Mapping[str, int] | None) -> None:
        """Add an I/O delta (``bytes_read``, ``bytes_downloaded``) reported by a worker."""
        if io is None:
            return
        if self._io is None:
            self._io = dict.fromkeys(IO_KEYS, 0)
        for key in IO_KEYS:
            self._io[key] += int(io.get(key, 0))

    def finish(self) -> None:
        """The epoch is over (or abandoned): stop the clock, so rates stay as they were."""
        if self._ended is None:
            self._ended = self._clock()

    def snapshot(self) -> LoaderStats:
        io = self._io
        end = self._clock() if self._ended is None else self._ended
        return LoaderStats(
            steps=self._steps,
            samples=self._samples,
            seconds=end - self._began,
            wait_seconds=self._wait_total,
            wait_p50=percentile(self._waits, 50),
            wait_p99=percentile(self._waits, 99),
            bytes_read=None if io is None else io["bytes_read"],
            bytes_downloaded=None if io is None else io["bytes_downloaded"],
        )
