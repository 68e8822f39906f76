"""FieldSpec and batch transforms as pure functions; conversions to torch and numpy."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
import torch

from loader.transforms import BatchTransforms, FieldSpec, check_picklable, to_numpy, to_torch


def scale(column: np.ndarray) -> np.ndarray:
    return column.astype(np.float32) / 16


def as_tensor(value: Any) -> torch.Tensor:
    return torch.as_tensor(value) * 2


def test_column_then_batch_transform_and_pickling() -> None:
    transforms = BatchTransforms.of([FieldSpec("x", scale)], lambda b: (b["x"], b["y"]))
    batch = {"x": np.array([16, 8], np.uint8), "y": ["a", "b"]}
    x, y = transforms(batch)
    assert x.dtype == np.float32 and x.tolist() == [1.0, 0.5] and y == ["a", "b"]
    assert batch["x"].dtype == np.uint8  # the input batch is not modified
    with pytest.raises(TypeError, match="batch_transform cannot be pickled"):
        check_picklable(transforms)
    portable = BatchTransforms.of([FieldSpec("x", scale)], None)
    check_picklable(portable)
    assert pickle.loads(pickle.dumps(portable)) == portable


def test_per_sample_results_are_stacked_when_they_can_be() -> None:
    tensors = FieldSpec("x", as_tensor, per_sample=True).apply(np.arange(6).reshape(3, 2))
    assert isinstance(tensors, torch.Tensor) and tensors.tolist() == [[0, 2], [4, 6], [8, 10]]
    ragged = FieldSpec("x", np.arange, per_sample=True).apply([1, 2])
    assert isinstance(ragged, list) and [len(r) for r in ragged] == [1, 2]
    words = FieldSpec("s", str.upper, per_sample=True).apply(["a", "b"])
    assert words == ["A", "B"]


def _channels_first(image: np.ndarray) -> np.ndarray:
    return image.transpose(2, 0, 1).astype(np.float32)  # a strided (not C-ordered) view


def test_per_sample_arrays_stack_into_one_c_ordered_batch() -> None:
    images = [np.full((4, 5, 3), i, np.uint8) for i in range(3)]
    stacked = FieldSpec("img", _channels_first, per_sample=True).apply(images)
    assert stacked.flags.c_contiguous and stacked.dtype == np.float32
    assert (stacked == np.stack([_channels_first(i) for i in images])).all()
    mixed = FieldSpec("x", lambda v: v, per_sample=True).apply([np.int8(1), 2.5, np.int64(3)])
    assert mixed.dtype == np.float64 and mixed.tolist() == [1.0, 2.5, 3.0]
    tensor = to_torch(stacked)  # already C-ordered: no copy on the way to a tensor
    assert tensor.data_ptr() == stacked.ctypes.data


def test_field_spec_validation() -> None:
    with pytest.raises(ValueError, match="column name"):
        FieldSpec("")
    with pytest.raises(TypeError, match="must be callable"):
        FieldSpec("x", transform=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="per_sample=True but no transform"):
        FieldSpec("x", per_sample=True)
    with pytest.raises(ValueError, match=r"\['x'\] have more than one FieldSpec"):
        BatchTransforms.of([FieldSpec("x"), FieldSpec("x", scale)], None)
    assert not BatchTransforms.of(None, None)


def test_conversions_keep_nulls_and_make_contiguous_tensors() -> None:
    masked = np.ma.MaskedArray([1, 2], mask=[False, True])
    clean = np.ma.MaskedArray([1, 2], mask=[False, False])
    strided = np.arange(12, dtype=np.int64).reshape(3, 4)[:, ::2]
    batch = {"m": masked, "c": clean, "s": strided, "t": ["a"], "pair": (strided, "z")}
    out = to_torch(batch)
    assert out["m"] is masked and out["t"] == ["a"]
    assert isinstance(out["c"], torch.Tensor) and out["c"].tolist() == [1, 2]
    assert out["s"].is_contiguous() and out["s"].tolist() == strided.tolist()
    assert isinstance(out["pair"], tuple) and out["pair"][1] == "z"
    plain = to_numpy(batch)
    assert type(plain["c"]) is np.ndarray and plain["m"] is masked
    days = np.array(["2024-01-01", "2024-01-02"], "datetime64[D]")
    dated = {"d": np.ma.MaskedArray(days, mask=[False, False]), "n": np.ma.MaskedArray(days)}
    # No tensor for dates: without nulls both give the plain array, with nulls the masks.
    for convert in (to_torch, to_numpy):
        out = convert(dated)
        assert type(out["d"]) is np.ndarray and out["d"].tolist() == days.tolist()
    dated["n"].mask = [True, False]
    assert to_torch(dated)["n"] is dated["n"] and to_numpy(dated)["n"] is dated["n"]
