"""``WideColumns``: a table's decoded row groups laid out as table-wide columns.

A shuffled batch of a table read in place takes its rows from many row groups (a shuffle
block spans several). Gathering them group by group costs a sort, a unique and one gather
and scatter per row group and column on every batch. Here row group ``k``'s stored column
fills rows ``starts[k]:starts[k + 1]`` of one array per column for the whole table, so a
batch is one gather per column, as the MDS path's one-shard batch is. A bytes column keeps
each row group's data where the decoder left it; only its ``(rows, 2)`` value bounds are
table-wide.

The arrays are reserved with ``numpy.empty`` (``zeros`` for null masks), so only the rows of
decoded row groups are ever backed by memory. They are used only while the table's arrays
fit ``budget`` bytes and every row group holds a column in one form (same dtype and row
shape); otherwise :meth:`place` answers None and the reader gathers group by group.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from loader.read.spans import cut
from loader.tables.columns import ByteValues, Stored

__all__ = ["WideColumns"]


class WideColumns:
    """Table-wide stored columns of one reader's decoded row groups (see the module)."""

    def __init__(self, starts: np.ndarray, budget: int, masks: set[str]) -> None:
        self._masks = masks  # the null masks' names
        self._starts = starts  # (row groups + 1,) first row of each group, then the total
        self.resident = np.zeros(len(starts) - 1, np.bool_)  # (row groups,)
        self._budget = budget
        self._arrays: dict[str, np.ndarray] = {}
        self._bounds: dict[str, np.ndarray] = {}  # bytes column -> (rows, 2) int64
        self._data: dict[str, list[memoryview | None]] = {}  # bytes column -> data per group
        self.usable = True

    def place(self, shard: int, stored: Stored) -> Stored | None:
        """Copy row group ``shard``'s stored columns into the table-wide ones and return
        them as views of those (so the group holds no second copy); None once the table
        cannot be held this way (its columns differ in form between row groups, or would
        not fit the budget): the reader then keeps ``stored`` itself."""
        if not self.usable:
            return None
        if not self._fits(stored):
            self.give_up()
            return None
        a, b = int(self._starts[shard]), int(self._starts[shard + 1])
        placed: Stored = {}
        for name, values in stored.items():
            if isinstance(values, ByteValues):
                self._bounds[name][a:b] = values.bounds
                self._data[name][shard] = values.data
                placed[name] = ByteValues(values.data, self._bounds[name][a:b])
            else:
                self._arrays[name][a:b] = values
                view = self._arrays[name][a:b]
                view.flags.writeable = False  # as the MDS path's views of a shard
                placed[name] = view
        self.resident[shard] = True
        return placed

    def drop(self, shard: int) -> None:
        """Row group ``shard`` left the reader's memory: its bytes data goes with it."""
        self.resident[shard] = False
        for data in self._data.values():
            data[shard] = None

    def give_up(self) -> None:
        """Stop using the table-wide form (groups placed already keep their views)."""
        self.usable = False
        self.resident[:] = False
        self._arrays, self._bounds, self._data = {}, {}, {}

    def gather(self, names: list[str], ids: np.ndarray, shards: np.ndarray) -> dict[str, Any]:
        """Stored columns ``names`` of rows ``ids`` (in row groups ``shards``, all resident):
        one gather per column. A null mask no placed group has reads as zeros; a bytes
        column comes out as its values' views."""
        columns: dict[str, Any] = {}
        for name in names:
            if name in self._arrays:
                columns[name] = self._arrays[name][ids]
            elif name in self._bounds:
                bounds = self._bounds[name][ids]
                data: list[Any] = self._data[name]
                columns[name] = cut(data, shards, bounds[:, 0], bounds[:, 1])
            else:
                columns[name] = np.zeros(len(ids), np.uint8)
        return columns

    def _fits(self, stored: Stored) -> bool:
        """Whether ``stored`` takes the form of the table-wide columns and they all fit the
        budget; reserves the columns ``stored`` is the first row group to have."""
        rows, groups = int(self._starts[-1]), len(self.resident)
        arrays: dict[str, np.ndarray] = {}
        bounds: dict[str, np.ndarray] = {}
        for name, values in stored.items():
            if isinstance(values, ByteValues):
                if name in self._arrays:
                    return False
                if name not in self._bounds:
                    bounds[name] = np.empty((rows, 2), np.int64)
                continue
            held = self._arrays.get(name)
            if name in self._bounds or (
                held is not None
                and (held.dtype, held.shape[1:]) != (values.dtype, values.shape[1:])
            ):
                return False
            if held is None:  # masks start all zeros: rows of groups without nulls stay so
                make = np.zeros if name in self._masks else np.empty
                arrays[name] = make((rows, *values.shape[1:]), values.dtype)
        reserved = [
            *self._arrays.values(),
            *self._bounds.values(),
            *arrays.values(),
            *bounds.values(),
        ]
        if sum(a.nbytes for a in reserved) > self._budget:
            return False
        self._arrays.update(arrays)
        self._bounds.update(bounds)
        self._data.update({name: [None] * groups for name in bounds})
        return True
