"""``WideColumns``: a table's decoded row groups laid out as table-wide columns.

A shuffled batch of a table read in place takes its rows from many row groups (a shuffle
block spans several). Gathering them group by group costs a sort, a unique and one gather
and scatter per row group and column on every batch. Here row group ``k``'s stored column
fills rows ``starts[k]:starts[k + 1]`` of one array per column for the whole table, so a
batch is one gather per column, as the MDS path's one-shard batch is. A bytes column keeps
each row group's buffers where the decoder left them; only its ``(rows, 2)`` value bounds
and the ``(rows,)`` index of each value's buffer are table-wide.

The arrays are reserved with ``numpy.empty`` (``zeros`` for null masks), so only the rows of
decoded row groups are ever backed by memory. They are used only while the table's arrays
fit ``budget`` bytes and every row group holds a column in one form (same dtype and row
shape); otherwise :meth:`place` answers None and the reader gathers group by group. A row
group comes in pieces (the record batches it was decoded in), each copied to its rows.
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
        self._part: dict[str, np.ndarray] = {}  # bytes column -> (rows,) int32 buffer index
        self._buffers: dict[str, list[memoryview | None]] = {}  # bytes column -> buffers
        self._owned: dict[int, dict[str, range]] = {}  # row group -> its buffers' indices
        self.usable = True

    def place(self, shard: int, pieces: list[tuple[int, Stored]]) -> Stored | None:
        """Copy row group ``shard``'s pieces ``(rows, stored columns)`` into the table-wide
        columns and return the group's stored columns as views of those (so it holds no
        second copy); None once the table cannot be held this way (a column differs in form
        between pieces, or the columns would not fit the budget): the reader then keeps the
        pieces itself."""
        if not self.usable:
            return None
        if not all(self._fits(stored) for _, stored in pieces):
            self.give_up()
            return None
        a, b = int(self._starts[shard]), int(self._starts[shard + 1])
        row, present = a, set()
        for rows, stored in pieces:
            for name, values in stored.items():
                present.add(name)
                if not isinstance(values, ByteValues):
                    self._arrays[name][row : row + rows] = values
            row += rows
        placed: Stored = {}
        for name in present & self._arrays.keys():
            view = self._arrays[name][a:b]
            view.flags.writeable = False  # as the MDS path's views of a shard
            placed[name] = view
        owned = self._owned[shard] = {}
        for name in present & self._bounds.keys():
            values = ByteValues.concat([stored[name] for _, stored in pieces])  # type: ignore[misc]
            first = len(self._buffers[name])
            self._buffers[name].extend(values.buffers)
            owned[name] = range(first, first + len(values.buffers))
            self._part[name][a:b] = values.part + first
            self._bounds[name][a:b] = values.bounds
            placed[name] = ByteValues(values.buffers, values.part, self._bounds[name][a:b])
        self.resident[shard] = True
        return placed

    def drop(self, shard: int) -> None:
        """Row group ``shard`` left the reader's memory: its bytes buffers go with it."""
        self.resident[shard] = False
        for name, indices in self._owned.pop(shard, {}).items():
            for i in indices:
                self._buffers[name][i] = None

    def give_up(self) -> None:
        """Stop using the table-wide form (groups placed already keep their views)."""
        self.usable = False
        self.resident[:] = False
        self._arrays, self._bounds, self._part, self._buffers, self._owned = {}, {}, {}, {}, {}

    def gather(self, names: list[str], ids: np.ndarray) -> dict[str, Any]:
        """Stored columns ``names`` of rows ``ids`` (of resident row groups only): one
        gather per column. A null mask no placed group has reads as zeros; a bytes column
        comes out as its values' views."""
        columns: dict[str, Any] = {}
        for name in names:
            if name in self._arrays:
                columns[name] = self._arrays[name][ids]
            elif name in self._bounds:
                bounds = self._bounds[name][ids]
                buffers: list[Any] = self._buffers[name]
                columns[name] = cut(buffers, self._part[name][ids], bounds[:, 0], bounds[:, 1])
            else:
                columns[name] = np.zeros(len(ids), np.uint8)
        return columns

    def _fits(self, stored: Stored) -> bool:
        """Whether ``stored`` takes the form of the table-wide columns and they all fit the
        budget; reserves the columns ``stored`` is the first piece to have."""
        rows = int(self._starts[-1])
        arrays: dict[str, np.ndarray] = {}
        bytes_columns: list[str] = []
        for name, values in stored.items():
            if isinstance(values, ByteValues):
                if name in self._arrays:
                    return False
                if name not in self._bounds:
                    bytes_columns.append(name)
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
        held_bytes = sum(a.nbytes for a in [*self._arrays.values(), *arrays.values()])
        per_value = 2 * 8 + 4  # bounds and buffer index
        if held_bytes + (len(self._bounds) + len(bytes_columns)) * rows * per_value > self._budget:
            return False
        self._arrays.update(arrays)
        for name in bytes_columns:
            self._bounds[name] = np.empty((rows, 2), np.int64)
            self._part[name] = np.empty(rows, np.int32)
            self._buffers[name] = []
        return True
