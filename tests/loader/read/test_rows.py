"""``Rows``: a list of a matrix's rows that knows whether it still is one."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loader.read.rows import Rows


@given(rows=st.integers(2, 6), width=st.integers(1, 4), edit=st.integers(0, 4))
def test_rows_are_intact_until_the_list_changes(rows: int, width: int, edit: int) -> None:
    matrix = np.arange(rows * width, dtype=np.int32).reshape(rows, width)
    values = Rows(matrix)
    assert values.intact() and len(values) == rows
    assert all(np.shares_memory(v, matrix) for v in values)  # views, not copies
    assert [v.tolist() for v in values] == matrix.tolist()
    edits = [
        lambda v: v.append(np.zeros(width, np.int32)),
        lambda v: v.reverse(),
        lambda v: v.pop(),
        lambda v: v.__setitem__(0, v[0].copy()),
        lambda v: v.clear(),
    ]
    edits[edit](values)
    assert not values.intact()


def test_no_rows_are_intact_rows() -> None:
    values = Rows(np.empty((0, 3), np.float32))
    assert values.intact() and values == [] and values.matrix.shape == (0, 3)


def test_rows_pickle_and_copy_as_equal_lists() -> None:
    values = Rows(np.arange(6.0).reshape(3, 2))
    for other in (pickle.loads(pickle.dumps(values)), copy.copy(values), copy.deepcopy(values)):
        assert isinstance(other, Rows) and other.intact()
        assert [v.tolist() for v in other] == [v.tolist() for v in values]


def test_rows_need_a_matrix() -> None:
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        Rows(np.arange(3))
