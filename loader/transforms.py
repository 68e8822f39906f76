"""Per-column and whole-batch transforms, applied in the DataLoader workers.

    fields = [FieldSpec("image", transform=scale_pixels), FieldSpec("label", transform=to_int64)]
    loader = StreamingDataLoader(dataset, batch_size=64, num_workers=2, fields=fields,
                                 batch_transform=augment)

A :class:`FieldSpec` names a column and the function applied to it (as in DeltaTorch).
By default the function receives the whole column of a batch (a numpy array of shape
``(batch, ...)``, a ``numpy.ma.MaskedArray`` when the column has nulls, or a list for
strings, bytes and ragged arrays) and returns the new column; with ``per_sample=True`` it
receives one value at a time and the results are stacked. Columns no FieldSpec names pass
through unchanged. The batch transform then receives the whole batch (a dict) and may return
anything (a dict, or a tuple such as ``(x, y)``).

Workers started with ``spawn`` or ``forkserver`` receive transforms by pickle: define them at
module level (not as lambdas or closures). :func:`check_picklable` says which one is not.
Conversions between numpy and torch (:func:`to_torch`, :func:`to_numpy`) live here too: they
are the last step of a batch's trip through a worker.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from loader.structure import map_values

__all__ = ["BatchTransforms", "FieldSpec", "check_picklable", "to_numpy", "to_torch"]

Transform = Callable[[Any], Any]


@dataclass(frozen=True)
class FieldSpec:
    """A column and the transform applied to it in the workers.

    Args:
        name: the column (as stored; see ``StreamingDataset(columns=...)`` to select columns).
        transform: ``f(column) -> column``, or ``f(value) -> value`` with ``per_sample``.
        per_sample: apply ``transform`` to each sample's value and stack the results (numpy
            arrays and tensors of one shape are stacked; anything else stays a list).
    """

    name: str
    transform: Transform | None = None
    per_sample: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"FieldSpec needs a column name, got {self.name!r}")
        if self.transform is not None and not callable(self.transform):
            raise TypeError(
                f"FieldSpec({self.name!r}).transform must be callable, got "
                f"{type(self.transform).__name__}"
            )
        if self.per_sample and self.transform is None:
            raise ValueError(f"FieldSpec({self.name!r}) has per_sample=True but no transform")

    def apply(self, column: Any) -> Any:
        if self.transform is None:
            return column
        if not self.per_sample:
            return self.transform(column)
        return _stack([self.transform(value) for value in column])


def _stack(values: list[Any]) -> Any:
    """Stack same-shaped arrays (or tensors, when torch is in use); else keep the list."""
    if not values:
        return values
    torch = sys.modules.get("torch")
    if torch is not None and all(isinstance(v, torch.Tensor) for v in values):
        if len({tuple(v.shape) for v in values}) == 1:
            return torch.stack(values)
        return values
    if all(isinstance(v, (np.ndarray, np.generic, int, float)) for v in values):
        shapes = {np.shape(v) for v in values}
        if len(shapes) == 1:
            arrays = [np.asarray(v) for v in values]
            # Into a C-ordered batch, whatever the values' layout (a transposed image, say):
            # the one copy a stack makes is then the only one (tensors need C order).
            out = np.empty((len(arrays), *arrays[0].shape), np.result_type(*arrays))
            return np.stack(arrays, out=out)
    return values


@dataclass(frozen=True)
class BatchTransforms:
    """What a worker does to each batch: column transforms, then the batch transform."""

    fields: tuple[FieldSpec, ...] = ()
    batch_transform: Transform | None = None

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        if not all(isinstance(f, FieldSpec) for f in self.fields):
            raise TypeError("fields= takes FieldSpec objects, e.g. [FieldSpec('image', fn)]")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"columns {repeated} have more than one FieldSpec; merge them")
        if self.batch_transform is not None and not callable(self.batch_transform):
            raise TypeError(
                f"batch_transform must be callable, got {type(self.batch_transform).__name__}"
            )

    @classmethod
    def of(
        cls, fields: Sequence[FieldSpec] | None, batch_transform: Transform | None
    ) -> BatchTransforms:
        return cls(tuple(fields or ()), batch_transform)

    def __bool__(self) -> bool:
        return bool(self.fields) or self.batch_transform is not None

    def __call__(self, batch: dict[str, Any]) -> Any:
        if self.fields:
            batch = dict(batch)
            for spec in self.fields:
                if spec.name not in batch:
                    raise KeyError(
                        f"FieldSpec({spec.name!r}) names a column the batch does not have; "
                        f"its columns are {sorted(batch)}"
                    )
                batch[spec.name] = spec.apply(batch[spec.name])
        return batch if self.batch_transform is None else self.batch_transform(batch)


def check_picklable(transforms: BatchTransforms) -> None:
    """Raise TypeError naming the transform that cannot travel to spawned workers."""
    parts: list[tuple[str, Any]] = [
        (f"FieldSpec({f.name!r}).transform", f) for f in transforms.fields
    ]
    parts.append(("batch_transform", transforms.batch_transform))
    for what, obj in parts:
        try:
            pickle.dumps(obj)
        except Exception as exc:
            raise TypeError(
                f"{what} cannot be pickled ({exc}), and workers started with 'spawn' or "
                "'forkserver' receive it by pickle: define it as a module-level function "
                "(not a lambda or a closure), or use num_workers=0"
            ) from None


def _plain(value: Any) -> Any:
    """A MaskedArray without nulls becomes its data; one with nulls stays masked."""
    if type(value) is np.ma.MaskedArray and not value.mask.any():
        return value.data
    return value


def to_numpy(batch: Any) -> Any:
    """Nullable columns without nulls become plain arrays (for JAX, TF or numpy users)."""
    return map_values(_plain, batch)


def to_torch(batch: Any) -> Any:
    """Numeric numpy arrays become contiguous tensors (zero-copy when possible), inside dicts
    and tuples; tensors become contiguous; everything else stays as it is.

    A nullable column becomes a tensor when none of the batch's values is null (its plain
    array when it is not numeric, as :func:`to_numpy` makes it: dates, say); a batch with
    nulls keeps it as a ``numpy.ma.MaskedArray`` so the nulls are not silently lost.
    """
    return map_values(_tensor, batch)


def _tensor(column: Any) -> Any:
    import torch

    if isinstance(column, torch.Tensor):
        return column.contiguous()
    value = _plain(column)
    if type(value) is np.ndarray and value.dtype.kind in "biuf" and value.dtype.byteorder in "=|<":
        if not (value.flags.writeable and value.flags.c_contiguous):
            value = np.array(value, order="C")
        return torch.from_numpy(value)
    return value  # as to_numpy leaves it: the same whether a DataLoader worker read it
