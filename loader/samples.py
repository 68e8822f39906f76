"""The per-sample path: Mosaic-style subclass overrides, indexing and collation.

Mosaic's documentation adds transforms by subclassing ``StreamingDataset`` and overriding
``__getitem__`` (or ``get_item``, which Mosaic's ``__getitem__`` calls for each index). A
dataset whose class overrides either one is read sample by sample, through the override, on
every path (iterating it, torch's ``DataLoader(ds)``, ``StreamingDataLoader`` with or without
workers), in the order and with the resume guarantees of the batch path: only how a position
of the order becomes a sample changes. :func:`overrides` decides it once, at construction.

:func:`collate_samples` is torch's ``default_collate`` with one change: numpy arrays of one
batch are stacked with numpy first (one copy per batch into a fresh, writable array), so
torch never wraps a read-only view of a shard (no "The given NumPy array is not writable"
warning, and in-place augmentation of collated batches works).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from loader.structure import map_values

__all__ = [
    "OVERRIDABLE",
    "collate_samples",
    "empty_like",
    "is_index_list",
    "overrides",
    "sample_index",
]

OVERRIDABLE = ("__getitem__", "get_item")


def overrides(cls: type, base: type) -> tuple[str, ...]:
    """The per-sample methods of ``base`` that subclass ``cls`` overrides (Mosaic's names)."""
    return tuple(name for name in OVERRIDABLE if getattr(cls, name) is not getattr(base, name))


def sample_index(at: Any, size: int) -> int:
    """An int index of ``dataset[at]`` in ``[0, size)`` (negative counts from the end)."""
    if not isinstance(at, (int, np.integer)) or isinstance(at, (bool, np.bool_)):
        raise TypeError(
            "dataset indexes are ints, slices, lists of ints or integer numpy arrays, got "
            f"{type(at).__name__}"
        )
    index = int(at)
    if not -size <= index < size:
        raise IndexError(f"sample index must lie in [-{size}, {size}), got {index}")
    return index % size


def is_index_list(at: Any) -> bool:
    """Whether ``dataset[at]`` is a list of samples, one per entry of ``at`` (entries may be
    lists again, as in Mosaic). Boolean masks are refused: pass ``np.flatnonzero(mask)``."""
    if isinstance(at, np.ndarray):
        if at.dtype.kind not in "iu":
            raise TypeError(
                f"index arrays must hold integers, got dtype {at.dtype}; for a boolean mask "
                "pass np.flatnonzero(mask)"
            )
        return True
    return isinstance(at, Sequence) and not isinstance(at, (str, bytes))


def _stack_arrays(batch: Sequence[np.ndarray], *, collate_fn_map: Any = None) -> Any:
    import torch
    from torch.utils.data._utils.collate import collate_numpy_array_fn

    first = batch[0]
    if first.dtype.hasobject or first.dtype.kind in "SaUO" or first.dtype.byteorder == ">":
        return collate_numpy_array_fn(batch, collate_fn_map=collate_fn_map)  # torch's errors
    if any(a.shape != first.shape or a.dtype != first.dtype for a in batch):
        return collate_numpy_array_fn(batch, collate_fn_map=collate_fn_map)
    return torch.from_numpy(np.stack(batch))  # one writable copy for the whole batch


def _views(batch: Sequence[Any], *, collate_fn_map: Any = None) -> list[bytes]:
    return [bytes(view) for view in batch]  # bytes columns: torch keeps bytes as a list


def collate_samples(samples: list[Any]) -> Any:
    """torch's ``default_collate``, with numpy arrays stacked in one writable copy."""
    from torch.utils.data._utils.collate import collate, default_collate_fn_map

    mapping: dict[Any, Callable[..., Any]] = {
        **default_collate_fn_map,
        np.ndarray: _stack_arrays,
        memoryview: _views,
    }
    return collate(samples, collate_fn_map=mapping)


def empty_like(batch: Any) -> Any:
    """A batch of the same structure with zero rows (arrays and tensors sliced, lists empty):
    what a rank yields for a last step with nothing left to read under ``padding="none"``."""
    return map_values(_no_rows, batch)


def _no_rows(value: Any) -> Any:
    if isinstance(value, list):
        return []
    if hasattr(value, "shape") and len(value.shape) > 0:
        return value[:0]
    return value
