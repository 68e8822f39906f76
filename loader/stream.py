"""``Stream``: one dataset of a mixture, with its weight (Mosaic-compatible names).

A mixture (``StreamingDataset(streams=[...])``) draws each epoch's samples from several
datasets. Each :class:`Stream` names where its dataset lives (``remote``/``local``/``split``, as
for a single dataset), which version it is pinned to, and at most one weight:

- ``proportion`` (relative): the stream's share of the epoch; shares are normalized over all
  streams, and the epoch holds ``epoch_size`` samples (default: all streams' samples together).
- ``repeat`` (absolute): a multiplier on the stream's size; ``2`` reads every sample twice an
  epoch, ``0.5`` half of them (a seeded subset, see :mod:`loader.mixing`).
- ``choose`` (absolute): the exact number of samples per epoch.
- none: the stream's size (every sample once), or, when no stream has a weight and an
  ``epoch_size`` is given, a share proportional to its size.

Relative and absolute weights cannot be mixed in one mixture. The options are checked here,
once; how they combine is checked by :func:`loader.mixing.samples_per_stream`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Stream"]


@dataclass(frozen=True)
class Stream:
    """One dataset of a mixture and its weight (at most one of proportion, repeat, choose).

    ``verify_hashes`` (``None``: the dataset's setting) checks each shard against the hash in
    its index. ``version`` pins the dataset version (``None``: the latest when opened).
    """

    remote: str | None = None
    local: str | None = None
    split: str | None = None
    version: int | None = None
    proportion: float | None = None
    repeat: float | None = None
    choose: int | None = None
    verify_hashes: bool | None = None

    def __post_init__(self) -> None:
        if self.remote is None and self.local is None:
            raise ValueError("Stream needs remote= (where the dataset lives) or local= (or both)")
        for name in ("remote", "local", "split"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"Stream {name}= must be a non-empty string, got {value!r}")
        if self.version is not None and (_not_int(self.version) or self.version < 0):
            raise ValueError(
                f"Stream version= must be a dataset version number (an int >= 0), got "
                f"{self.version!r}; omit it to read the latest version"
            )
        given = [n for n in ("proportion", "repeat", "choose") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(
                f"Stream {self.name} sets {' and '.join(given)}: give at most one of "
                "proportion (relative share), repeat (multiplier) or choose (sample count)"
            )
        for name in ("proportion", "repeat"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise ValueError(
                    f"Stream {self.name}: {name}= must be a finite number >= 0, got {value!r}"
                )
        if self.choose is not None and (_not_int(self.choose) or self.choose < 0):
            raise ValueError(
                f"Stream {self.name}: choose= must be a whole number of samples >= 0, got "
                f"{self.choose!r}; use repeat= for a multiplier"
            )
        if self.verify_hashes is not None and not isinstance(self.verify_hashes, bool):
            raise ValueError(f"Stream verify_hashes= must be a bool, got {self.verify_hashes!r}")

    @property
    def name(self) -> str:
        """A short name for messages: the remote (or local) location, with the split."""
        where = self.remote if self.remote is not None else self.local
        return f"{where!r}" + (f" (split {self.split!r})" if self.split else "")

    @property
    def weight_kind(self) -> str | None:
        """``"proportion"``, ``"repeat"``, ``"choose"`` or ``None`` (unweighted)."""
        for name in ("proportion", "repeat", "choose"):
            if getattr(self, name) is not None:
                return name
        return None


def _not_int(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)
