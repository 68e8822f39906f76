"""``make demo`` (``python -m demo``): the whole mission end to end on real data, on 2 cores.

1. Local Spark builds a DataFrame from scikit-learn's digits (1,797 real 8x8 images that
   ship with the package) and ``sparkshard.dataframe_to_shards`` writes train and held-out
   shards to ./demo-output.
2. A training process trains a small CNN with StreamingDataLoader (shuffle on, 2 workers),
   checkpoints mid-epoch, and is killed (SIGKILL) a few steps later.
3. A fresh process rebuilds model, optimizer and loader from the checkpoint file and
   finishes the run.
4. Proof of the exact resume: the ids trained before the checkpoint plus those trained after
   the resume equal the uninterrupted order, batch for batch.
5. Held-out accuracy (expected >= 95%).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

PASS_ACCURACY = 0.95
BATCH_SIZE = 32


def _heading(text: str) -> None:
    print(f"\n{text}", flush=True)


def write_shards(spark: Any, data: Path) -> None:
    from demo.digits import write_digits

    for split, info in write_digits(spark, data).items():
        print(
            f"      {split}: {info.num_samples} samples in {info.num_shards} shards "
            f"({info.bytes / 1024:.0f} KiB zstd), version {info.version}"
        )


def train(data: Path, work: Path, run: str, epochs: int, *extra: str) -> int:
    """Run demo.training in a child process; return its exit code (-9 when killed)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).parent.parent), env.get("PYTHONPATH", "")]
    )
    argv = [sys.executable, "-m", "demo.training", "--data", str(data), "--work", str(work)]
    argv += ["--run", run, "--epochs", str(epochs), "--batch-size", str(BATCH_SIZE), *extra]
    return subprocess.run(argv, env=env, check=False).returncode


def uninterrupted_order(data: Path, epochs: int, batch_size: int) -> list[list[int]]:
    """The batches' ids of the whole run without a crash (same dataset settings, no workers:
    the order does not depend on the worker count)."""
    from demo.training import SEED
    from loader import StreamingDataLoader, StreamingDataset

    dataset = StreamingDataset(
        local=str(data / "train"), batch_size=batch_size, shuffle=True, shuffle_seed=SEED
    )
    loader = StreamingDataLoader(dataset, batch_size=batch_size, output="numpy")
    return [batch["id"].tolist() for _ in range(epochs) for batch in loader]


def _read_ids(path: Path) -> list[list[int]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass(frozen=True)
class ResumeCheck:
    """Steps trained by the killed run, kept by its checkpoint, and trained after resuming."""

    first: int
    kept: int
    resumed: int
    expected: int
    exact: bool


def crash_and_resume(
    data: Path, work: Path, epochs: int, checkpoint_at: str, crash_at: str
) -> ResumeCheck:
    """Steps 2-4: train until the simulated crash, resume, compare with the full order."""
    _heading(f"[2/5] training a small CNN, shuffled, 2 workers; checkpoint at epoch:step "
             f"{checkpoint_at}, crash at {crash_at}")  # fmt: skip
    cut = ["--checkpoint-at", checkpoint_at, "--crash-at", crash_at]
    code = train(data, work, "first", epochs, *cut)
    print(f"      the training process died with exit code {code} (SIGKILL is -9)")
    if code != -signal.SIGKILL:
        raise RuntimeError(f"expected the simulated crash (exit code -9), got {code}")

    _heading("[3/5] a fresh process rebuilds model, optimizer and loader from the checkpoint")
    code = train(data, work, "resumed", epochs, "--resume")
    if code != 0:
        raise RuntimeError(f"the resumed training failed with exit code {code}")

    _heading("[4/5] exact resume: trained ids vs the uninterrupted order")
    kept = torch.load(work / "checkpoint.pt", weights_only=True)["global_step"]
    first, resumed = _read_ids(work / "ids-first.jsonl"), _read_ids(work / "ids-resumed.jsonl")
    expected = uninterrupted_order(data, epochs, BATCH_SIZE)
    check = ResumeCheck(
        len(first), kept, len(resumed), len(expected), first[:kept] + resumed == expected
    )
    print(
        f"      the killed run trained {check.first} steps, its checkpoint kept {kept} "
        f"({check.first - kept} were redone); the resumed run trained {check.resumed}"
    )
    print(f"      {kept} + {check.resumed} steps == the uninterrupted {check.expected}, "
          f"batch for batch: {check.exact}")  # fmt: skip
    return check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="demo-output", help="output folder")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--checkpoint-at", default="1:20", help="EPOCH:STEP to checkpoint at")
    parser.add_argument("--crash-at", default="1:30", help="EPOCH:STEP to kill the run at")
    args = parser.parse_args(argv)
    from demo.digits import local_spark

    out = Path(args.out)
    data, work = out / "digits", out / "run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    began = time.perf_counter()

    _heading(f"[1/5] local Spark: scikit-learn digits -> DataFrame -> shards in {data}")
    spark = local_spark()
    try:
        write_shards(spark, data)
    finally:
        spark.stop()
    print(f"      Spark start-up and both writes: {time.perf_counter() - began:.0f} s", flush=True)
    check = crash_and_resume(data, work, args.epochs, args.checkpoint_at, args.crash_at)
    accuracy = json.loads((work / "result.json").read_text())["accuracy"]
    _heading(f"[5/5] held-out accuracy: {accuracy:.2%} (pass mark {PASS_ACCURACY:.0%})")
    ok = check.exact and accuracy >= PASS_ACCURACY
    print(f"\n{'done' if ok else 'FAILED'} in {time.perf_counter() - began:.0f} s; shards in "
          f"{data}, checkpoint and logs in {work}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
