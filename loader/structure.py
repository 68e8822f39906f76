"""Walking a batch's structure: the dicts and tuples (namedtuples keep their type) that hold
its columns. Every conversion of a whole batch (to tensors, to numpy, to a device, pinned,
emptied) is :func:`map_values` with its own function for what lies inside them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["map_values"]


def map_values(fn: Callable[[Any], Any], batch: Any) -> Any:
    """``batch`` with ``fn`` applied to every value inside its dicts and tuples."""
    if isinstance(batch, dict):
        return {key: map_values(fn, value) for key, value in batch.items()}
    if isinstance(batch, tuple):
        items = [map_values(fn, value) for value in batch]
        return type(batch)(*items) if hasattr(batch, "_fields") else tuple(items)
    return fn(batch)
