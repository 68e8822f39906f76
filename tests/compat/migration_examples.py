"""Mosaic's documented usage, written ONCE as source text and run twice: under the real
Mosaic 0.13.0 (``migration_tool.py`` in ``.venv-mosaic``) and under sparkshard, with only the
import line changed (:data:`IMPORTS`). Imported by both venvs: standard library only here.

Each example defines ``example(data)``: ``data(name)`` gives a fresh copy of a Mosaic-written
dataset (``even``: 96 samples, zstd; ``tail``: 117, uncompressed; ``other``: 48, ids from
1000) and ``data.out`` a scratch folder. It returns plain values (``plain()`` turns arrays
and tensors into lists) holding what must agree between the two: samples with transforms
applied, epoch sizes, resumed sequences (or sets, where shuffle orders differ by design).
The examples follow Mosaic's docs: the README/quick start (MDSWriter, StreamingDataset,
DataLoader), "Dataset Format" (``ds[i]``, slices), "Mixing Datasets" (Streams, proportion /
repeat / choose, epoch_size), "Mid-epoch resumption" (StreamingDataLoader state_dict) and
the FAQ's subclass that overrides ``__getitem__`` to add a transform.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

IMPORTS = {
    "mosaic": "from streaming import MDSWriter, Stream, StreamingDataLoader, StreamingDataset\n",
    "ours": (
        "from loader import Stream, StreamingDataLoader, StreamingDataset\n"
        "from sparkshard import MDSWriter\n"
    ),
}

COMMON = '''
import gc
import os
from collections import Counter

import numpy as np
import torch
from torch.utils.data import DataLoader

COLUMNS = {"id": "int", "x": "ndarray:float32:4", "label": "int", "text": "str"}


def sample(i):
    return {"id": i, "x": np.arange(1, 5, dtype=np.float32) * i, "label": i % 3, "text": f"s{i}"}


def plain(value):
    if isinstance(value, dict):
        return {k: plain(v) for k, v in sorted(value.items())}
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def ids_of(batches):
    return [int(i) for b in batches for i in plain(b["id"])]


class Transformed(StreamingDataset):
    """Mosaic's FAQ: a transform by overriding __getitem__."""

    def __getitem__(self, idx):
        obj = super().__getitem__(idx)
        return {"id": obj["id"], "x": obj["x"] * 2, "name": f"label-{obj['label']}"}
'''

EXAMPLES: dict[str, str] = {}

EXAMPLES["write_and_read"] = """
def example(data):
    out = os.path.join(data.out, "written")
    with MDSWriter(out=out, columns=COLUMNS, compression="zstd", size_limit=1 << 10) as writer:
        for i in range(30):
            writer.write(sample(i))
    ds = StreamingDataset(local=out, shuffle=False, batch_size=5)
    return [plain(ds[i]) for i in range(ds.num_samples)]
"""

EXAMPLES["iterate_in_order"] = """
def example(data):
    ds = StreamingDataset(local=data("even"), shuffle=False, batch_size=8)
    return {"len": len(ds), "ids": [int(s["id"]) for s in ds]}
"""

EXAMPLES["two_iterations_two_epochs"] = """
def example(data):
    ds = StreamingDataset(local=data("even"), shuffle=True, shuffle_seed=7, batch_size=8)
    first, second = [int(s["id"]) for s in ds], [int(s["id"]) for s in ds]
    return {"first": sorted(first), "second": sorted(second), "differ": first != second}
"""

EXAMPLES["torch_dataloader"] = """
def example(data):
    ds = StreamingDataset(local=data("even"), shuffle=True, batch_size=8)
    batches = list(DataLoader(ds, batch_size=8, num_workers=2))
    return {"sizes": [len(b["id"]) for b in batches], "ids": sorted(ids_of(batches))}
"""

EXAMPLES["index_ints"] = """
def example(data):
    ds = StreamingDataset(local=data("even"))
    return [plain(ds[i]) for i in (0, 5, 95, -1, -96)]
"""

EXAMPLES["num_samples_and_len"] = """
def example(data):
    ds = StreamingDataset(local=data("even"), batch_size=8)
    return {"num_samples": ds.num_samples, "len": len(ds)}
"""

EXAMPLES["mosaic_keywords"] = """
def example(data):
    ds = StreamingDataset(
        local=data("even"), shuffle=True, shuffle_algo="py1e", shuffle_block_size=1 << 18,
        num_canonical_nodes=1, partition_algo="relaxed", predownload=64, cache_limit="1gb",
        sampling_method="balanced", sampling_granularity=1, batching_method="random",
        download_retry=2, download_timeout=60, keep_zip=False, batch_size=8,
    )
    return {"len": len(ds), "ids": sorted(int(s["id"]) for s in ds)}
"""

EXAMPLES["refused_like_mosaic"] = """
def example(data):
    refused = {}
    for kwargs in ({"sampling_method": "ayo"}, {"sampling_granularity": 0}, {"shuffle_seed": -1}):
        try:
            StreamingDataset(local=data("even"), **kwargs)
            refused[str(kwargs)] = False
        except ValueError:
            refused[str(kwargs)] = True
    return refused
"""

EXAMPLES["streams_proportion"] = """
def example(data):
    streams = [Stream(local=data("even"), proportion=0.75), Stream(local=data("other"), proportion=0.25)]
    ds = StreamingDataset(streams=streams, epoch_size=128, shuffle=True, batch_size=8)
    ids = [int(s["id"]) for s in ds]
    return {"len": len(ds), "per_stream": sorted(Counter(i >= 1000 for i in ids).items())}
"""

EXAMPLES["streams_repeat"] = """
def example(data):
    streams = [Stream(local=data("even")), Stream(local=data("other"), repeat=2)]
    ds = StreamingDataset(streams=streams, shuffle=True, batch_size=8)
    return {"len": len(ds), "ids": sorted(Counter(int(s["id"]) for s in ds).items())}
"""

EXAMPLES["streams_choose"] = """
def example(data):
    streams = [Stream(local=data("even"), choose=40), Stream(local=data("other"), choose=24)]
    ds = StreamingDataset(streams=streams, shuffle=True, batch_size=8)
    seen = Counter(int(s["id"]) for s in ds)
    return {
        "len": len(ds),
        "per_stream": sorted(Counter(i >= 1000 for i in seen.elements()).items()),
        "distinct": max(seen.values()) == 1,
    }
"""

EXAMPLES["streams_per_stream_batches"] = """
def example(data):
    streams = [Stream(local=data("even"), choose=60), Stream(local=data("other"), repeat=1.5)]
    ds = StreamingDataset(streams=streams, batching_method="per_stream", shuffle=True, batch_size=8)
    batches = [[int(i) for i in plain(b["id"])] for b in StreamingDataLoader(ds, batch_size=8)]
    return {
        "sizes": sorted(Counter(len(b) for b in batches).items()),
        "one_stream_each": all(len({i >= 1000 for i in b}) == 1 for b in batches),
        "per_stream": sorted(Counter(b[0] >= 1000 for b in batches).items()),
    }
"""

EXAMPLES["epoch_size_one_dataset"] = """
def example(data):
    out = {}
    for epoch_size in (48, 200):
        ds = StreamingDataset(local=data("even"), epoch_size=epoch_size, shuffle=True, batch_size=8)
        seen = Counter(int(s["id"]) for s in ds)
        out[epoch_size] = {"len": len(ds), "times": sorted(Counter(seen.values()).items())}
        del ds
        gc.collect()
    return out
"""

EXAMPLES["loader_resume_in_order"] = """
def example(data):
    ds = StreamingDataset(local=data("even"), shuffle=False, batch_size=8)
    loader = StreamingDataLoader(ds, batch_size=8)
    first = []
    for step, batch in enumerate(loader):
        first += ids_of([batch])
        if step == 4:
            break
    state = loader.state_dict()
    ds = StreamingDataset(local=data("even"), shuffle=False, batch_size=8)
    loader = StreamingDataLoader(ds, batch_size=8)
    loader.load_state_dict(state)
    return {"first": first, "rest": ids_of(loader)}
"""

EXAMPLES["loader_resume_shuffled_workers"] = """
def example(data):
    ds = StreamingDataset(local=data("even"), shuffle=True, shuffle_seed=3, batch_size=8)
    loader = StreamingDataLoader(ds, batch_size=8, num_workers=2)
    first = []
    for step, batch in enumerate(loader):
        first += ids_of([batch])
        if step == 4:
            break
    state = loader.state_dict()
    ds = StreamingDataset(local=data("even"), shuffle=True, shuffle_seed=3, batch_size=8)
    loader = StreamingDataLoader(ds, batch_size=8, num_workers=2)
    loader.load_state_dict(state)
    rest = ids_of(loader)
    return {"first": len(first), "rest": len(rest), "all": sorted(first + rest)}
"""

# --- Mosaic behaviours of the loader: tails, loader options, indexing, overrides ----------------
EXAMPLES["tail_on_one_device"] = """
def example(data):
    ds = StreamingDataset(local=data("tail"), shuffle=True, batch_size=8)
    return {"len": len(ds), "ids": sorted(int(s["id"]) for s in ds)}
"""

EXAMPLES["tail_batches"] = """
def example(data):
    ds = StreamingDataset(local=data("tail"), shuffle=False, batch_size=8)
    batches = list(StreamingDataLoader(ds, batch_size=8))
    return {"sizes": [len(b["id"]) for b in batches], "ids": ids_of(batches)}
"""

EXAMPLES["loader_drop_last"] = """
def example(data):
    ds = StreamingDataset(local=data("tail"), shuffle=False, batch_size=8)
    batches = list(StreamingDataLoader(ds, batch_size=8, drop_last=True))
    return {"sizes": [len(b["id"]) for b in batches], "ids": ids_of(batches)}
"""

EXAMPLES["loader_dataset_is_the_users"] = """
def example(data):
    ds = StreamingDataset(local=data("even"), batch_size=8)
    return StreamingDataLoader(ds, batch_size=8).dataset is ds
"""

EXAMPLES["index_slices_lists_arrays"] = """
def example(data):
    ds = StreamingDataset(local=data("even"))
    return [plain(ds[at]) for at in (slice(2, 6), slice(-3, None), [1, 5], np.array([7, 0]))]
"""

EXAMPLES["size"] = """
def example(data):
    return StreamingDataset(local=data("even")).size
"""

EXAMPLES["override_iterated"] = """
def example(data):
    ds = Transformed(local=data("even"), shuffle=True, batch_size=8)
    return sorted((int(s["id"]), plain(s["x"]), s["name"]) for s in ds)
"""

EXAMPLES["override_streaming_loader_workers"] = """
def example(data):
    ds = Transformed(local=data("even"), shuffle=True, batch_size=8)
    batches = list(StreamingDataLoader(ds, batch_size=8, num_workers=2))
    rows = [(i, x, n) for b in batches for i, x, n in zip(plain(b["id"]), plain(b["x"]), b["name"])]
    return sorted(rows)
"""

EXAMPLES["override_torch_dataloader"] = """
def example(data):
    ds = Transformed(local=data("even"), shuffle=False, batch_size=8)
    batches = list(DataLoader(ds, batch_size=8))
    return [(plain(b["id"]), plain(b["x"]), list(b["name"])) for b in batches]
"""

EXAMPLES["get_item_override"] = """
class Tagged(StreamingDataset):
    def get_item(self, idx):
        obj = super().get_item(idx)
        obj["tag"] = obj["id"] * 10
        return obj


def example(data):
    ds = Tagged(local=data("even"), shuffle=False, batch_size=8)
    return {"getitem": plain(ds[3])["tag"], "iter": sorted(int(s["tag"]) for s in ds)}
"""

WRITE_DATA = """
def example(data):
    for name, n, first, compression in [
        ("even", 96, 0, "zstd"), ("tail", 117, 0, None), ("other", 48, 1000, "zstd"),
    ]:
        out = os.path.join(data.out, name)
        with MDSWriter(out=out, columns=COLUMNS, compression=compression, size_limit=1 << 10) as w:
            for i in range(first, first + n):
                w.write(sample(i))
    return sorted(os.listdir(data.out))
"""


class Data:
    """``data(name)``: a fresh copy of dataset ``name`` under ``root`` (Mosaic writes decompressed
    shards next to the compressed ones, and refuses two datasets on one local directory)."""

    def __init__(self, root: Path, scratch: Path) -> None:
        self.root, self.out, self._copies = root, str(scratch), 0

    def __call__(self, name: str) -> str:
        self._copies += 1
        copy = Path(self.out) / f"{name}-copy{self._copies}"
        shutil.copytree(self.root / name, copy)
        return str(copy)


def run_example(
    side: str, source: str, root: Path, before: Callable[[], None] | None = None
) -> Any:
    """Run one example's source under ``side``'s import over the datasets in ``root``:
    ``{"ok": True, "value": ...}`` or ``{"ok": False, "error": traceback}``."""
    scope: dict[str, Any] = {"__name__": f"migration_{side}"}
    with tempfile.TemporaryDirectory(prefix=f"migration-{side}-") as scratch:
        try:
            if before is not None:
                before()
            exec(compile(IMPORTS[side] + COMMON + source, f"<{side} example>", "exec"), scope)
            value = scope["example"](Data(root, Path(scratch)))
            return {"ok": True, "value": value}
        except Exception:
            return {"ok": False, "error": traceback.format_exc()}
        finally:
            scope.clear()


def run_all(side: str, root: Path, names: list[str], out: Path, **kwargs: Any) -> None:
    """Run ``names`` (EXAMPLES keys) and pickle ``{name: result}`` to ``out``."""
    results = {name: run_example(side, EXAMPLES[name], root, **kwargs) for name in names}
    with open(out, "wb") as f:
        pickle.dump(results, f)


def write_data(side: str, root: Path) -> Any:
    """Write the examples' datasets into ``root`` with ``side``'s MDSWriter."""
    os.makedirs(root, exist_ok=True)
    scope: dict[str, Any] = {"__name__": f"migration_{side}"}
    exec(compile(IMPORTS[side] + COMMON + WRITE_DATA, "<write data>", "exec"), scope)

    class Out:
        out = str(root)

    return scope["example"](Out())
