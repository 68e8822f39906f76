"""The resume state: where a run is in its epochs, and what that position is valid for.

A state is two integers, ``epoch`` and ``sample_in_epoch`` (positions of the epoch's order
already consumed by all ranks together), plus a :class:`Fingerprint` of everything the order
depends on. Nothing about ranks, batch sizes or workers is in it: resuming recomputes the order
and skips ahead, so any topology with any batch size continues exactly where the run stopped.
A state whose fingerprint differs from the dataset's is refused with an error naming every
difference (mosaicml-streaming would silently resume into a different order).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from sparkshard.errors import ResumeStateError

__all__ = ["STATE_FORMAT", "Fingerprint", "ResumeState"]

STATE_FORMAT = "sparkshard.loader.state/1"


@dataclass(frozen=True)
class Fingerprint:
    """Everything the global order of an epoch depends on."""

    dataset_version: int | None
    dataset_fingerprint: str
    num_samples: int
    shuffle: bool
    shuffle_seed: int
    shuffle_algo: str
    shuffle_block_size: int
    num_canonical_nodes: int

    def differences(self, other: Fingerprint) -> list[str]:
        """One line per field that differs: ``name: state has X, dataset has Y``."""
        return [
            f"{f.name}: state has {getattr(other, f.name)!r}, dataset has {getattr(self, f.name)!r}"
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]


@dataclass(frozen=True)
class ResumeState:
    """Epoch and samples consumed in it, valid for one :class:`Fingerprint`."""

    epoch: int
    sample_in_epoch: int
    fingerprint: Fingerprint

    def __post_init__(self) -> None:
        if self.epoch < 0:
            raise ResumeStateError(f"epoch must be >= 0, got {self.epoch}")
        if not 0 <= self.sample_in_epoch <= self.fingerprint.num_samples:
            raise ResumeStateError(
                f"sample_in_epoch must lie in [0, {self.fingerprint.num_samples}] (the dataset's "
                f"size), got {self.sample_in_epoch}"
            )

    def to_dict(self) -> dict[str, Any]:
        """A flat dict of plain values (JSON- and torch.save-friendly)."""
        return {
            "format": STATE_FORMAT,
            "epoch": self.epoch,
            "sample_in_epoch": self.sample_in_epoch,
            **asdict(self.fingerprint),
        }

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> ResumeState:
        """Parse :meth:`to_dict`'s output, refusing anything else with a clear error."""
        if not isinstance(obj, Mapping):
            raise ResumeStateError(
                f"expected a resume state dict from state_dict(), got {type(obj).__name__}"
            )
        if obj.get("format") != STATE_FORMAT:
            hint = (
                " It looks like a mosaicml-streaming state, which has no fingerprint of the data "
                "and cannot be resumed safely; start the epoch afresh instead."
                if "sample_in_epoch" in obj
                else ""
            )
            raise ResumeStateError(
                f"expected a state with format {STATE_FORMAT!r}, got {obj.get('format')!r}.{hint}"
            )
        names = ["epoch", "sample_in_epoch"] + [f.name for f in fields(Fingerprint)]
        missing = [name for name in names if name not in obj]
        if missing:
            raise ResumeStateError(f"resume state lacks {missing}; save it with state_dict()")
        values = {f.name: obj[f.name] for f in fields(Fingerprint)}
        return cls(int(obj["epoch"]), int(obj["sample_in_epoch"]), Fingerprint(**values))

    def check(self, expected: Fingerprint) -> None:
        """Raise :class:`ResumeStateError` naming every field that differs from ``expected``."""
        diffs = expected.differences(self.fingerprint)
        if diffs:
            raise ResumeStateError(
                "the resume state was saved for a different order than this dataset produces:\n  "
                + "\n  ".join(diffs)
                + "\nResume with the dataset version and shuffle settings the state was saved "
                "with, or start without load_state_dict()."
            )
