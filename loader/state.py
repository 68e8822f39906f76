"""The resume state: where a run is in its epochs, and what that position is valid for.

A state is two integers, ``epoch`` and ``sample_in_epoch`` (positions of the epoch's order
already consumed by all ranks together), plus a :class:`Fingerprint` of everything the order
depends on. Nothing about ranks, batch sizes or workers is in it: resuming recomputes the order
and skips ahead, so any topology with any batch size continues exactly where the run stopped.
A state whose fingerprint differs from the dataset's is refused with an error naming every
difference (mosaicml-streaming would silently resume into a different order). A state saved
by mosaicml-streaming (``epoch``, ``sample_in_epoch``, ``num_canonical_nodes``,
``shuffle_seed``, ``initial_physical_nodes``) is refused too: Mosaic's shuffle is another
permutation, so skipping its count of samples in ours would skip other samples. The error
says what resuming at either epoch boundary gives and how to ask for it explicitly.

Mixtures of streams add ``streams`` (one line per stream: its data and samples per epoch),
``mixing`` and ``mix_stratum``. The curriculum rule (:func:`loader.order.mix.weights.mixture_may_change`):
a state saved at an epoch boundary continues under the dataset's current mixture; within an
epoch a changed mixture is refused like any other difference. The same rule holds for a
table read in place (``delta=``/``parquet=``): another snapshot of the same table is accepted
at an epoch boundary and refused within an epoch, naming the version to resume on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from loader.order.mix.weights import MIXTURE_FIELDS, mixture_may_change
from sparkshard.errors import ResumeStateError

__all__ = ["MOSAIC_STATE_KEYS", "STATE_FORMAT", "Fingerprint", "ResumeState"]

STATE_FORMAT = "sparkshard.loader.state/1"
MOSAIC_STATE_KEYS = frozenset(
    {"epoch", "sample_in_epoch", "num_canonical_nodes", "shuffle_seed", "initial_physical_nodes"}
)


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
    # A mixture of streams (empty/zero for a single dataset): see loader.read.mixture.
    streams: tuple[str, ...] = ()
    mixing: str = ""
    mix_stratum: int = 0

    def differences(self, other: Fingerprint) -> list[str]:
        """One line per field that differs: ``name: state has X, dataset has Y``."""
        lines = [
            f"{f.name}: state has {getattr(other, f.name)!r}, dataset has {getattr(self, f.name)!r}"
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name) and f.name != "streams"
        ]
        for i in range(max(len(self.streams), len(other.streams))):
            theirs = other.streams[i] if i < len(other.streams) else "no such stream"
            mine = self.streams[i] if i < len(self.streams) else "no such stream"
            if theirs != mine:
                lines.append(f"stream {i}: state has {theirs!r}, dataset has {mine!r}")
        return lines


# What may differ between two snapshots of one table read in place (delta=/parquet=).
_TABLE_FIELDS = frozenset({"dataset_version", "dataset_fingerprint", "num_samples"})


def _same_table(a: Fingerprint, b: Fingerprint) -> bool:
    """Both fingerprints are of one table read in place (``kind:table:content``)."""
    parts_a, parts_b = a.dataset_fingerprint.split(":"), b.dataset_fingerprint.split(":")
    return (
        len(parts_a) == len(parts_b) == 3
        and parts_a[0] in ("delta", "parquet")
        and parts_a[:2] == parts_b[:2]
    )


# Fingerprint fields that are counts; a state carries them as ints (also after JSON).
_WHOLE = ("dataset_version", "num_samples", "shuffle_seed", "shuffle_block_size",
          "num_canonical_nodes", "mix_stratum")  # fmt: skip


def _whole(value: Any, name: str) -> int:
    """``value`` as the whole number a state holds, or a ResumeStateError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)  # JSON writers may turn 3 into 3.0
        raise ResumeStateError(
            f"resume state field {name!r} must be a whole number, got {value!r}; pass the dict "
            "state_dict() returned (or its JSON) unchanged"
        )
    return value


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
        if "format" not in obj and {"epoch", "sample_in_epoch"} <= set(obj) <= MOSAIC_STATE_KEYS:
            raise ResumeStateError(_mosaic_state_message(obj))
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
        optional = {"streams", "mixing", "mix_stratum"}  # added later: older states lack them
        names = ["epoch", "sample_in_epoch"] + [f.name for f in fields(Fingerprint)]
        missing = [name for name in names if name not in obj and name not in optional]
        if missing:
            raise ResumeStateError(f"resume state lacks {missing}; save it with state_dict()")
        values = {f.name: obj[f.name] for f in fields(Fingerprint) if f.name in obj}
        if "streams" in values:
            values["streams"] = tuple(values["streams"])  # a list after JSON
        for name in _WHOLE:
            if name in values and not (name == "dataset_version" and values[name] is None):
                values[name] = _whole(values[name], name)
        epoch, sample = (
            _whole(obj["epoch"], "epoch"),
            _whole(obj["sample_in_epoch"], "sample_in_epoch"),
        )
        return cls(epoch, sample, Fingerprint(**values))

    def check(self, expected: Fingerprint) -> None:
        """Raise :class:`ResumeStateError` naming every field that differs from ``expected``."""
        diffs = expected.differences(self.fingerprint)
        if not diffs:
            return
        names = (f.name for f in fields(expected))
        changed = {n for n in names if getattr(expected, n) != getattr(self.fingerprint, n)}
        mixture = bool(expected.streams or self.fingerprint.streams)
        if mixture_may_change(changed, self.sample_in_epoch, mixture):
            return  # the curriculum rule: a new mixture starts at an epoch boundary
        if _same_table(expected, self.fingerprint) and changed <= _TABLE_FIELDS:
            if self.sample_in_epoch == 0:
                return  # a table read in place moved on: the next epoch reads the new version
            raise ResumeStateError(
                f"the table changed within epoch {self.epoch} ({self.sample_in_epoch} of "
                f"{self.fingerprint.num_samples} samples consumed):\n  "
                + "\n  ".join(diffs)
                + f"\nResume epoch {self.epoch} on the version it started with (version="
                f"{self.fingerprint.dataset_version}), or start epoch {self.epoch + 1} on the "
                f"new one by loading the state with epoch={self.epoch + 1} and sample_in_epoch=0."
            )
        if mixture and changed <= MIXTURE_FIELDS:
            raise ResumeStateError(
                f"the mixture changed within epoch {self.epoch} ({self.sample_in_epoch} of "
                f"{self.fingerprint.num_samples} samples consumed):\n  "
                + "\n  ".join(diffs)
                + f"\nA mixture may change only between epochs: resume with the streams, "
                f"versions and weights epoch {self.epoch} started with, or start epoch "
                f"{self.epoch + 1} under the new mixture by loading the state with "
                f"epoch={self.epoch + 1} and sample_in_epoch=0."
            )
        raise ResumeStateError(
            "the resume state was saved for a different order than this dataset produces:\n  "
            + "\n  ".join(diffs)
            + "\nResume with the dataset version and shuffle settings the state was saved "
            "with, or start without load_state_dict()."
        )


def _mosaic_state_message(obj: Mapping[str, Any]) -> str:
    """Why a mosaicml-streaming state is refused, and the two exact ways to go on."""
    epoch = _whole(obj["epoch"], "epoch")
    sample = _whole(obj["sample_in_epoch"], "sample_in_epoch")
    seed = obj.get("shuffle_seed")
    keep_seed = (
        f" Pass shuffle_seed={seed} to StreamingDataset to keep the run's seed (the order is "
        "still sparkshard's own)."
        if seed is not None
        else ""
    )
    return (
        f"this is a mosaicml-streaming resume state (epoch={epoch}, sample_in_epoch={sample}), "
        "not one of ours, and it is not loaded: Mosaic's shuffle puts the samples of an epoch in "
        f"another order than sparkshard's, so skipping {sample} samples of our epoch {epoch} "
        "would skip other samples than the run saw (some would be seen twice, others never).\n"
        "Resume at an epoch boundary instead, where both orders agree on what is left:\n"
        f"  - start epoch {epoch} afresh (its {sample} samples already seen are seen again):\n"
        f"      loader.load_state_dict(dataset.resume_state(epoch={epoch}, sample_in_epoch=0))\n"
        f"  - or go on with epoch {epoch + 1} (the rest of epoch {epoch} is skipped):\n"
        f"      loader.load_state_dict(dataset.resume_state(epoch={epoch + 1}, "
        "sample_in_epoch=0))\n"
        "From then on state_dict() saves sparkshard states, which resume exactly." + keep_seed
    )
