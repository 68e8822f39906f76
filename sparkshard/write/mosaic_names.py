"""Mosaic's ``MDSWriter`` keywords mapped onto ours, in one place (no Spark here).

Used by :class:`sparkshard.write.mdswriter.MDSWriter` and by ``dataframe_to_mds``'s
``mds_kwargs``. The fate of each keyword:

- ``out``: a path/URL, or a ``(local, remote)`` pair (shards go straight to ``remote``);
- ``columns``, ``compression``, ``hashes``, ``size_limit``: honoured (no ``hashes`` records
  ``xxh64``, so integrity checks work by default; ``size_limit=None``: no limit under 4 GiB);
- ``exist_ok``: True replaces an existing dataset (``mode="overwrite"``), False refuses it;
- ``keep_local``, ``progress_bar``, ``max_workers``, ``retry``: validated; what each does is
  up to the writer (see ``MDSWriter``). Anything else is refused, naming what is accepted.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MOSAIC_WRITER_EXTRAS", "mosaic_out", "mosaic_writer_options"]

MOSAIC_WRITER_EXTRAS = ("keep_local", "progress_bar", "max_workers", "retry")
_NO_LIMIT = (1 << 32) - 1  # MDS offsets are uint32: the largest shard there is


def mosaic_out(out: Any, where: str = "mds_kwargs['out']") -> tuple[str, str]:
    """``(local, remote)`` of Mosaic's ``out`` (``remote`` is ``""`` for a plain path)."""
    if isinstance(out, (tuple, list)) and len(out) == 2:
        return str(out[0] or ""), str(out[1] or "")
    if isinstance(out, str) and out:
        return out, ""
    raise ValueError(f"{where} must be a path/URL or a (local, remote) pair, got {out!r}")


def mosaic_writer_options(
    kwargs: dict[str, Any], *, compression: str | None = "zstd", where: str = "mds_kwargs"
) -> dict[str, Any]:
    """Pop Mosaic's MDSWriter keywords from ``kwargs`` -> our writer's options (``columns``,
    ``compression``, ``hashes``, ``size_limit``, ``storage_options``, ``mode``) plus the
    validated extras under their own names. ``compression`` is the default when not given."""
    size_limit = kwargs.pop("size_limit", "64MB")
    options = {
        "columns": kwargs.pop("columns", None),
        "compression": kwargs.pop("compression", compression) or None,
        "hashes": kwargs.pop("hashes", None) or ("xxh64",),
        "size_limit": _NO_LIMIT if size_limit is None else size_limit,
        "storage_options": kwargs.pop("storage_options", None),
    }
    exist_ok = kwargs.pop("exist_ok", False)
    if not isinstance(exist_ok, bool):
        raise ValueError(f"exist_ok must be True or False, got {exist_ok!r}")
    options["mode"] = kwargs.pop("mode", "overwrite" if exist_ok else "error")
    extras = {name: kwargs.pop(name) for name in MOSAIC_WRITER_EXTRAS if name in kwargs}
    _check_extras(extras)
    if kwargs:
        known = ["out", "columns", "compression", "hashes", "size_limit", "exist_ok", "mode"]
        raise TypeError(
            f"unknown {where} {sorted(kwargs)}; accepted: {known + list(MOSAIC_WRITER_EXTRAS)} "
            "and storage_options"
        )
    return {**options, **extras}


def _check_extras(extras: dict[str, Any]) -> None:
    for name in ("keep_local", "progress_bar"):
        if name in extras and not isinstance(extras[name], bool):
            raise ValueError(f"{name} must be True or False, got {extras[name]!r}")
    workers = extras.get("max_workers")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise ValueError(f"max_workers must be a whole number >= 1 (or None), got {workers!r}")
    retry = extras.get("retry")
    if retry is not None and (isinstance(retry, bool) or not isinstance(retry, int) or retry < 0):
        raise ValueError(f"retry must be a whole number of attempts >= 0, got {retry!r}")
