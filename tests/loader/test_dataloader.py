"""StreamingDataLoader: tensors, worker processes, delivered-batch state, elastic resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from loader.dataloader import StreamingDataLoader
from loader.dataset import StreamingDataset

N = 1000


def _dataset(path: Path, **options: Any) -> StreamingDataset:
    return StreamingDataset(local=str(path), shuffle=True, shuffle_seed=3, **options)


def _ids(batches: list[dict[str, Any]]) -> list[int]:
    return [int(i) for b in batches for i in b["id"]]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_one_epoch_as_tensors(small_dataset: Path, num_workers: int) -> None:
    loader = StreamingDataLoader(_dataset(small_dataset), batch_size=64, num_workers=num_workers)
    batches = list(loader)
    assert len(batches) == len(loader) == 16
    assert isinstance(batches[0]["id"], torch.Tensor) and batches[0]["id"].shape == (64,)
    ids = _ids(batches)
    assert sorted(set(ids)) == list(range(N)) and len(ids) == 16 * 64
    assert loader.state_dict()["epoch"] == 1 and loader.state_dict()["sample_in_epoch"] == 0


def test_state_counts_delivered_batches_and_resumes_elastically(small_dataset: Path) -> None:
    whole = _ids(list(StreamingDataLoader(_dataset(small_dataset), batch_size=40)))
    loader = StreamingDataLoader(
        _dataset(small_dataset), batch_size=40, num_workers=2, prefetch_factor=4
    )
    head = []
    for i, batch in enumerate(loader):
        head.append(batch)
        if i == 6:
            break  # workers have prefetched more than 7 batches by now
    state = loader.state_dict()
    assert state["sample_in_epoch"] == 7 * 40
    # Another worker count and another batch size (one rank: another global batch too).
    resumed = StreamingDataLoader(_dataset(small_dataset), batch_size=25, num_workers=0)
    resumed.load_state_dict(state)
    rest = _ids(list(resumed))
    assert len(rest) == 29 * 25  # 720 left: 29 steps, the last padded with 5 repeats
    assert (_ids(head) + rest)[:N] == whole[:N]


def test_reuse_with_persistent_workers_after_load(small_dataset: Path) -> None:
    loader = StreamingDataLoader(
        _dataset(small_dataset), batch_size=50, num_workers=2, persistent_workers=True
    )
    epoch0 = _ids(list(loader))
    epoch1 = _ids(list(loader))
    assert epoch0 != epoch1 and sorted(epoch0) == sorted(epoch1) == list(range(N))
    loader.load_state_dict(loader.streaming_dataset.resume_state(0, 300))
    assert _ids(list(loader)) == epoch0[300:]
    assert _ids(list(loader)) == epoch1  # and the run goes on to epoch 1


def test_custom_collate_takes_the_per_sample_path(small_dataset: Path) -> None:
    def collate(samples: list[dict[str, Any]]) -> list[int]:
        return [int(s["id"]) for s in samples]

    fast = _ids(list(StreamingDataLoader(_dataset(small_dataset), batch_size=30)))
    loader = StreamingDataLoader(
        _dataset(small_dataset), batch_size=30, num_workers=2, collate_fn=collate
    )
    batches = list(loader)
    assert all(len(b) == 30 for b in batches)
    assert [i for b in batches for i in b] == fast


def test_batch_sizes_must_agree(small_dataset: Path) -> None:
    with pytest.raises(ValueError, match="batch_size 8 differs from the dataset's 4"):
        StreamingDataLoader(_dataset(small_dataset, batch_size=4), batch_size=8)
    with pytest.raises(ValueError, match="drop_last"):
        StreamingDataLoader(_dataset(small_dataset), batch_size=8, drop_last=True)
    dropping = StreamingDataLoader(_dataset(small_dataset, drop_last=True), 64, drop_last=True)
    assert len(list(dropping)) == N // 64
    with pytest.raises(ValueError, match="sampler"):
        StreamingDataLoader(_dataset(small_dataset), batch_size=8, sampler=[1])
