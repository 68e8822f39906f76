"""The fate of every keyword of Mosaic's ``StreamingDataset`` and ``Stream`` (0.13.0).

A Mosaic user changes one import; every keyword they pass then has one defined fate, listed
here in one place (:data:`DATASET_FATES`, :data:`STREAM_FATES`; the README's table is
:func:`fate_table`):

- **honoured**: it means what it means in Mosaic;
- **mapped**: it is translated onto our option (named in the table);
- **warned**: accepted, runs ours, logs a warning; only where the result is still what the
  user asked for (e.g. ``shuffle_algo="py1e"`` runs our block shuffle);
- **refused** (some values): a ``ValueError`` naming the keyword and what to use instead.

None is silently ignored. :class:`MosaicKeywords` checks the keywords ``StreamingDataset``
takes on top of our own, before anything is opened; the helpers below apply them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from loader.options import Stream, check_keep_zip, check_validate_hash
from loader.order.mix.weights import BATCHING_METHODS, SAMPLING_METHODS
from loader.topology import Topology

__all__ = [
    "DATASET_FATES",
    "PARTITION_ALGOS",
    "STREAM_FATES",
    "Fate",
    "MosaicKeywords",
    "apply_predownload",
    "check_hash_recorded",
    "fate_table",
    "replicate",
]

logger = logging.getLogger(__name__)

PARTITION_ALGOS = ("orig", "relaxed")  # Mosaic's; both run our partition
_MOSAIC_BATCHING = ("device_per_stream",)  # Mosaic's, refused here


@dataclass(frozen=True)
class Fate:
    """What happens to one Mosaic keyword: ``kind`` (honoured, mapped, warned, refused) and
    a one-line description (what it does here; which values are refused and what instead)."""

    kind: str
    what: str

    def __post_init__(self) -> None:
        if self.kind not in ("honoured", "mapped", "warned", "refused"):
            raise ValueError(f"unknown fate {self.kind!r}")


_H, _M, _W = "honoured", "mapped", "warned"
_SHARED = {
    "remote": Fate(_H, "where the dataset lives (any URL `open_store` serves)"),
    "local": Fate(_H, "the local directory (read in place, or the shard cache of `remote`)"),
    "split": Fate(_H, "the `split` subdirectory of `remote` and `local`"),
    "download_retry": Fate(_H, "attempts after the first (`DownloadOptions.retries`)"),
    "download_timeout": Fate(_H, "seconds per GET (`DownloadOptions.timeout`)"),
    "validate_hash": Fate(
        _M,
        "an algorithm name turns `verify_hashes` on (it is on by default here); refused if the "
        "index does not record that algorithm, or with `verify_hashes=False`",
    ),
    "keep_zip": Fate(
        _H,
        "False: the compressed files are never deleted (a local dataset is read-only to us); "
        "True with a remote is refused: the cache keeps decompressed shards only",
    ),
}
DATASET_FATES: dict[str, Fate] = {
    "streams": Fate(_H, "a mixture of `Stream`s (`loader.read.mixture`)"),
    **_SHARED,
    "epoch_size": Fate(
        _H, "samples per epoch; on one dataset it up- or down-samples it (a one-stream mixture)"
    ),
    "predownload": Fate(
        _M,
        "samples ahead per process -> `prefetch_bytes` (times the mean sample size of the "
        "index); no effect on a dataset read in place (nothing to fetch)",
    ),
    "cache_limit": Fate(
        _H,
        "bytes or '10GB': LRU eviction of cached shards nobody reads; refused on an "
        "uncompressed local dataset (read in place, nothing cached, nothing to evict)",
    ),
    "sampling_method": Fate(_H, "'balanced' or 'fixed'; any other value is refused, as in Mosaic"),
    "sampling_granularity": Fate(
        _H,
        "1: each shard gives its proportional share of a partial repeat (what we do); other "
        "values are refused",
    ),
    "partition_algo": Fate(
        _W, "'relaxed' or 'orig' run our elastic partition (same guarantees); others refused"
    ),
    "num_canonical_nodes": Fate(_H, "the canonical nodes of the order (`ShuffleOptions`)"),
    "batch_size": Fate(_H, "samples per rank per step"),
    "shuffle": Fate(_H, "shuffle the order (`ShuffleOptions.shuffle`)"),
    "shuffle_algo": Fate(
        _W, "Mosaic's names (py1e, py1b, py1br, py1s, py2s, naive) run our block shuffle"
    ),
    "shuffle_seed": Fate(_H, "the seed of the order"),
    "shuffle_block_size": Fate(_H, "samples per shuffle block"),
    "batching_method": Fate(
        _H,
        "'random', 'stratified' or 'per_stream' (every global batch from one stream; needs "
        "batch_size); 'device_per_stream' is refused: use 'per_stream' or 'stratified'",
    ),
    "allow_unsafe_types": Fate(_H, "allow `pkl` columns (pickle runs code when decoded)"),
    "replication": Fate(
        _H, "groups of `replication` consecutive ranks get the same samples (tensor parallel)"
    ),
    "stream_name": Fate(_H, "'stream' only; Mosaic's registry of Stream subclasses is refused"),
    "stream_config": Fate(
        _H, "keywords of the one `Stream` of a single dataset (e.g. `{'repeat': 2}`)"
    ),
}
STREAM_FATES: dict[str, Fate] = {
    **_SHARED,
    "proportion": Fate(_H, "relative share of the epoch"),
    "repeat": Fate(_H, "multiplier on the stream's size"),
    "choose": Fate(_H, "exact samples per epoch"),
}


def fate_table() -> str:
    """The README's table: one row per keyword (``Stream`` keywords after the dataset's)."""
    rows = ["| keyword | fate | what happens |", "|---|---|---|"]
    rows += [f"| `{k}` | {f.kind} | {f.what} |" for k, f in DATASET_FATES.items()]
    rows += [
        f"| `Stream({k}=)` | {f.kind} | {f.what} |"
        for k, f in STREAM_FATES.items()
        if k not in _SHARED
    ]
    return "\n".join(rows)


@dataclass(frozen=True)
class MosaicKeywords:
    """Mosaic's keywords that ``StreamingDataset`` takes beyond its own options; checked when
    made (before anything is opened). ``None`` means not given."""

    validate_hash: str | None = None
    keep_zip: bool = False
    predownload: int | None = None
    sampling_method: str = "balanced"
    sampling_granularity: int = 1
    partition_algo: str | None = None
    batching_method: str = "random"
    replication: int | None = None
    stream_name: str = "stream"
    stream_config: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        check_validate_hash(self.validate_hash)
        if self.predownload is not None and (_not_whole(self.predownload) or self.predownload < 0):
            raise ValueError(
                f"predownload must be a number of samples >= 0, got {self.predownload!r}"
            )
        if self.sampling_method not in SAMPLING_METHODS:
            raise ValueError(
                f"sampling_method must be one of {SAMPLING_METHODS} (as in Mosaic), got "
                f"{self.sampling_method!r}"
            )
        self._check_granularity()
        self._check_batching()
        if self.partition_algo is not None:
            if self.partition_algo not in PARTITION_ALGOS:
                raise ValueError(
                    f"partition_algo must be one of Mosaic's {PARTITION_ALGOS}, got "
                    f"{self.partition_algo!r}; omit it to use our partition"
                )
            logger.warning(
                "partition_algo=%r is Mosaic's; our elastic partition runs instead (every sample "
                "once per epoch, equal steps per rank, exact resume on any topology)",
                self.partition_algo,
            )
        if self.replication is not None and (_not_whole(self.replication) or self.replication < 1):
            raise ValueError(
                f"replication must be a whole number of ranks >= 1, got {self.replication!r}"
            )
        self._check_stream_keywords()

    def _check_granularity(self) -> None:
        granularity = self.sampling_granularity
        if _not_whole(granularity) or granularity < 1:
            raise ValueError(
                f"sampling_granularity must be a positive integer, got {granularity!r}"
            )
        if granularity != 1:
            raise ValueError(
                f"sampling_granularity={granularity}: a partial repeat here draws each shard's "
                "proportional share of it (granularity 1, the best balance); picking samples "
                "in runs from one shard is not supported: omit sampling_granularity"
            )

    def _check_batching(self) -> None:
        method = self.batching_method
        if method in _MOSAIC_BATCHING:
            raise ValueError(
                f"batching_method={method!r} (each device's batch from its own stream) is not "
                "supported; use batching_method='per_stream' (every global batch from one "
                "stream) or 'stratified' (every batch holds each stream's share)"
            )
        if method not in BATCHING_METHODS:
            raise ValueError(f"batching_method must be one of {BATCHING_METHODS}, got {method!r}")

    def _check_stream_keywords(self) -> None:
        if self.stream_name != "stream":
            raise ValueError(
                f"stream_name={self.stream_name!r} names a Stream subclass in Mosaic's registry, "
                "which does not exist here; pass streams=[loader.Stream(...)] instead"
            )
        config = dict(self.stream_config or {})
        allowed = {"proportion", "repeat", "choose", "download_retry", "download_timeout"}
        allowed |= {"validate_hash", "keep_zip", "verify_hashes"}
        unknown = sorted(set(config) - allowed)
        if unknown:
            raise ValueError(
                f"stream_config keys {unknown} are not Stream keywords here (remote/local/split "
                f"come from the dataset's own keywords); accepted: {sorted(allowed)}"
            )

    def streams(
        self,
        streams: Sequence[Stream] | None,
        remote: str | None,
        local: str | None,
        split: str | None,
        version: int | None,
        epoch_size: int | str | None,
        prefetch_bytes: int | str | None,
        verify_hashes: bool,
        table: Mapping[str, Any] | None = None,
    ) -> Sequence[Stream] | None:
        """Check these keywords against the dataset's own; return ``streams`` unchanged, or
        the one-stream mixture a single dataset becomes when resampled (``epoch_size``, or
        weights in ``stream_config``), as Mosaic makes one default Stream of it. ``table``:
        the ``delta=``/``parquet=``/``filter=`` of a table read in place."""
        if self.predownload is not None and prefetch_bytes is not None:
            raise ValueError(
                f"predownload={self.predownload} (samples) and prefetch_bytes={prefetch_bytes!r} "
                "both set how far ahead shards are fetched: pass one of them"
            )
        if self.validate_hash is not None and not verify_hashes:
            raise ValueError(
                f"validate_hash={self.validate_hash!r} asks for hash checks but "
                "verify_hashes=False turns them off: drop one of them"
            )
        config = dict(self.stream_config or {})
        if streams is not None:
            if config:
                raise ValueError(
                    "stream_config= configures the one Stream of a single dataset; with "
                    "streams=, pass those keywords to each Stream(...)"
                )
            return streams
        check_keep_zip(self.keep_zip, remote)
        if epoch_size is None and not config and self.batching_method != "per_stream":
            return None  # per_stream on one dataset: its incomplete last global batch drops
        tables = {k: v for k, v in (table or {}).items() if v is not None}
        if "filter" in tables:
            raise ValueError(
                "filter= applies to one table read in place, and epoch_size=/stream_config= "
                "make the dataset a Stream, which takes no filter: drop one of them"
            )
        defaults = {"validate_hash": self.validate_hash, "keep_zip": self.keep_zip}
        one = Stream(
            remote=remote, local=local, split=split, version=version,
            **{**defaults, **tables, **config},
        )  # fmt: skip
        return [one]

    def opened(
        self, source: Any, reader: Any, streams: Sequence[Stream] | None, version: int | None
    ) -> Any:
        """After the dataset's source opened: refuse a ``validate_hash`` its index lacks, and
        apply ``predownload`` (reopening the reader, whose fetcher had the default read-ahead)."""
        if streams is None:
            check_hash_recorded(source, [self.validate_hash])
        else:
            check_hash_recorded(source, [s.validate_hash or self.validate_hash for s in streams])
        if self.predownload is not None and apply_predownload(source, self.predownload):
            reader.close()
            reader = source.open(version if streams is None else None)
        return reader


def _not_whole(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)


def replicate(topology: Topology, replication: int | None) -> Topology:
    """The topology the order sees when groups of ``replication`` consecutive ranks read the
    same samples (Mosaic's ``World.replicate``): rank ``r`` reads as rank ``r // replication``
    of ``world // replication``, on as many nodes as that divides into (else one)."""
    if replication is None or replication == 1:
        return topology
    if topology.world % replication:
        raise ValueError(
            f"replication={replication} must divide the world size {topology.world}: ranks are "
            "grouped in runs of that many consecutive ranks"
        )
    world = topology.world // replication
    nodes = world // topology.ranks_per_node if world % topology.ranks_per_node == 0 else 1
    per_node = world // nodes
    rank = topology.rank // replication
    node, local = divmod(rank, per_node)
    return replace(
        topology, node=node, nodes=nodes, rank=rank, world=world, local_rank=local,
        ranks_per_node=per_node,
    )  # fmt: skip


def _sources(source: Any) -> tuple[Any, ...]:
    return tuple(getattr(source, "sources", (source,)))


def apply_predownload(source: Any, predownload: int) -> bool:
    """Set the read-ahead of every source that fetches (a remote or compressed dataset) to
    ``predownload`` samples' worth of bytes (the index's mean raw sample size); True if any
    changed (its readers must be opened again). Sources read in place fetch nothing."""
    changed = False
    for sub in _sources(source):
        index, options = getattr(sub, "index", None), getattr(sub, "options", None)
        if index is None or options is None or not getattr(sub, "per_process", False):
            continue
        samples = sum(s.samples for s in index.shards)
        raw = sum(s.raw_data.bytes for s in index.shards)
        ahead = predownload * -(-raw // max(samples, 1))
        download = replace(options.download, prefetch_bytes=ahead)
        sub.options = replace(options, download=download)
        changed = True
    if not changed:
        logger.info("predownload=%d: the dataset is read in place, nothing to fetch", predownload)
    return changed


def check_hash_recorded(source: Any, algos: list[str | None]) -> None:
    """Refuse, as Mosaic does, a ``validate_hash`` algorithm a shard's index entry lacks
    (``algos``: one per source of a mixture, or one for a single dataset)."""
    for sub, algo in zip(_sources(source), algos):
        index = getattr(sub, "index", None)
        if algo is None or index is None:
            continue
        for record in index.shards:
            stored = record.zip_data or record.raw_data
            if algo not in stored.hashes:
                raise ValueError(
                    f"validate_hash={algo!r}, but shard {stored.basename} records only "
                    f"{sorted(stored.hashes)}: pass one of those, or omit validate_hash (every "
                    "shard is still checked against the hash its index records)"
                )
