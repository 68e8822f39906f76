"""Loader statistics: percentiles, a deterministic recorder, the printed line."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loader.stats import StatsRecorder, percentile

floats = st.floats(0, 1e3, allow_nan=False)


@given(st.lists(floats, min_size=1, max_size=50), st.floats(0, 100), st.floats(0, 100))
def test_percentile_is_monotone_and_bounded(values: list[float], q1: float, q2: float) -> None:
    low, high = sorted((q1, q2))
    assert min(values) <= percentile(values, low) <= percentile(values, high) <= max(values)


def test_percentile_values_and_errors() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(range(101), 99) == 99.0
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        percentile([1.0], 101)


def test_recorder_with_a_fake_clock() -> None:
    ticks = iter([0.0, 10.0, 99.0])
    recorder = StatsRecorder(window=3, clock=lambda: next(ticks))
    for wait in (0.5, 0.1, 0.2, 0.3):
        recorder.record(wait, samples=32, io={"bytes_read": 100})
    recorder.add_io({"bytes_downloaded": 7})
    recorder.finish()  # reads the clock once (10.0); snapshots after it do not
    stats = recorder.snapshot()
    assert recorder.snapshot() == stats
    assert (stats.steps, stats.samples, stats.seconds) == (4, 128, 10.0)
    assert stats.wait_seconds == pytest.approx(1.1) and stats.wait_fraction == pytest.approx(0.11)
    assert stats.wait_p50 == pytest.approx(0.2)  # the window keeps the last 3 waits
    assert stats.wait_p99 == pytest.approx(np.percentile([0.1, 0.2, 0.3], 99))
    assert (stats.bytes_read, stats.bytes_downloaded, stats.samples_per_s) == (400, 7, 12.8)
    line = str(stats)
    assert "128 samples in 10.00 s (13 samples/s)" in line and "read 400 B" in line
    assert "p50 200.00 ms" in line and "(11.0% of the time)" in line


def test_io_is_none_until_reported() -> None:
    stats = StatsRecorder().snapshot()
    assert stats.bytes_read is None and "I/O not reported" in str(stats)
    with pytest.raises(ValueError, match="window"):
        StatsRecorder(window=0)
