"""The tools know the columnar index: gc removes only expired versions' forms, verify checks
them, ``verify --repair`` writes the missing and damaged ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from sparkshard import ShardWriter
from sparkshard.cli import main
from sparkshard.dataset.index_files import columnar_key, columnar_problem
from sparkshard.dataset.versions import version_key
from sparkshard.storage import LocalStore
from sparkshard.tools.gc import apply_gc, plan_gc
from sparkshard.tools.verify import verify_dataset


def _dataset(path: Path, versions: int) -> Path:
    for v in range(versions):
        table = pa.table({"id": np.arange(v * 100, (v + 1) * 100, dtype=np.int64)})
        mode = "overwrite" if v == 0 else "append"
        with ShardWriter(path, size_limit=1500, compression="zstd", mode=mode) as writer:
            writer.write_batch(table)
    return path


def _columnar(path: Path) -> list[str]:
    return sorted(p.name for p in (path / "_sparkshard" / "versions").glob("*.columnar"))


def test_gc_removes_the_columnar_forms_of_expired_versions_only(tmp_path: Path) -> None:
    path = _dataset(tmp_path / "ds", 3)
    store = LocalStore(path)
    (path / columnar_key(version_key(1))).unlink()  # an old version that never had one
    plan = plan_gc(store, retain=1, min_age=0)
    assert plan.columnar == [columnar_key(version_key(2))]
    apply_gc(store, plan)
    assert _columnar(path) == ["0000000003.columnar"]
    assert columnar_problem(store, version_key(3), store.read(version_key(3))) is None
    assert plan_gc(store, retain=1, min_age=0).empty


def test_verify_reports_a_damaged_columnar_form_and_repair_rewrites_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _dataset(tmp_path / "ds", 2)
    side = path / columnar_key(version_key(2))
    side.write_bytes(side.read_bytes()[:-1])
    (path / columnar_key(version_key(1))).unlink()
    report = verify_dataset(LocalStore(path), all_versions=True)
    assert [p.where for p in report.problems] == [columnar_key(version_key(2))]
    assert "--repair" in report.problems[0].what
    assert main(["verify", str(path), "--repair", "--all-versions"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {columnar_key(version_key(1))}" in out
    assert f"wrote {columnar_key(version_key(2))}" in out
    assert verify_dataset(LocalStore(path), all_versions=True).ok
    assert _columnar(path) == ["0000000001.columnar", "0000000002.columnar"]
