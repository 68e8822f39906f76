"""StreamingDataset: glue between the pure order/partition/state and the shard reader.

Semantics (the README says the same):

- The global order of an epoch is a pure function of (dataset version, seed, epoch,
  num_canonical_nodes, shuffle settings); see :mod:`loader.order.epoch`. Ranks and workers only pick
  which positions they read (:mod:`loader.order.partition`): step ``t`` consumes positions
  ``[t*G, (t+1)*G)``, ``G = world size * batch_size``; every rank takes the same number of
  steps; worker ``w`` produces its rank's batches ``k = w (mod num_workers)``.
- Every rank takes the same number of steps; the last batch may be partial, as in Mosaic: only
  what equal batches across ranks need is padded (fewer than world size samples, none on one
  device), and ``padding="none"`` pads nothing at all (exact evaluation: every sample once
  over all ranks, the last batches then uneven or empty). ``drop_last`` drops the incomplete
  last step.
- A subclass that overrides ``__getitem__`` or ``get_item`` (Mosaic's way to add transforms)
  is read sample by sample through the override on every path (:mod:`loader.samples`).
- Each ``iter()`` is one epoch: the first is epoch 0 (or the loaded state's), the next one
  continues with the following epoch. The state is ``(epoch, samples consumed in it)`` plus a
  fingerprint; loading it recomputes the order and skips ahead without reading skipped data,
  on any world size, batch size or worker count.
- No shared memory, lock files or barriers: every process computes what it reads.
- ``remote=`` (any URL :func:`sparkshard.storage.open_store` serves) with ``local=`` streams
  through a shard cache in ``local`` (see :mod:`loader.cache.reader`): each process fetches the
  shards of its own upcoming batches ahead of need, verified, within ``cache_limit``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from torch.utils.data import IterableDataset

from loader.mosaic_keywords import MosaicKeywords, replicate
from loader.options import (
    CacheOptions,
    DownloadOptions,
    ShuffleOptions,
    Stream,
    check_keep_zip,
    options_from,
)
from loader.order.epoch import EpochOrder, OrderSettings
from loader.order.mix import AnyOrder, Mixture
from loader.order.mix.weights import parse_epoch_size
from loader.order.partition import PADDINGS, EpochPartition
from loader.read.mixture import open_mixture
from loader.read.protocol import Reader, Source
from loader.read.source import ReadOptions, is_cloud, open_source
from loader.samples import empty_like, is_index_list, overrides, sample_index
from loader.shards import ShardAttributes
from loader.state import Fingerprint, ResumeState
from loader.topology import Topology

__all__ = ["StreamingDataset"]

logger = logging.getLogger(__name__)


@dataclass
class _Progress:
    """What this process has yielded of the epoch in progress (for state_dict)."""

    epoch: int
    partition: EpochPartition
    single_worker: bool
    steps: int = 0


class StreamingDataset(ShardAttributes, IterableDataset[dict[str, Any]]):
    """An iterable, resumable dataset over an MDS dataset (Mosaic-compatible names).

    ``local=DIR`` alone reads a local directory: uncompressed shards in place, compressed ones
    decompressed once per node into a local cache (nothing is ever written into ``DIR``).
    ``remote=URL`` with ``local=DIR`` streams the remote dataset (pinned at the version
    opened) through a shard cache in ``DIR``: shards are fetched ahead of need
    (``download_threads`` per process, at most ``prefetch_bytes`` ahead), retried
    ``download_retry`` times with ``download_timeout`` seconds per GET, and evicted least
    recently used beyond ``cache_limit`` (bytes or ``"10GB"``; never a shard being read).
    Every shard file is checked against its index hash once per process before it is read
    (``verify_hashes=False`` opts out). ``storage_options`` go to
    :func:`sparkshard.storage.open_store`.

    Also supports ``len(ds)`` (samples this rank yields per epoch), ``ds[i]`` (sample ``i``
    of the dataset, in index order; slices, lists and integer arrays give lists, as in
    Mosaic), ``get_item(i)``, ``num_samples``/``size`` and Mosaic's per-shard attributes.
    Iterating yields one sample at a time; :meth:`iter_batches` (what
    :class:`StreamingDataLoader` uses) yields this rank's batches as dicts of arrays. A
    subclass overriding ``__getitem__`` or ``get_item`` is read through the override on every
    path. ``topology`` overrides the detected rank/worker layout. ``padding="none"`` makes
    evaluation exact on any world size (see :mod:`loader.order.partition`).

    ``streams=[Stream(...), ...]`` mixes several datasets instead (:mod:`loader.read.mixture`):
    ``epoch_size``, ``batching_method`` (``"random"`` or ``"stratified"``) and
    ``sampling_method`` (``"balanced"`` or ``"fixed"``) as in Mosaic; ``split`` and
    ``verify_hashes`` are defaults for the streams, the other options apply to every stream.

    ``delta=URI`` (with ``version=``, default the latest, pinned when opened) or
    ``parquet=FOLDER | GLOB | [files]`` reads a table in place instead (:mod:`loader.tables`):
    row groups play the role of shards, deletion vectors and column mapping are honoured, and
    ``local=`` is the cache directory of a remote table (not needed for a local one).
    ``filter=`` keeps the rows that match DNF tuples (as for ``delta_to_shards``), decided
    once at start-up from the filter's columns.

    Every keyword of Mosaic's constructor is accepted with the fate listed in
    :mod:`loader.mosaic_keywords` (honoured, mapped onto ours, or refused with the reason):
    e.g. ``epoch_size`` on one dataset resamples it as a one-stream mixture, ``replication``
    gives groups of consecutive ranks the same samples, ``predownload`` sets the read-ahead.
    """

    def __init__(
        self,
        *,
        remote: str | None = None,
        local: str | None = None,
        split: str | None = None,
        version: int | None = None,
        batch_size: int | None = None,
        shuffle: bool | ShuffleOptions = False,
        shuffle_seed: int | None = None,
        shuffle_algo: str | None = None,
        shuffle_block_size: int | None = None,
        num_canonical_nodes: int | None = None,
        drop_last: bool | None = None,
        padding: str = "repeat",
        columns: Sequence[str] | None = None,
        verify_hashes: bool = True,
        allow_unsafe_types: bool = False,
        topology: Topology | None = None,
        cache: CacheOptions | None = None,
        cache_limit: int | str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        download: DownloadOptions | None = None,
        download_retry: int | None = None,
        download_timeout: float | None = None,
        download_threads: int | None = None,
        prefetch_bytes: int | str | None = None,
        streams: Sequence[Stream] | None = None,
        epoch_size: int | str | None = None,
        batching_method: str = "random",
        sampling_method: str = "balanced",
        delta: str | os.PathLike[str] | None = None,
        parquet: str | os.PathLike[str] | Sequence[str] | None = None,
        filter: Sequence[Any] | None = None,
        validate_hash: str | None = None,
        keep_zip: bool = False,
        predownload: int | None = None,
        sampling_granularity: int = 1,
        partition_algo: str | None = None,
        replication: int | None = None,
        stream_name: str = "stream",
        stream_config: Mapping[str, Any] | None = None,
    ) -> None:
        mosaic = MosaicKeywords(
            validate_hash, keep_zip, predownload, sampling_method, sampling_granularity,
            partition_algo, batching_method, replication, stream_name, stream_config,
        )  # fmt: skip
        given, table = streams, {"delta": _path(delta), "parquet": _paths(parquet)}
        streams = mosaic.streams(
            streams, remote, local, split, version, epoch_size, prefetch_bytes, verify_hashes,
            {**table, "filter": filter},
        )  # fmt: skip
        if streams is not given:  # one dataset, resampled: a one-stream mixture, as in Mosaic
            remote = local = version = delta = parquet = None
        if validate_hash is not None and (delta is not None or parquet is not None):
            raise ValueError(
                f"validate_hash={validate_hash!r} checks shard files against their index "
                "hashes, and a table read in place has none (each file is checked against the "
                "size in its log or footer): drop validate_hash"
            )
        shuffling = _shuffle_options(
            shuffle, shuffle_seed, shuffle_algo, shuffle_block_size, num_canonical_nodes
        )
        caching = options_from(
            CacheOptions, cache, "cache", {"cache_limit": ("limit", cache_limit)}
        )
        downloading = options_from(
            DownloadOptions,
            download,
            "download",
            {
                "download_retry": ("retries", download_retry),
                "download_timeout": ("timeout", download_timeout),
                "download_threads": ("threads", download_threads),
                "prefetch_bytes": ("prefetch_bytes", prefetch_bytes),
            },
        )
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 sample per rank, got {batch_size}")
        if padding not in PADDINGS:
            raise ValueError(
                f"padding must be one of {PADDINGS} ('none': every sample exactly once over all "
                f"ranks, for evaluation), got {padding!r}"
            )
        topology = topology if topology is not None else Topology.detect()
        options = ReadOptions(
            tuple(columns) if columns is not None else None,
            verify_hashes,
            allow_unsafe_types,
            caching,
            downloading,
            dict(storage_options or {}),
            topology.ranks_per_node,
        )
        topology = replicate(topology, replication)  # the order sees one rank per group
        self._mixture, source, reader, self.stream_shards = _open(
            streams, remote, local, split, version, options, downloading, keep_zip,
            delta=_path(delta), parquet=_paths(parquet), row_filter=filter,
            epoch_size=epoch_size, batching_method=batching_method,
            sampling_method=sampling_method,
            global_batch=batch_size * topology.world if batch_size else None,
        )  # fmt: skip
        reader = mosaic.opened(source, reader, streams, version)
        self._source: Source = source
        self._reader_handle: Reader | None = reader
        remotes = [remote, _path(delta), _root(parquet)]
        if streams is not None:
            remotes = [u for s in streams for u in (s.remote, s.delta, _root(s.parquet))]
        self._cloud = any(is_cloud(r) for r in remotes)
        self._pid = os.getpid()
        self.version = reader.version
        self.shard_sizes = np.asarray(reader.shard_sizes, np.int64)
        self.num_samples = int(reader.num_samples)
        self.epoch_size = self._mixture.epoch_size if self._mixture else self.num_samples
        self._dataset_fingerprint = reader.fingerprint
        self.batch_size = batch_size
        self.drop_last = bool(drop_last)
        self.drop_last_given = drop_last is not None  # the loader may set it when unset
        self.padding = padding
        self.overrides = overrides(type(self), StreamingDataset)
        if self.overrides:
            logger.info(
                "%s overrides %s: every path reads sample by sample through it (the batch "
                "path is off; FieldSpec or batch_transform= keep it)",
                type(self).__name__,
                " and ".join(self.overrides),
            )
        else:
            logger.debug("no per-sample override: StreamingDataLoader takes the batch path")
        self.topology = topology
        self.shuffle_options = shuffling
        self.order_settings = shuffling.order_settings(topology.nodes)
        self._epoch, self._start = 0, 0
        self._progress: _Progress | None = None
        self._order: AnyOrder | None = None

    # --- pickling to DataLoader workers: no open files, no caches -----------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_reader_handle=None, _order=None, _progress=None)
        return state

    @property
    def _reader(self) -> Reader:
        reader = self._reader_handle
        if reader is not None and self._source.per_process and self._pid != os.getpid():
            reader.abandon()  # inherited through fork: the parent's, not ours
            reader = None
        if reader is None:
            reader = self._reader_handle = self._source.open(self.version)
            self._pid = os.getpid()
        return reader

    def _open_for_fork(self, workers: int) -> bool:
        """Before ``workers`` DataLoader workers are forked for the planned epoch: read each
        one's first batch here, once, so what those reads open (decoded row groups of a
        table, mapped and checked shards) is inherited by every worker instead of being
        done again in each. False, doing nothing, where a forked worker reopens the reader
        (a remote source). The epoch's plan is not touched; :meth:`close` afterwards drops
        this process's part (the workers keep theirs)."""
        if self._source.per_process or workers < 1:
            return False
        topo, reader = self.topology, self._reader
        part, order = self.partition(self._start, topo), self.order(self._epoch)
        for step in part.worker_steps(0, 1)[:workers]:  # the rank's steps 0..workers-1
            ids = self._batch_ids(order, part, topo, step)
            if len(ids):
                reader.get_batch(ids)
        return True

    def close(self) -> None:
        """Release this process's shards (leases, maps, read-ahead threads). The dataset
        stays usable: the next read opens what it needs again."""
        if self._reader_handle is not None:
            self._reader_handle.close()

    @property
    def multiprocessing_context(self) -> str | None:
        """The start method DataLoader workers of this dataset need, None if any will do.

        ``"forkserver"`` for object storage: its client's I/O threads do not survive fork(),
        and this process has used the client (it read the remote index).
        """
        return "forkserver" if self._cloud else None

    # --- sizes and random access ----------------------------------------------------------
    def partition(self, start: int = 0, topology: Topology | None = None) -> EpochPartition:
        """This rank's partition of an epoch resumed at ``start``."""
        topo = topology or self.topology
        batch = self.batch_size or 1
        return EpochPartition(
            self.epoch_size,
            batch,
            topo.nodes,
            topo.ranks_per_node,
            start,
            self.drop_last,
            self.padding,
        )

    def __len__(self) -> int:
        """Samples this rank yields in an epoch (repeats included; none on one device)."""
        return self.partition().rank_samples(self.topology.node, self.topology.local_rank)

    @property
    def size(self) -> int:
        """Samples in the dataset (Mosaic's ``size``: ``num_samples``)."""
        return self.num_samples

    def get_item(self, index: int) -> Any:
        """Sample ``index`` (in ``[0, num_samples)``) as stored: Mosaic's per-sample hook,
        which ``ds[i]`` calls; override it (or ``__getitem__``) to transform samples."""
        return self._reader.get(index)

    def __getitem__(self, at: Any) -> Any:
        """Sample ``at`` (an int; negative counts from the end), or a list of samples for a
        slice, a sequence of ints or an integer numpy array, each through :meth:`get_item`."""
        if type(at) is int and 0 <= at < self.num_samples:  # the per-sample path's case
            return self.get_item(at)
        if isinstance(at, slice):
            return [self.get_item(i) for i in range(*at.indices(self.num_samples))]
        if is_index_list(at):
            return [self[sub] for sub in at]  # as Mosaic: each through __getitem__ (an override)
        return self.get_item(sample_index(at, self.num_samples))

    def order(self, epoch: int) -> AnyOrder:
        """The (lazy) global order of ``epoch``."""
        if self._order is None or self._order.epoch != epoch:
            self._order = self._new_order(epoch)
        return self._order

    def _new_order(self, epoch: int) -> AnyOrder:
        if self._mixture is None:
            return EpochOrder(self.shard_sizes, self.order_settings, epoch)
        return self._mixture.order(self.order_settings, epoch, self._global_batch())

    def _global_batch(self) -> int:
        return (self.batch_size or 1) * self.topology.world

    def io_counters(self) -> dict[str, int]:
        """Cumulative I/O of this dataset in this process: ``bytes_read`` (shard bytes the
        reader decoded) and ``bytes_downloaded`` (bytes fetched from the remote)."""
        reader = self._reader_handle
        if reader is None:
            return {"bytes_read": 0, "bytes_downloaded": 0}
        return reader.io_counters()

    # --- iteration ----------------------------------------------------------------------
    def _begin(self) -> tuple[AnyOrder, EpochPartition, Topology, range]:
        """Start the planned epoch in this process and plan the next one."""
        topo = self.topology.in_current_worker()
        if self.batch_size is None and topo.num_workers > 1:
            logger.warning("batch_size is unset: set it so workers split batches like the loader")
        epoch, start = self._epoch, self._start
        self._epoch, self._start = epoch + 1, 0
        part = self.partition(start, topo)
        self._progress = _Progress(epoch, part, topo.num_workers == 1)
        return self.order(epoch), part, topo, part.worker_steps(topo.worker, topo.num_workers)

    def _batch_ids(self, order: AnyOrder, part: EpochPartition, topo: Topology, step: int) -> Any:
        if part.padded(step):
            return order.ids(part.positions(step, topo.node, topo.local_rank))
        first, stride = part.run(step, topo.node, topo.local_rank)
        return order.ids_run(first, stride, part.step_batch(step))

    def _read_ahead(
        self, reader: Reader, part: EpochPartition, topo: Topology, steps: range
    ) -> None:
        """Tell a caching reader which batches this process reads next, so it fetches ahead."""
        if not reader.fetches_ahead or self._progress is None:
            return
        # The read-ahead runs in its own thread: give it its own (lazily cached) order.
        order = self._new_order(self._progress.epoch)
        batches = (self._batch_ids(order, part, topo, step) for step in steps)
        reader.prefetch(batches, topo.ranks_per_node * topo.num_workers)

    def iter_batches(
        self, by_reference: bool = False, plain: bool = False
    ) -> Iterator[dict[str, Any]]:
        """This rank's (this worker's) batches of the next epoch, as dicts of arrays;
        ``by_reference``: bytes columns that lie in local shard files may come as
        :class:`~loader.read.spans.FileSpans`, and ``plain``: nullable columns without nulls
        in a batch as plain arrays (both for a DataLoader worker's hand-off)."""
        order, part, topo, steps = self._begin()  # eager: the epoch starts at iter_batches()
        return self._batches(order, part, topo, steps, by_reference, plain)

    def _batches(
        self,
        order: AnyOrder,
        part: EpochPartition,
        topo: Topology,
        steps: range,
        by_reference: bool = False,
        plain: bool = False,
    ) -> Iterator[dict[str, Any]]:
        progress, reader = self._progress, self._reader
        self._read_ahead(reader, part, topo, steps)
        try:
            for step in steps:
                ids = self._batch_ids(order, part, topo, step)
                if len(ids):
                    batch = reader.get_batch(ids, by_reference, plain)
                else:  # padding="none": nothing left for this rank; its step stays (no rows)
                    batch = empty_like(reader.get_batch(order.ids(np.zeros(1, np.int64))))
                if progress is not None:
                    progress.steps += 1
                yield batch
        finally:  # the end, a break (the iterator is dropped or closed), or an error
            _end_epoch(reader)

    def __iter__(self) -> Iterator[Any]:
        order, part, topo, steps = self._begin()  # eager: the epoch starts at iter()
        return self._samples(self._steps(order, part, topo, steps, count=False))

    def _samples(self, steps: Generator[list[Any], None, None]) -> Iterator[Any]:
        progress = self._progress
        try:
            for samples in steps:
                yield from samples[:-1]
                if progress is not None and samples:  # a step is done once its last is out
                    progress.steps += 1
                yield from samples[-1:]
        finally:  # a break lets go of the epoch's shards now, not when collected
            steps.close()

    def iter_sample_batches(self) -> Iterator[list[Any]]:
        """This rank's (this worker's) steps of the next epoch, each as the list of its samples
        read through ``self[i]`` (so through an override), for the per-sample path."""
        order, part, topo, steps = self._begin()  # eager: the epoch starts here
        return self._steps(order, part, topo, steps, count=True)

    def _steps(
        self, order: AnyOrder, part: EpochPartition, topo: Topology, steps: range, count: bool
    ) -> Generator[list[Any], None, None]:
        progress, reader = self._progress, self._reader
        self._read_ahead(reader, part, topo, steps)
        read = self.__getitem__ if self.overrides else reader.get
        try:
            for step in steps:
                ids = self._batch_ids(order, part, topo, step).tolist()
                samples = [read(index) for index in ids]
                if progress is not None and (count or not samples):
                    progress.steps += 1
                yield samples
        finally:  # the end, a break (the iterator is dropped or closed), or an error
            _end_epoch(reader)

    # --- resume -------------------------------------------------------------------------
    def fingerprint(self) -> Fingerprint:
        s = self.order_settings
        fingerprint = Fingerprint(
            self.version,
            self._dataset_fingerprint,
            self.epoch_size,
            s.shuffle,
            s.seed,
            s.algo,
            s.block_size,
            s.num_canonical_nodes,
        )
        if self._mixture is None:
            return fingerprint
        return self._mixture.fingerprint(fingerprint, self._global_batch())

    def resume_state(self, epoch: int, sample_in_epoch: int) -> dict[str, Any]:
        """The state dict for ``sample_in_epoch`` samples consumed in ``epoch``."""
        if sample_in_epoch >= self.epoch_size and self.epoch_size:
            epoch, sample_in_epoch = epoch + 1, 0
        return ResumeState(epoch, sample_in_epoch, self.fingerprint()).to_dict()

    def state_dict(
        self, num_samples: int | None = None, from_beginning: bool = True
    ) -> dict[str, Any]:
        """The resume state: ``num_samples`` consumed by all ranks in the current epoch
        (counted from the epoch's start, or from the resume point if not ``from_beginning``);
        without it, what this process has yielded (iterating in the main process)."""
        progress = self._progress
        if progress is None:
            return self.resume_state(self._epoch, self._start)
        start = progress.partition.start
        if num_samples is not None:
            consumed = num_samples if from_beginning else start + num_samples
            return self.resume_state(progress.epoch, min(consumed, self.epoch_size))
        if not progress.single_worker:
            raise ValueError(
                "this dataset is read by several workers, so it cannot count what was consumed; "
                "use StreamingDataLoader.state_dict() or pass num_samples="
            )
        if progress.steps >= progress.partition.num_steps:
            return self.resume_state(progress.epoch + 1, 0)
        return self.resume_state(progress.epoch, progress.partition.consumed(progress.steps))

    def load_state_dict(self, obj: Mapping[str, Any]) -> None:
        """Resume at a state from :meth:`state_dict`; the next ``iter()`` continues there."""
        state = ResumeState.from_dict(obj)
        found = state.fingerprint
        s, given = self.order_settings, self.shuffle_options
        nodes = s.num_canonical_nodes if given.num_canonical_nodes else found.num_canonical_nodes
        block = s.block_size if given.block_size else found.shuffle_block_size
        adopted = OrderSettings(s.seed, nodes, s.shuffle, block, s.algo)
        previous, self.order_settings = self.order_settings, adopted
        mixture = self._mixture
        if mixture is not None:  # mid-epoch, a stratified mixture keeps the state's stratum
            self._mixture = mixture.resumed(state.sample_in_epoch, found.mix_stratum)
        try:
            state.check(self.fingerprint())
        except Exception:
            self.order_settings, self._mixture = previous, mixture
            raise
        self._epoch, self._start = state.epoch, state.sample_in_epoch
        self._progress, self._order = None, None
        logger.info("resuming at epoch %d, sample %d", state.epoch, state.sample_in_epoch)


def _path(value: str | os.PathLike[str] | None) -> str | None:
    return None if value is None else os.fspath(value)


def _paths(value: str | os.PathLike[str] | Sequence[str] | None) -> str | Sequence[str] | None:
    if value is None or isinstance(value, (str, os.PathLike)):
        return _path(value)
    return [os.fspath(v) for v in value]


def _root(value: str | os.PathLike[str] | Sequence[str] | None) -> str | None:
    """One location of ``parquet=`` (to tell whether it is in the cloud)."""
    paths = _paths(value)
    return paths if paths is None or isinstance(paths, str) else (paths[0] if paths else None)


def _end_epoch(reader: Reader) -> None:
    """When an epoch's iterator ends (done, abandoned with ``break``, closed, collected, or
    failed), a caching reader lets go of its shards (leases, maps and read-ahead threads; the
    files stay cached): an idle dataset must not pin room in a shared cache that another
    reader needs. The next epoch opens them again."""
    if reader.fetches_ahead:
        reader.close()


def _shuffle_options(
    shuffle: bool | ShuffleOptions,
    seed: int | None,
    algo: str | None,
    block_size: int | None,
    num_canonical_nodes: int | None,
) -> ShuffleOptions:
    """``shuffle=ShuffleOptions(...)``, or one built from Mosaic's flat shuffle keywords."""
    flat = {
        "shuffle_seed": ("seed", seed),
        "shuffle_algo": ("algo", algo),
        "shuffle_block_size": ("block_size", block_size),
        "num_canonical_nodes": ("num_canonical_nodes", num_canonical_nodes),
    }
    if isinstance(shuffle, ShuffleOptions):
        return options_from(ShuffleOptions, shuffle, "shuffle", flat)
    built = options_from(ShuffleOptions, None, "shuffle", flat)
    return replace(built, shuffle=shuffle)


def _open(
    streams: Sequence[Stream] | None,
    remote: str | None,
    local: str | None,
    split: str | None,
    version: int | None,
    options: ReadOptions,
    downloading: DownloadOptions,
    keep_zip: bool,
    *,
    delta: str | None,
    parquet: str | Sequence[str] | None,
    row_filter: Sequence[Any] | None,
    epoch_size: int | str | None,
    batching_method: str,
    sampling_method: str,
    global_batch: int | None,
) -> tuple[Mixture | None, Source, Reader, tuple[int, ...]]:
    """(mixture or None, source, reader, shards per stream) of one dataset or table, or of a
    mixture of streams."""
    if streams is None:
        source: Source = open_source(
            remote, local, split, options, version,
            delta=delta, parquet=parquet, row_filter=row_filter,
        )  # fmt: skip
        reader: Reader = source.open(version)
        return None, source, reader, (len(reader.shard_sizes),)
    if any(v is not None for v in (remote, local, version, delta, parquet, row_filter)):
        raise ValueError(
            "with streams=, give remote=/local=/version= on each Stream (or delta=/"
            "parquet=; filter= applies to one table read in place)"
        )

    def stream_source(s: Stream) -> Source:
        if s.keep_zip is None:
            check_keep_zip(keep_zip, s.remote, f"keep_zip (the default of Stream {s.name})")
        verify = replace(options.with_verify(s.verify(None)), download=s.download(downloading))
        return open_source(
            s.remote, s.local, s.split or split, verify, s.version,
            delta=s.delta, parquet=s.parquet,
        )  # fmt: skip

    mixture, source, mixed = open_mixture(
        streams,
        stream_source,
        epoch_size=parse_epoch_size(epoch_size),
        batching_method=batching_method,
        sampling_method=sampling_method,
        global_batch=global_batch,
    )
    return mixture, source, mixed, tuple(len(r.shard_sizes) for r in mixed.readers)
