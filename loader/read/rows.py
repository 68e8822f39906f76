"""``Rows``: a batch's variable-size column whose values share one shape, kept as one matrix.

A list column (``list<float>``, say) is variable-size by type, so a batch returns it as a
list of arrays; when every value of a batch has the same length (embeddings), those arrays
are the rows of one ``(rows, length)`` matrix. :class:`Rows` is that list, and it keeps the
matrix: a DataLoader worker's hand-off (:mod:`loader.transport`) sends the matrix as one
array instead of checking and stacking the rows again. It is a ``list`` in every other way;
a list whose rows were replaced, added or removed is no longer :meth:`~Rows.intact`, and
then travels value by value like any other list.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

__all__ = ["Rows"]


class Rows(list[Any]):
    """The rows of ``matrix`` (views, not copies) as a list, which remembers the matrix."""

    __slots__ = ("_views", "matrix")

    def __init__(self, matrix: np.ndarray) -> None:
        if matrix.ndim < 2:
            raise ValueError(f"Rows needs a matrix of at least 2 dimensions, got {matrix.shape}")
        super().__init__(matrix)
        self.matrix = matrix
        self._views = tuple(self)

    def intact(self) -> bool:
        """Whether the list still holds exactly the matrix's rows, in order (a transform may
        have changed it: a list is mutable)."""
        views = self._views
        return len(self) == len(views) and all(map(operator.is_, self, views))
