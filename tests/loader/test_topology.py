"""Topology detection: env (torchrun, TorchDistributor), explicit overrides, validation."""

from __future__ import annotations

import pytest

from loader.topology import Topology


def test_single_process_default() -> None:
    assert Topology.detect(env={}) == Topology()


def test_torchrun_environment() -> None:
    env = {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4"}
    assert Topology.detect(env=env) == Topology(
        node=1, nodes=2, rank=5, world=8, local_rank=1, ranks_per_node=4
    )


def test_missing_local_world_size_means_one_node() -> None:
    topology = Topology.detect(env={"RANK": "2", "WORLD_SIZE": "3"})
    assert (topology.node, topology.nodes, topology.local_rank) == (0, 1, 2)


def test_explicit_arguments_win() -> None:
    env = {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4"}
    topology = Topology.detect(rank=3, world_size=4, local_world_size=2, env=env)
    assert topology == Topology(node=1, nodes=2, rank=3, world=4, local_rank=1, ranks_per_node=2)


def test_of_rank_and_workers() -> None:
    topology = Topology.of_rank(7, world=8, ranks_per_node=4).with_worker(1, 3)
    assert (topology.node, topology.local_rank, topology.worker, topology.num_workers) == (
        1,
        3,
        1,
        3,
    )
    # num_workers=0 (reading in the main process) is one partition.
    assert Topology().with_worker(0, 0).num_workers == 1


def test_main_process_keeps_its_worker() -> None:
    topology = Topology().with_worker(1, 2)
    assert topology.in_current_worker() is topology


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RANK": "0", "WORLD_SIZE": "6", "LOCAL_WORLD_SIZE": "4"}, "multiple of the local"),
        (
            {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2"},
            "node-major",
        ),
        ({"RANK": "4", "WORLD_SIZE": "4"}, "rank must lie"),
    ],
)
def test_inconsistent_environments_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Topology.detect(env=env)
