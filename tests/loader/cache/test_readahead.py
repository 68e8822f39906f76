"""The read-ahead planner (loader/cache/readahead.py), driven by hand: no cache, no store."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from loader.cache.readahead import Readahead


def test_a_shard_the_reader_opens_meanwhile_is_not_fetched_behind_its_back() -> None:
    """The reader may open a shard (fetching it itself) between the planner's checks: the
    planner must then drop it, not start a second download that evicts what is being read
    and outlives the epoch."""
    planned = threading.Event()
    fetched: list[int] = []

    def shards() -> Iterator[int]:
        yield from (3, 5)
        planned.set()  # the planner asked for more: it is done with 3 and 5

    def cached(shard: int) -> bool:
        readahead.consumed(shard)  # the reader opens it right now
        return False  # ...so it was not in the cache when the planner looked

    readahead = Readahead(
        fetch=fetched.append,
        cached=cached,
        is_open=lambda shard: False,
        cost=lambda shard: 1,
        budget=lambda: 100,
        threads=1,
    )
    try:
        readahead.plan(shards())
        assert planned.wait(30), "the planner did not get through two shards"
        assert readahead.claim(3) is None and readahead.claim(5) is None  # nothing in flight
    finally:
        readahead.close()


def test_a_shard_the_reader_claimed_is_left_to_it() -> None:
    """A shard the reader needs before the planner got to it is fetched by the reader; the
    planner, arriving later, must not download it a second time."""
    fetched: list[int] = []
    reader_claimed, five = threading.Event(), threading.Event()

    def shards() -> Iterator[int]:
        reader_claimed.wait(30)  # the planner lags behind the reader
        yield from (3, 5)

    def fetch(shard: int) -> None:
        fetched.append(shard)
        if shard == 5:
            five.set()

    readahead = Readahead(
        fetch=fetch,
        cached=lambda shard: False,  # the reader's own fetch of 3 has not landed yet
        is_open=lambda shard: False,
        cost=lambda shard: 1,
        budget=lambda: 100,
        threads=1,  # one download thread: a fetch of 3 would run before the one of 5
    )
    try:
        readahead.plan(shards())
        assert readahead.claim(3) is None  # not planned yet: the reader fetches 3 itself
        reader_claimed.set()
        assert five.wait(30), f"only {fetched} were fetched"
        assert fetched == [5]
    finally:
        readahead.close()


def test_planned_shards_are_fetched_in_order_of_first_use() -> None:
    fetched: list[int] = []
    all_three = threading.Event()

    def fetch(shard: int) -> None:
        fetched.append(shard)
        if len(fetched) == 3:
            all_three.set()

    readahead = Readahead(
        fetch=fetch,
        cached=lambda shard: False,
        is_open=lambda shard: False,
        cost=lambda shard: 1,
        budget=lambda: 100,
        threads=1,  # one download thread: fetches run in the order they were planned
    )
    try:
        readahead.plan(iter([4, 1, 7]))
        assert all_three.wait(30), f"only {fetched} were fetched"
        assert fetched == [4, 1, 7]
    finally:
        readahead.close()
