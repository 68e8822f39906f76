"""Device placement: the plan's validation, the prefetch queue's depth and order, CUDA copies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from loader.dataloader import StreamingDataLoader
from loader.dataset import StreamingDataset
from loader.device import DevicePlan, DevicePrefetcher, move_to

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


class _Counting(Iterator[dict[str, Any]]):
    """A source of ``n`` batches that counts how many were taken."""

    def __init__(self, n: int) -> None:
        self.n, self.taken = n, 0

    def __next__(self) -> dict[str, Any]:
        if self.taken == self.n:
            raise StopIteration
        self.taken += 1
        return {"x": torch.full((4,), self.taken), "name": f"b{self.taken}"}


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 12), depth=st.integers(1, 6))
def test_prefetcher_keeps_depth_batches_ahead_in_order(n: int, depth: int) -> None:
    source = _Counting(n)
    prefetcher = DevicePrefetcher(source, torch.device("cpu"), depth)
    assert source.taken == 0  # nothing is read before the loop asks
    got = []
    for delivered, batch in enumerate(prefetcher, start=1):
        got.append(batch["name"])
        assert source.taken == prefetcher.pulled == min(delivered + depth, n)
        assert prefetcher.in_flight == source.taken - delivered
    assert got == [f"b{i}" for i in range(1, n + 1)]


def test_plan_defaults_and_errors() -> None:
    assert DevicePlan.resolve(None, None, None) == DevicePlan(None, False, 0)
    cpu = DevicePlan.resolve("cpu", True, None)
    assert cpu.device == torch.device("cpu") and cpu.prefetch == 2
    assert cpu.pin_memory is torch.cuda.is_available()  # pinning dropped without accelerator
    assert DevicePlan.resolve("cpu", None, 0).prefetch == 0
    with pytest.raises(ValueError, match="needs device="):
        DevicePlan.resolve(None, None, 3)
    with pytest.raises(ValueError, match=">= 0 batches"):
        DevicePlan.resolve("cpu", None, -1)
    with pytest.raises(ValueError, match="not a torch device"):
        DevicePlan.resolve("gpu0", None, None)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            DevicePlan.resolve("cuda", None, None)


class _Pair(NamedTuple):
    x: Any
    y: Any


def test_move_to_walks_dicts_tuples_and_lists_and_leaves_the_rest() -> None:
    batch = {"a": torch.ones(2), "b": _Pair(torch.zeros(1), "s"), "c": [torch.ones(1)], "d": ["s"]}
    moved = move_to(batch, torch.device("cpu"))
    assert isinstance(moved["b"], _Pair) and moved["b"].y == "s" and moved["d"] == ["s"]
    assert torch.equal(moved["a"], batch["a"]) and torch.equal(moved["c"][0], batch["c"][0])


@pytest.mark.gpu
@needs_cuda
def test_cuda_prefetch_copies_on_a_side_stream_and_matches_the_host() -> None:
    host = [{"x": torch.randn(256, 64).pin_memory()} for _ in range(6)]
    prefetcher = DevicePrefetcher(iter(host), torch.device("cuda"), 3)
    for source, batch in zip(host, prefetcher):
        assert batch["x"].device.type == "cuda"
        y = batch["x"] * 2  # on the current stream, after wait_event
        assert torch.equal(y.cpu(), source["x"] * 2)
    torch.cuda.synchronize()


@pytest.mark.gpu
@needs_cuda
def test_cuda_loader_delivers_device_batches_and_counts_delivered(small_dataset: Path) -> None:
    def loader(**kw: Any) -> StreamingDataLoader:
        ds = StreamingDataset(local=str(small_dataset), shuffle=True, shuffle_seed=3)
        return StreamingDataLoader(ds, batch_size=40, num_workers=2, **kw)

    whole = [int(i) for b in loader() for i in b["id"]]
    cuda = loader(device="cuda", prefetch_to_device=3)
    assert cuda.device_plan.pin_memory
    head = []
    for step, batch in enumerate(cuda):
        assert batch["id"].device.type == "cuda"
        head += batch["id"].cpu().tolist()
        if step == 6:
            break
    state = cuda.state_dict()
    assert state["sample_in_epoch"] == 7 * 40
    rest = loader()
    rest.load_state_dict(state)
    assert head + [int(i) for b in rest for i in b["id"]] == whole
