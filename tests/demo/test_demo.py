"""`make demo`'s steps on the shared Spark session: shards from Spark, a killed training
process, an exact resume from its checkpoint file, a trained model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from demo.__main__ import crash_and_resume, write_shards
from loader import DatasetReader

STEPS_PER_EPOCH = 45  # 1,437 training digits in batches of 32, the last one partial


@pytest.mark.spark
@pytest.mark.slow
def test_demo_resumes_exactly_after_a_kill(spark: Any, tmp_path: Path) -> None:
    data, work = tmp_path / "digits", tmp_path / "run"
    work.mkdir()
    write_shards(spark, data)
    train, test = DatasetReader(data / "train"), DatasetReader(data / "test")
    assert (len(train), len(test)) == (1437, 360)
    assert test.get_batch([0])["image"].shape == (1, 8, 8)

    check = crash_and_resume(data, work, epochs=2, checkpoint_at="0:10", crash_at="1:5")
    assert check.exact
    assert (check.first, check.kept) == (STEPS_PER_EPOCH + 5, 10)
    assert check.resumed == check.expected - 10 == 2 * STEPS_PER_EPOCH - 10
    # Two epochs are enough to be far better than chance (the demo's four reach >= 95%).
    assert json.loads((work / "result.json").read_text())["accuracy"] >= 0.9
