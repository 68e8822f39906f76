"""A reader pinned at version N while a writer appends, overwrites and optimizes; files
vacuumed away; checkpoints; resume states across versions (refused mid-epoch, accepted at
an epoch boundary)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from deltalake import DeltaTable, write_deltalake
from table_data import deltalake_rows, ids_table, small_groups

from loader import StreamingDataset
from sparkshard.errors import ResumeStateError


def epoch_ids(ds: StreamingDataset) -> list[int]:
    ids = np.concatenate([np.asarray(b["id"]) for b in ds.iter_batches()])
    return sorted(ids[: ds.num_samples].tolist())


def test_pinned_while_a_writer_appends_overwrites_and_optimizes(tmp_path: Path) -> None:
    uri = tmp_path / "t"
    for part in np.array_split(np.arange(600), 6):
        write_deltalake(uri, ids_table(part), mode="append", writer_properties=small_groups(25))
    ds = StreamingDataset(delta=str(uri), batch_size=40, shuffle=True)
    assert ds.version == 5
    it = ds.iter_batches()
    first = [np.asarray(next(it)["id"]) for _ in range(3)]
    # A writer moves on while the epoch is in progress.
    write_deltalake(uri, ids_table(np.arange(600, 700)), mode="append")
    DeltaTable(str(uri)).optimize.compact()
    write_deltalake(uri, ids_table(np.arange(5000, 5100)), mode="overwrite")
    rest = [np.asarray(b["id"]) for b in it]
    seen = np.concatenate(first + rest)[:600]
    assert sorted(seen.tolist()) == list(range(600))
    # Workers (which reopen the source) and later epochs stay on version 5 too.
    assert epoch_ids(ds) == list(range(600))
    assert StreamingDataset(delta=str(uri)).version == 8
    assert epoch_ids(StreamingDataset(delta=str(uri), batch_size=50)) == list(range(5000, 5100))
    assert epoch_ids(StreamingDataset(delta=str(uri), version=6, batch_size=50)) == list(range(700))


def test_vacuumed_file_names_file_version_and_fix(tmp_path: Path) -> None:
    uri = tmp_path / "t"
    write_deltalake(uri, ids_table(np.arange(100)))
    ds = StreamingDataset(delta=str(uri), batch_size=10)
    write_deltalake(uri, ids_table(np.arange(100, 200)), mode="overwrite")
    gone = DeltaTable(str(uri)).vacuum(
        retention_hours=0, enforce_retention_duration=False, dry_run=False
    )
    assert len(gone) == 1
    with pytest.raises(FileNotFoundError) as raised:
        next(iter(ds.iter_batches()))
    message = str(raised.value)
    assert gone[0] in message and "version 0" in message and "VACUUM" in message
    assert "version=None" in message
    with pytest.raises(FileNotFoundError, match="VACUUM"):
        StreamingDataset(delta=str(uri), version=0)


def test_checkpoints_and_time_travel(tmp_path: Path) -> None:
    uri = tmp_path / "t"
    for part in np.array_split(np.arange(300), 3):
        write_deltalake(uri, ids_table(part), mode="append")
    DeltaTable(str(uri)).create_checkpoint()
    write_deltalake(uri, ids_table(np.arange(300, 400)), mode="append")
    DeltaTable(str(uri)).delete("id < 50")
    assert (uri / "_delta_log" / f"{2:020d}.checkpoint.parquet").exists()
    for version in range(5):
        expected = sorted(r["id"] for r in deltalake_rows(uri, version))
        assert (
            epoch_ids(StreamingDataset(delta=str(uri), version=version, batch_size=64)) == expected
        )
    with pytest.raises(ValueError, match="versions up to 4; version=9"):
        StreamingDataset(delta=str(uri), version=9)


def test_state_of_another_version_refused_mid_epoch_accepted_at_boundary(tmp_path: Path) -> None:
    uri = tmp_path / "t"
    write_deltalake(uri, ids_table(np.arange(200)))
    old = StreamingDataset(delta=str(uri), batch_size=20, shuffle=True)
    it = old.iter_batches()
    next(it)
    mid = old.state_dict()
    write_deltalake(uri, ids_table(np.arange(200, 300)), mode="append")
    new = StreamingDataset(delta=str(uri), batch_size=20, shuffle=True)
    assert new.version == 1
    with pytest.raises(ResumeStateError, match=r"(?s)table changed within epoch 0.*version=0"):
        new.load_state_dict(mid)
    # resuming on the version the epoch started with is exact
    pinned = StreamingDataset(delta=str(uri), version=0, batch_size=20, shuffle=True)
    pinned.load_state_dict(mid)
    assert len(epoch_ids(pinned)) == 180
    # at an epoch boundary the next epoch reads the new version
    new.load_state_dict(old.resume_state(1, 0))
    assert epoch_ids(new) == list(range(300))
    # a state of another table is refused even at a boundary
    other = tmp_path / "other"
    write_deltalake(other, ids_table(np.arange(200)))
    with pytest.raises(ResumeStateError, match="dataset_fingerprint"):
        StreamingDataset(delta=str(other)).load_state_dict(old.resume_state(1, 0))
