"""The hash ledger: a shard is checked once by all the processes that share it.

Processes here are forked like DataLoader workers (and one is spawned); each check appends
the shard's number to a log file, so the log says who checked what, and how often.
"""

from __future__ import annotations

import multiprocessing
import operator
import os
import pickle
import random
import signal
import time
from pathlib import Path

import pytest

from loader.read.ledger import HashLedger

FORK = multiprocessing.get_context("fork")


def _logging_check(log: Path, pause: float = 0.0):  # type: ignore[no-untyped-def]
    def check(i: int) -> None:
        time.sleep(pause)  # a check takes a while: the others need the shard meanwhile
        with open(log, "a") as f:
            f.write(f"{i}\n")

    return check


def _checked(log: Path) -> list[int]:
    return sorted(int(line) for line in log.read_text().split()) if log.exists() else []


def _verify_all(ledger: HashLedger, shards: list[int], log: Path, seed: int) -> None:
    order = list(shards)
    random.Random(seed).shuffle(order)
    ledger.verify(order, _logging_check(log, pause=0.002))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_shard_is_checked_once_by_all_processes(tmp_path: Path, seed: int) -> None:
    ledger, log, shards = HashLedger(40), tmp_path / "log", list(range(40))
    ledger.verify([3, 7], _logging_check(log))  # the parent read two shards first
    workers = [
        FORK.Process(target=_verify_all, args=(ledger, shards, log, seed + k)) for k in range(3)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
        assert w.exitcode == 0
    assert _checked(log) == shards  # each exactly once, whoever got there first
    assert all(ledger.checked(i) for i in shards)
    ledger.verify(shards, _logging_check(log))  # a later epoch's worker: nothing to redo
    assert _checked(log) == shards


def _hang_in_check(ledger: HashLedger, ready: Path) -> None:
    def check(i: int) -> None:
        ready.touch()
        time.sleep(600)

    ledger.verify([0], check)


def test_a_process_killed_mid_check_lets_the_others_check(tmp_path: Path) -> None:
    ledger, log, ready = HashLedger(2), tmp_path / "log", tmp_path / "ready"
    stuck = FORK.Process(target=_hang_in_check, args=(ledger, ready))
    stuck.start()
    deadline = time.monotonic() + 30
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ready.exists()
    assert not ledger.checked(0)
    os.kill(stuck.pid, signal.SIGKILL)  # its lock goes with it
    stuck.join(10)
    ledger.verify([0, 1], _logging_check(log))
    assert _checked(log) == [0, 1] and ledger.checked(0)


def test_a_failed_check_marks_nothing(tmp_path: Path) -> None:
    ledger = HashLedger(3)

    def bad(i: int) -> None:
        if i == 1:
            raise ValueError("shard 1 is corrupt")

    with pytest.raises(ValueError, match="shard 1"):
        ledger.verify([0, 1, 2], bad)
    assert ledger.checked(0) and not ledger.checked(1)
    with pytest.raises(ValueError, match="shard 1"):  # every reader of it is told
        ledger.verify([1], bad)


def test_a_spawned_worker_shares_the_ledger_and_a_plain_pickle_does_not() -> None:
    ledger = HashLedger(5)
    spawned = multiprocessing.get_context("spawn").Process(
        target=operator.methodcaller("verify", [3], abs), args=(ledger,)
    )
    spawned.start()
    spawned.join(60)
    assert spawned.exitcode == 0
    assert ledger.checked(3)  # the spawned process received the same shared file
    copy = pickle.loads(pickle.dumps(ledger))  # e.g. a dataset saved by the user
    assert not copy.checked(3)
    copy.verify([4], abs)
    assert copy.checked(4) and not ledger.checked(4)
