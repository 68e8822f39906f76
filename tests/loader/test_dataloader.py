"""StreamingDataLoader: tensors, worker processes, delivered-batch state, elastic resume,
device prefetch (on the CPU here), numpy output, transforms in the workers, statistics."""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from loader.dataloader import StreamingDataLoader
from loader.dataset import StreamingDataset
from loader.transforms import FieldSpec

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
    assert sorted(ids) == list(range(N))  # one device pads nothing: the last batch has 40
    assert batches[-1]["id"].shape == (N - 15 * 64,)
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
    assert len(rest) == N - 7 * 40  # 720 left: 29 steps, the last one partial (no repeats)
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
    assert [len(b) for b in batches] == [30] * 33 + [10]
    assert [i for b in batches for i in b] == fast


def test_batch_sizes_must_agree(small_dataset: Path) -> None:
    with pytest.raises(ValueError, match="batch_size 8 differs from the dataset's 4"):
        StreamingDataLoader(_dataset(small_dataset, batch_size=4), batch_size=8)
    with pytest.raises(ValueError, match="drop_last=True on the loader but False"):
        StreamingDataLoader(_dataset(small_dataset, drop_last=False), batch_size=8, drop_last=True)
    dropping = StreamingDataLoader(_dataset(small_dataset, drop_last=True), 64, drop_last=True)
    assert len(list(dropping)) == N // 64
    with pytest.raises(ValueError, match="sampler"):
        StreamingDataLoader(_dataset(small_dataset), batch_size=8, sampler=[1])


# --- device prefetch, output kinds, transforms, stats -----------------------------------


def _stop_after(loader: StreamingDataLoader, k: int) -> list[dict[str, Any]]:
    head = []
    for i, batch in enumerate(loader):
        head.append(batch)
        if i + 1 == k:
            break
    return head


@settings(max_examples=20, deadline=None)
@given(
    batch_size=st.integers(7, 120), depth=st.integers(1, 5), stop=st.integers(1, 12), data=st.data()
)
def test_device_prefetch_counts_only_delivered_batches(
    small_dataset: Path, batch_size: int, depth: int, stop: int, data: st.DataObject
) -> None:
    whole = _ids(list(StreamingDataLoader(_dataset(small_dataset), batch_size=batch_size)))
    steps = -(-N // batch_size)
    stop = min(stop, steps)
    ds = _dataset(small_dataset)
    loader = StreamingDataLoader(ds, batch_size=batch_size, device="cpu", prefetch_to_device=depth)
    head = _stop_after(loader, stop)
    # The prefetch machinery ran: the dataset (read in this process) has read `depth` batches
    # more than were delivered, while the loop's statistics and state count delivered ones.
    # Every sample has the same size; the last batch may be partial, so count samples.
    pulled = min((stop + depth) * batch_size, N)
    read, delivered = ds.io_counters()["bytes_read"], loader.stats().bytes_read
    assert delivered is not None and read * min(stop * batch_size, N) == delivered * pulled
    state = loader.state_dict()
    assert state["sample_in_epoch"] == min(stop * batch_size, N) % N
    assert state["epoch"] == (1 if stop == steps else 0)
    workers = data.draw(st.sampled_from([0, 0, 2]), label="workers on resume")
    resumed = StreamingDataLoader(
        _dataset(small_dataset), batch_size=batch_size, num_workers=workers
    )
    resumed.load_state_dict(state)
    rest = _ids(list(resumed))
    if stop == steps:
        assert sorted(rest[:N]) == list(range(N))  # the next epoch
    else:
        assert _ids(head) + rest == whole


def test_device_cpu_delivers_plain_tensors_with_workers(small_dataset: Path) -> None:
    loader = StreamingDataLoader(
        _dataset(small_dataset), batch_size=64, num_workers=2, device=torch.device("cpu"),
        pin_memory=True, prefetch_to_device=2,
    )  # fmt: skip
    assert loader.device_plan.pin_memory is torch.cuda.is_available()
    batches = _stop_after(loader, 5)
    assert all(b["id"].device.type == "cpu" and b["id"].is_contiguous() for b in batches)
    assert loader.state_dict()["sample_in_epoch"] == 5 * 64


def test_numpy_output_makes_no_tensors(small_dataset: Path) -> None:
    loader = StreamingDataLoader(
        _dataset(small_dataset), batch_size=64, num_workers=2, output="numpy"
    )
    batches = list(loader)
    assert all(type(v) is np.ndarray for b in batches for v in b.values())
    assert _ids(batches) == _ids(list(StreamingDataLoader(_dataset(small_dataset), 64)))
    with pytest.raises(ValueError, match="makes no tensors"):
        StreamingDataLoader(_dataset(small_dataset), 64, output="numpy", device="cpu")
    with pytest.raises(ValueError, match="'torch' or 'numpy'"):
        StreamingDataLoader(_dataset(small_dataset), 64, output="jax")  # type: ignore[arg-type]


def label_times_ten(column: np.ndarray) -> np.ndarray:
    return column * 10


def add_pid_and_split(batch: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    batch["pid"] = np.full(len(batch["id"]), os.getpid())
    return batch, batch["label"]


def test_transforms_run_in_the_workers(small_dataset: Path) -> None:
    plain = list(StreamingDataLoader(_dataset(small_dataset), batch_size=50))
    loader = StreamingDataLoader(
        _dataset(small_dataset), batch_size=50, num_workers=2,
        fields=[FieldSpec("label", transform=label_times_ten)], batch_transform=add_pid_and_split,
    )  # fmt: skip
    batches = list(loader)
    assert len(batches) == len(plain) == 20
    pids = set()
    for (columns, target), reference in zip(batches, plain):
        assert isinstance(target, torch.Tensor) and torch.equal(target, reference["label"] * 10)
        assert torch.equal(columns["id"], reference["id"])
        pids.update(columns["pid"].tolist())
    assert len(pids) == 2 and os.getpid() not in pids  # both workers, never the loop
    assert loader.state_dict()["epoch"] == 1


def add_freeze_count(batch: dict[str, Any]) -> dict[str, Any]:
    batch["frozen"] = np.full(len(batch["id"]), gc.get_freeze_count())
    return batch


def test_forked_workers_leave_the_parents_objects_out_of_their_collections(
    small_dataset: Path,
) -> None:
    """Forked workers find the parent's objects frozen, so their garbage collections do not
    write to (and copy) the pages that hold them (loader/fork.py); the parent's collector
    is as it was, and a process that freezes objects itself keeps exactly its freeze."""
    assert gc.get_freeze_count() == 0
    loader = StreamingDataLoader(
        _dataset(small_dataset), batch_size=100, num_workers=2, batch_transform=add_freeze_count
    )
    batches = list(loader)
    assert len(batches) == 10 and all(int(b["frozen"].min()) > 0 for b in batches)
    assert gc.get_freeze_count() == 0
    marker: list[Any] = []  # tracked by gc; frozen objects are not among gc.get_objects()
    gc.freeze()
    try:
        assert not any(o is marker for o in gc.get_objects())
        again = StreamingDataLoader(_dataset(small_dataset), batch_size=100, num_workers=2)
        assert len(list(again)) == 10
        assert gc.get_freeze_count() > 0 and not any(o is marker for o in gc.get_objects())
    finally:
        gc.unfreeze()
    assert any(o is marker for o in gc.get_objects())


def test_transforms_on_the_numpy_path_and_per_sample(small_dataset: Path) -> None:
    fields = [FieldSpec("id", transform=lambda i: np.array([i, -i]), per_sample=True)]
    loader = StreamingDataLoader(
        _dataset(small_dataset), batch_size=32, fields=fields, output="numpy"
    )
    batch = next(iter(loader))
    assert type(batch["id"]) is np.ndarray and batch["id"].shape == (32, 2)
    assert (batch["id"][:, 0] == -batch["id"][:, 1]).all()


def test_transform_errors_name_the_field(small_dataset: Path) -> None:
    fields = [FieldSpec("image", transform=label_times_ten)]
    with pytest.raises(KeyError, match=r"FieldSpec\('image'\).*columns are \['id', 'label'\]"):
        next(iter(StreamingDataLoader(_dataset(small_dataset), batch_size=8, fields=fields)))
    with pytest.raises(TypeError, match=r"FieldSpec\('label'\).transform cannot be pickled"):
        StreamingDataLoader(
            _dataset(small_dataset), batch_size=8, num_workers=2,
            multiprocessing_context="spawn", fields=[FieldSpec("label", lambda c: c)],
        )  # fmt: skip
    with pytest.raises(ValueError, match="collate_fn"):
        StreamingDataLoader(
            _dataset(small_dataset), batch_size=8, collate_fn=list, batch_transform=len
        )


def test_stats_count_delivered_batches_and_worker_io(small_dataset: Path) -> None:
    ds = _dataset(small_dataset)
    in_process = StreamingDataLoader(ds, batch_size=64)
    assert in_process.stats().steps == 0
    list(in_process)
    local = in_process.stats()
    assert local.bytes_read == ds.io_counters()["bytes_read"] > 0
    workers = StreamingDataLoader(_dataset(small_dataset), batch_size=64, num_workers=2)
    list(workers)
    stats = workers.stats()
    assert (stats.steps, stats.samples) == (16, N)  # the last batch is partial (40)
    assert stats.bytes_read == local.bytes_read and stats.bytes_downloaded == 0
    assert 0 <= stats.wait_p50 <= stats.wait_p99 and stats.wait_seconds <= stats.seconds
    assert stats.samples_per_s > 0 and 0 <= stats.wait_fraction <= 1
    assert "samples/s" in str(stats) and stats.as_dict()["steps"] == 16
    assert workers.stats() == stats  # the epoch is over: its rates no longer change


# --- torch conventions: the dataset passed, drop_last, Stateful, epoch tails -------------


def test_loader_attributes_are_what_the_user_passed(small_dataset: Path) -> None:
    ds = _dataset(small_dataset)
    loader = StreamingDataLoader(ds, batch_size=64, num_workers=2, drop_last=True)
    assert loader.dataset is ds and loader.batch_size == 64 and loader.drop_last
    assert ds.drop_last  # adopted: the dataset drops the incomplete step for every rank
    batches = list(loader)
    assert len(batches) == len(loader) == N // 64 and all(len(b["id"]) == 64 for b in batches)
    keep = StreamingDataLoader(_dataset(small_dataset), batch_size=64, drop_last=False)
    assert not keep.drop_last and len(list(keep)) == len(keep) == 16


def test_117_samples_in_batches_of_8_on_one_device(tmp_path: Path) -> None:
    from small_datasets import write_dataset

    path = write_dataset(tmp_path / "ds", 117)
    ds = StreamingDataset(local=str(path), batch_size=8)
    assert len(ds) == 117  # as Mosaic: no repeats on one device
    for batches in (list(StreamingDataLoader(ds, 8)), list(torch.utils.data.DataLoader(ds, 8))):
        assert [len(b["id"]) for b in batches] == [8] * 14 + [5]
        assert sorted(int(i) for b in batches for i in b["id"]) == list(range(117))
    dropped = list(StreamingDataLoader(StreamingDataset(local=str(path)), 8, drop_last=True))
    assert [len(b["id"]) for b in dropped] == [8] * 14


def test_satisfies_torch_stateful_and_checkpoints_with_dcp(
    small_dataset: Path, tmp_path: Path
) -> None:
    import inspect
    import warnings

    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.stateful import Stateful

    loader = StreamingDataLoader(_dataset(small_dataset), batch_size=50, num_workers=2)
    assert isinstance(loader, Stateful)
    # torchdata's Stateful protocol, structurally: state_dict() -> dict, load_state_dict(sd).
    assert list(inspect.signature(loader.state_dict).parameters) == []
    assert len(inspect.signature(loader.load_state_dict).parameters) == 1
    assert isinstance(loader.state_dict(), dict)  # also before the first iter()
    head = _stop_after(loader, 5)
    with warnings.catch_warnings():  # "assuming the intent is to save in a single process"
        warnings.simplefilter("ignore", UserWarning)
        dcp.save({"loader": loader}, checkpoint_id=str(tmp_path / "ckpt"))
        resumed = StreamingDataLoader(_dataset(small_dataset), batch_size=50)
        dcp.load({"loader": resumed}, checkpoint_id=str(tmp_path / "ckpt"))
    whole = _ids(list(StreamingDataLoader(_dataset(small_dataset), batch_size=50)))
    assert _ids(head) + _ids(list(resumed)) == whole


def test_a_mosaic_loader_state_is_refused_with_the_way_out(small_dataset: Path) -> None:
    from sparkshard.errors import ResumeStateError

    mosaic = {"epoch": 2, "sample_in_epoch": 640, "num_canonical_nodes": 1,
              "shuffle_seed": 3, "initial_physical_nodes": 1}  # fmt: skip
    loader = StreamingDataLoader(_dataset(small_dataset), batch_size=64)
    for target in (loader, loader.streaming_dataset):
        with pytest.raises(ResumeStateError) as caught:
            target.load_state_dict(mosaic)
        message = str(caught.value)
        assert "mosaicml-streaming" in message and "another order" in message
        assert "dataset.resume_state(epoch=2, sample_in_epoch=0)" in message
        assert "dataset.resume_state(epoch=3, sample_in_epoch=0)" in message
    assert loader.state_dict()["epoch"] == 0  # nothing was loaded
    loader.load_state_dict(loader.streaming_dataset.resume_state(epoch=2, sample_in_epoch=0))
    assert loader.state_dict()["epoch"] == 2
