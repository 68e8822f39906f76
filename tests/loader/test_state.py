"""The resume state: a few integers and a fingerprint, refused with a clear error on mismatch."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from loader.state import STATE_FORMAT, Fingerprint, ResumeState
from sparkshard.errors import ResumeStateError

FINGERPRINT = Fingerprint(
    dataset_version=3,
    dataset_fingerprint="ab12",
    num_samples=1000,
    shuffle=True,
    shuffle_seed=9176,
    shuffle_algo="block",
    shuffle_block_size=262144,
    num_canonical_nodes=2,
)


def test_round_trips_through_json() -> None:
    state = ResumeState(epoch=4, sample_in_epoch=640, fingerprint=FINGERPRINT)
    obj = json.loads(json.dumps(state.to_dict()))
    assert obj["format"] == STATE_FORMAT
    assert obj["epoch"] == 4 and obj["sample_in_epoch"] == 640
    assert ResumeState.from_dict(obj) == state


def test_matching_state_passes_the_check() -> None:
    ResumeState(0, 0, FINGERPRINT).check(replace(FINGERPRINT))


def test_mismatch_names_every_difference() -> None:
    state = ResumeState(1, 10, replace(FINGERPRINT, shuffle_seed=1, num_canonical_nodes=4))
    with pytest.raises(ResumeStateError) as info:
        state.check(FINGERPRINT)
    message = str(info.value)
    assert "shuffle_seed: state has 1, dataset has 9176" in message
    assert "num_canonical_nodes: state has 4, dataset has 2" in message
    assert "dataset_version" not in message


def test_other_dataset_content_is_refused() -> None:
    state = ResumeState(1, 10, replace(FINGERPRINT, dataset_version=2, dataset_fingerprint="ff"))
    with pytest.raises(ResumeStateError, match="dataset_fingerprint: state has 'ff'"):
        state.check(FINGERPRINT)


def test_mosaic_state_is_refused_with_a_hint() -> None:
    mosaic = {"epoch": 1, "sample_in_epoch": 5, "num_canonical_nodes": 1, "shuffle_seed": 9176}
    with pytest.raises(ResumeStateError, match="mosaicml-streaming"):
        ResumeState.from_dict(mosaic)


def test_incomplete_or_invalid_states_are_refused() -> None:
    obj = ResumeState(0, 0, FINGERPRINT).to_dict()
    del obj["shuffle_algo"]
    with pytest.raises(ResumeStateError, match="shuffle_algo"):
        ResumeState.from_dict(obj)
    with pytest.raises(ResumeStateError, match="sample_in_epoch"):
        ResumeState(0, 1001, FINGERPRINT)
    with pytest.raises(ResumeStateError, match="epoch"):
        ResumeState(-1, 0, FINGERPRINT)
    with pytest.raises(ResumeStateError, match="dict"):
        ResumeState.from_dict([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "shown"), [("abc", "'abc'"), (None, "None"), (1.7, "1.7")])
def test_a_state_with_a_malformed_epoch_is_refused_naming_it(value: object, shown: str) -> None:
    good = ResumeState(2, 5, FINGERPRINT).to_dict()
    for field in ("epoch", "sample_in_epoch", "num_canonical_nodes"):
        with pytest.raises(
            ResumeStateError,
            match=rf"field '{field}' must be a whole number, got {re.escape(shown)}",
        ):
            ResumeState.from_dict({**good, field: value})
    assert ResumeState.from_dict({**good, "epoch": 2.0}).epoch == 2  # JSON may say 2.0
