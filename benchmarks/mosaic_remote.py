"""The Mosaic side of ``bench_remote``. Runs ONLY under the peer venv's python.

    mosaic_remote.py epoch URL LOCAL ORDER  # one cold epoch from s3:// into LOCAL

ORDER is JSON: ``{"shuffle": false}`` or ``{"shuffle": true, "shuffle_block_size": B}``.
Mosaic's ``StreamingDataset(remote=URL, local=LOCAL, batch_size=256, **ORDER)``
through its ``StreamingDataLoader`` (num_workers 0); the S3 endpoint and keys come from
the environment (``S3_ENDPOINT_URL``, ``AWS_*``), as Mosaic reads them. The time includes
construction (the index download), like ours.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from benchmarks.common import emit_result

BATCH = 256


def epoch(url: str, local: str, order: dict[str, Any]) -> dict[str, Any]:
    from streaming import StreamingDataLoader, StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    clean_stale_shared_memory()
    began = time.perf_counter()
    ds = StreamingDataset(remote=url, local=local, batch_size=BATCH, **order)
    samples = sum(len(b["id"]) for b in StreamingDataLoader(ds, batch_size=BATCH, num_workers=0))
    seconds = time.perf_counter() - began
    return {"samples": samples, "seconds": seconds}


def main(argv: list[str]) -> None:
    if argv[:1] != ["epoch"] or len(argv) != 4:
        raise SystemExit(__doc__)
    emit_result(epoch(argv[1], argv[2], json.loads(argv[3])))


if __name__ == "__main__":
    main(sys.argv[1:])
