"""Real processes: torch.distributed (gloo) ranks with DataLoader workers, and TorchDistributor."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from dist_job import OPTIONS
from simulate import global_steps

JOB = Path(__file__).with_name("dist_job.py")
N = 1000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launch(nodes: int, per_node: int, out: Path, *args: str) -> list[list[list[int]]]:
    """Start ``nodes x per_node`` ranks like torchrun would; return each rank's batches."""
    world, port = nodes * per_node, _free_port()
    procs = []
    for rank in range(world):
        env = {
            **os.environ,
            "RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_RANK": str(rank % per_node),
            "LOCAL_WORLD_SIZE": str(per_node),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
        cmd = [sys.executable, str(JOB), "--out", str(out), *args]
        procs.append(subprocess.Popen(cmd, env=env))
    codes = [p.wait(timeout=180) for p in procs]
    assert codes == [0] * world
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(world)]


def _steps(ranks: list[list[list[int]]]) -> list[list[int]]:
    lengths = {len(r) for r in ranks}
    assert len(lengths) == 1, f"ranks took different numbers of steps: {lengths}"
    return [[i for r in ranks for i in r[t]] for t in range(lengths.pop())]


@pytest.mark.slow
def test_gloo_checkpoint_and_resume_on_more_ranks(small_dataset: Path, tmp_path: Path) -> None:
    data = ["--data", str(small_dataset)]
    first = _steps(_launch(2, 1, tmp_path / "a", *data, "--batch-size", "20", "--stop-after", "5"))
    state = tmp_path / "a" / "state.json"
    assert json.loads(state.read_text())["sample_in_epoch"] == 5 * 40
    # Resume on 2 nodes x 2 ranks with the same global batch (40): the rest of the run.
    rest = _steps(_launch(2, 2, tmp_path / "b", *data, "--batch-size", "10", "--state", str(state)))
    uninterrupted = global_steps(small_dataset, 2, 1, 2, batch_size=20, **OPTIONS)
    assert [sorted(s) for s in first + rest] == [sorted(s) for s in uninterrupted]
    seen = Counter(i for s in first + rest for i in s)
    assert set(seen) == set(range(N)) and sum(seen.values()) == 25 * 40


@pytest.mark.spark
@pytest.mark.slow
# TorchDistributor leaves the launcher's output pipe open (pyspark's code, not ours).
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_torch_distributor_ranks_read_every_sample_once(
    spark: Any, small_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dist_job
    from pyspark.ml.torch.distributor import TorchDistributor

    here = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]))
    TorchDistributor(num_processes=2, local_mode=True, use_gpu=False).run(
        dist_job.distributor_main, str(small_dataset), str(tmp_path)
    )
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    steps = _steps(ranks)
    assert len(steps) == -(-N // 32)
    ids = [i for s in steps for i in s]
    # 2 ranks, batch 32: 15 steps of 64, then 40 left, 20 per rank: no padding needed.
    assert sorted(ids) == list(range(N))
