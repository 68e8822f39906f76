"""A second process on the shard cache, for the cross-process cache tests.

    cache_child.py hold LOCAL REMOTE SHARD     # lease shard SHARD until stdin closes
    cache_child.py fetching LOCAL REMOTE SHARD # start fetching SHARD, then wait to be killed
    cache_child.py stream LOCAL REMOTE OPTIONS # read an epoch of REMOTE (OPTIONS: JSON)

``hold`` and ``fetching`` print one line (``held`` / ``fetching``) once in that state;
``stream`` prints the number of samples it read.
"""

from __future__ import annotations

import json
import sys
import time

from loader.cache.directory import ShardCache
from sparkshard.dataset.versions import read_index
from sparkshard.storage import open_store


def stream(local: str, remote: str, options: str) -> None:
    from loader.dataset import StreamingDataset

    ds = StreamingDataset(remote=remote, local=local, batch_size=10, **json.loads(options))
    print(sum(len(batch["id"]) for batch in ds.iter_batches()), flush=True)


def main(mode: str, local: str, remote: str, shard: str) -> None:
    if mode == "stream":
        stream(local, remote, shard)
        return
    record = read_index(open_store(remote)).shards[int(shard)]
    cache = ShardCache(local, remote, None)
    if mode == "hold":
        lease = cache.lease(record)
        assert lease is not None, "the shard must be cached before a child holds it"
        print("held", flush=True)
        sys.stdin.readline()
        lease.close()
        return
    with cache.fetching(record, wait=5.0) as tmp:
        assert tmp is not None
        cache.limit = 1 << 40  # reserve without evicting, as a live fetch would
        cache.reserve(record, wait=5.0)
        tmp.write_bytes(b"partial")
        print("fetching", flush=True)
        time.sleep(600)  # killed with SIGKILL before this ends


if __name__ == "__main__":
    main(*sys.argv[1:])
