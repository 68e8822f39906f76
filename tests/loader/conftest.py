"""Shared fixtures for the loader tests. Helper modules in this folder (``small_datasets``,
``simulate``, ``dist_job``) are importable by the tests below it."""

from __future__ import annotations

from pathlib import Path

import pytest
from small_datasets import write_dataset


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,000 samples in ~17 shards."""
    return write_dataset(tmp_path_factory.mktemp("small") / "ds", 1000)
