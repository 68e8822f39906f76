"""One column of a batch as readers return it, restored from its stored columns.

Both readers (MDS shards, :mod:`loader.read.reader`; tables read in place,
:mod:`loader.tables.reader`) gather a batch's stored columns their own way and hand them
here, so a batch's types are one definition whatever the source.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from loader.read.spans import FileSpans
from sparkshard.format.schema import ColumnSpec
from sparkshard.format.values import from_stored, restores_values

__all__ = ["restore_column"]

_NUMPY_UNITS = {
    "date": "datetime64[D]",
    "timestamp": "datetime64",
    "time": "timedelta64",
    "duration": "timedelta64",
}


def restore_column(spec: ColumnSpec, columns: dict[str, Any], plain: bool = False) -> Any:
    """Column ``spec`` of a batch as a reader returns it, from the batch's stored columns
    (values, and the null mask ``<name>__null`` of a nullable column): numbers as arrays
    (numpy ``bool``, ``datetime64`` or ``timedelta64`` for logical types), a
    ``numpy.ma.MaskedArray`` when nullable (``plain``: only when this batch has nulls there,
    as :func:`loader.transforms.to_numpy` leaves it); variable-size values as a list (None
    for nulls), or still :class:`~loader.read.spans.FileSpans` when they are bytes by
    reference.
    """
    values = columns.get(spec.name)
    if values is None:  # an empty batch
        return np.empty(0)
    mask = columns[spec.null_column].astype(np.bool_) if spec.nullable else None
    if isinstance(values, np.ndarray):
        if spec.logical == "bool":
            values = values.astype(np.bool_)
        elif spec.logical in _NUMPY_UNITS:
            unit = "D" if spec.logical == "date" else spec.unit
            kind = _NUMPY_UNITS[spec.logical].split("[")[0]
            values = values.astype(np.int64).view(f"{kind}[{unit}]")
        if mask is None or (plain and not mask.any()):
            return values
        if values.ndim > 1:  # one flag per sample masks all of its elements
            mask = np.broadcast_to(mask.reshape(-1, *([1] * (values.ndim - 1))), values.shape)
        return np.ma.MaskedArray(values, mask=mask)
    if isinstance(values, FileSpans):
        if not restores_values(spec):
            return values if mask is None else values.without(mask)
        values = values.views()
    restored = [from_stored(spec, v) for v in values] if restores_values(spec) else values
    if mask is not None and mask.any():
        restored = [None if m else v for v, m in zip(restored, mask.tolist())]
    return restored
