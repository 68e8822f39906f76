"""Fetching the shards of a process's upcoming batches before it reads them.

The order an epoch is read in is a pure function, so each process knows the batches it will
read: a planner thread walks them ahead of the reader and hands each shard, at its first use,
to a small pool of download threads (obstore and zstd release the GIL). Shards the planner
has passed but the reader has not opened yet (in flight, downloaded, or already cached)
stay under a byte budget, so the planner never runs far ahead of the reader; the reader
marks shards :meth:`Readahead.consumed` as it opens them, which frees budget. A shard the
reader needs before the planner got to it is :meth:`Readahead.claim`-ed: the reader fetches
it itself and the planner skips it, so no download runs behind the reader's back.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any

import numpy as np

__all__ = ["Readahead", "first_uses"]

log = logging.getLogger(__name__)


def first_uses(batches: Iterable[np.ndarray], starts: np.ndarray) -> Iterator[int]:
    """Shards in the order batches of global sample ids first touch them, each once.

    ``starts`` are the shards' first sample ids (plus the total at the end).
    """
    seen: set[int] = set()
    for ids in batches:
        shards = np.searchsorted(starts, np.asarray(ids, np.int64), side="right") - 1
        unique, first = np.unique(shards, return_index=True)
        for shard in unique[np.argsort(first, kind="stable")].tolist():
            if shard not in seen:
                seen.add(shard)
                yield shard


class _Workers:
    """A few daemon threads running submitted calls. Unlike ThreadPoolExecutor's, they do not
    hold up interpreter exit to finish queued prefetches (an interrupted fetch is cleaned up by
    the cache like a crashed one)."""

    def __init__(self, threads: int) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"sparkshard-fetch-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[[int], object], arg: int) -> Future[object]:
        future: Future[object] = Future()
        self._queue.put((future, fn, arg))
        return future

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            future, fn, arg = item
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while queued
            try:
                future.set_result(fn(arg))
            except BaseException as exc:
                future.set_exception(exc)

    def stop(self) -> None:
        for _ in self._threads:
            self._queue.put(None)


class Readahead:
    """Downloads shards ahead of the reader with ``threads`` threads within a byte budget.

    ``fetch(shard)`` places a shard in the cache; ``cached(shard)`` says it is there (and
    marks it as about to be used); ``is_open(shard)`` says the reader has it open already;
    ``cost(shard)`` is its size in bytes and ``budget()`` the bytes allowed ahead right now.
    """

    def __init__(
        self,
        fetch: Callable[[int], object],
        cached: Callable[[int], bool],
        is_open: Callable[[int], bool],
        cost: Callable[[int], int],
        budget: Callable[[], int],
        threads: int,
    ) -> None:
        self._fetch, self._cached, self._is_open = fetch, cached, is_open
        self._cost, self._budget = cost, budget
        self._pool = _Workers(threads)
        self._cond = threading.Condition()
        self._futures: dict[int, Future[object]] = {}
        self._ahead: dict[int, int] = {}  # shard -> bytes: passed, not yet opened by the reader
        self._consumed: set[int] = set()  # opened by the reader during this plan
        self._plan = 0  # bumped to stop the running planner
        self._closed = False

    def plan(self, shards: Iterator[int]) -> None:
        """Prefetch ``shards`` (in order of first use), replacing the previous plan."""
        with self._cond:
            if self._closed:
                return
            self._plan += 1
            self._ahead.clear()
            self._consumed.clear()
            self._cond.notify_all()
            plan = self._plan
        thread = threading.Thread(
            target=self._run, args=(plan, shards), name="sparkshard-prefetch", daemon=True
        )
        thread.start()

    def _run(self, plan: int, shards: Iterator[int]) -> None:
        try:
            for shard in shards:
                if plan != self._plan:
                    return
                if self._is_open(shard):
                    continue
                cost = self._cost(shard)
                with self._cond:
                    while plan == self._plan and self._ahead and self._over(cost):
                        self._cond.wait(0.5)
                    if plan != self._plan:
                        return
                    if shard in self._consumed:
                        continue  # the reader got there first
                    self._ahead[shard] = cost
                if self._cached(shard):
                    continue
                with self._cond:
                    if plan != self._plan:
                        return
                    if shard in self._consumed:
                        continue  # the reader opened it meanwhile, fetching it itself
                    if shard in self._futures and not self._futures[shard].done():
                        continue
                    future = self._pool.submit(self._fetch, shard)
                    self._futures[shard] = future
                future.add_done_callback(functools.partial(self._finished, shard))
        except Exception:  # the reader fetches on demand whatever the planner missed
            log.exception("prefetch planning stopped")

    def _over(self, cost: int) -> bool:
        return sum(self._ahead.values()) + cost > self._budget()

    def _finished(self, shard: int, future: Future[object]) -> None:
        if future.cancelled() or future.exception() is not None:
            with self._cond:
                self._ahead.pop(shard, None)
                self._cond.notify_all()

    def claim(self, shard: int) -> Future[object] | None:
        """The reader needs ``shard`` now: its prefetch (running or finished), if there is
        one; otherwise the planner leaves it to the reader, who fetches it itself."""
        with self._cond:
            future = self._futures.get(shard)
            if future is None:
                self._consumed.add(shard)
                if self._ahead.pop(shard, None) is not None:
                    self._cond.notify_all()
            return future

    def consumed(self, shard: int) -> None:
        """The reader opened ``shard``: it no longer counts as fetched ahead."""
        with self._cond:
            self._futures.pop(shard, None)
            self._consumed.add(shard)
            if self._ahead.pop(shard, None) is not None:
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._plan += 1
            self._cond.notify_all()
            pending = list(self._futures.values())
        for future in pending:
            future.cancel()  # those not started yet
        self._pool.stop()
