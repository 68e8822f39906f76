"""The ``sparkshard`` command line, for job steps and for people.

    python -m sparkshard convert --input PATH_OR_TABLE [--format parquet|delta|json|csv|orc]
        --output URL [--columns name:encoding ...] [--compression zstd:3]
        [--size-limit 64MB] [--mode error|overwrite|append]
    python -m sparkshard inspect URL [--version N] [--rows 3] [--shards]
        [--png out.png [--image-column C]]
    python -m sparkshard verify URL [--version N | --all-versions] [--repair]
    python -m sparkshard history URL
    python -m sparkshard gc URL --retain N [--min-age SECONDS] [--yes]

The tools work on every backend ``open_store`` serves (``--storage-option key=value``).
``verify`` exits 1 naming every broken file; ``gc`` only lists what it would delete
unless given ``--yes``.

Under ``spark-submit`` it uses that application's SparkSession, otherwise a local one
(``local[*]``, or ``--master``). It shows Spark's progress bar and a line per step, prints
a summary, and on failure exits 1 with a one-line reason.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

__all__ = ["main"]

_ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception)): (.+)$")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with _progress_lines():
        try:
            return int(args.run(args))
        except KeyboardInterrupt:
            print(f"sparkshard {args.command}: interrupted", file=sys.stderr)
            return 130
        except Exception as exc:
            print(f"sparkshard {args.command}: error: {one_line(exc)}", file=sys.stderr)
            return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sparkshard", description="Spark DataFrames to verified MDS shards."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser(
        "convert", help="write a Parquet/Delta/JSON/CSV/ORC path or a table as MDS shards"
    )
    convert.add_argument("--input", required=True, help="a path/URL, or a table name")
    convert.add_argument("--format", choices=("parquet", "delta", "json", "csv", "orc"))
    convert.add_argument("--output", required=True, help="dataset folder or URL")
    convert.add_argument(
        "--columns", nargs="+", default=[], metavar="NAME:ENCODING",
        help="encodings to use instead of the inferred ones, e.g. image:jpeg x:ndarray:float32:16",
    )  # fmt: skip
    convert.add_argument("--compression", default="zstd", help="zstd[:level], br, gz, ... or none")
    convert.add_argument("--hashes", default="xxh64", help="comma-separated hash algorithms")
    convert.add_argument("--size-limit", default="64MB", help="shard size before compression")
    convert.add_argument("--mode", choices=("error", "overwrite", "append"), default="error")
    convert.add_argument("--master", help="Spark master for a local run (default local[*])")
    convert.set_defaults(run=_convert)
    _tool_parsers(commands)
    return parser


def _tool_parsers(commands: Any) -> None:
    def tool(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("url", help="dataset folder or URL")
        sub.add_argument(
            "--storage-option", action="append", default=[], metavar="KEY=VALUE",
            help="a storage option for the backend (repeatable)",
        )  # fmt: skip
        return sub

    inspect = tool("inspect", "versions, schema, shards, sizes, lineage and sample rows")
    inspect.add_argument("--version", type=int, help="a dataset version (default: latest)")
    inspect.add_argument("--rows", type=int, default=3, help="sample rows to show")
    inspect.add_argument("--shards", action="store_true", help="list every shard")
    inspect.add_argument("--png", help="write a preview of an image column to this PNG file")
    inspect.add_argument("--image-column", help="the column to preview (default: the first image)")
    inspect.set_defaults(run=_inspect)
    verify = tool("verify", "check every hash and that every shard is readable")
    verify.add_argument("--version", type=int, help="a dataset version (default: latest)")
    verify.add_argument("--all-versions", action="store_true", help="check every kept version")
    verify.add_argument(
        "--repair", action="store_true",
        help="first rewrite index.json (the copy Mosaic reads) from the latest version record, "
        "and the columnar form of every version record that lacks a sound one",
    )  # fmt: skip
    verify.set_defaults(run=_verify)
    tool("history", "every committed version").set_defaults(run=_history)
    gc = tool("gc", "delete old versions and unreferenced files (a dry run unless --yes)")
    gc.add_argument("--retain", type=int, required=True, help="how many newest versions to keep")
    gc.add_argument(
        "--min-age", type=float, default=3600.0, metavar="SECONDS",
        help="leave unreferenced files younger than this (a write may be running); default 3600",
    )  # fmt: skip
    gc.add_argument("--yes", "--delete", dest="yes", action="store_true", help="really delete")
    gc.set_defaults(run=_gc)


def _store(args: argparse.Namespace) -> Any:
    from sparkshard.storage import open_store

    options = {}
    for item in args.storage_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--storage-option takes KEY=VALUE, got {item!r}")
        options[key] = value
    return open_store(args.url, options or None)


def _inspect(args: argparse.Namespace) -> int:
    from sparkshard.tools.inspect import inspect_dataset, render_inspection, save_image_preview

    store = _store(args)
    report = inspect_dataset(store, args.version, rows=args.rows)
    print(render_inspection(report, shards=args.shards))
    if args.png or args.image_column:
        path = args.png or "preview.png"
        count = save_image_preview(store, path, column=args.image_column, version=args.version)
        print(f"wrote a preview of {count} images to {path}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from sparkshard.tools.verify import render_verify, verify_dataset

    store = _store(args)
    if args.repair:
        from sparkshard.dataset.index_files import repair_columnar
        from sparkshard.dataset.versions import list_versions, repair_index, version_key

        repaired = repair_index(store)
        print(f"index.json {'rewritten from the latest version' if repaired else 'was current'}")
        keys = [version_key(v) for v in list_versions(store)]
        for key in repair_columnar(store, keys):
            print(f"wrote {key} (the columnar form readers load at start-up)")
    report = verify_dataset(store, version=args.version, all_versions=args.all_versions)
    for line in render_verify(report):
        print(line, file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 1


def _history(args: argparse.Namespace) -> int:
    from sparkshard.tools.history import history, render_history

    print(render_history(history(_store(args))))
    return 0


def _gc(args: argparse.Namespace) -> int:
    from sparkshard.tools.gc import apply_gc, plan_gc, render_gc

    store = _store(args)
    plan = plan_gc(store, args.retain, min_age=args.min_age)
    if args.yes:
        apply_gc(store, plan)
    for line in render_gc(plan, applied=args.yes):
        print(line)
    return 0


def _convert(args: argparse.Namespace) -> int:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # local workers use this venv
    from sparkshard.spark import session as spark_session
    from sparkshard.spark.write import dataframe_to_shards

    columns = _columns(args.columns)
    started = time.perf_counter()
    session, created = spark_session.cli_session(args.master)
    try:
        print(f"sparkshard: reading {args.input}", file=sys.stderr, flush=True)
        df = spark_session.read_source(session, args.input, args.format)
        info = dataframe_to_shards(
            df,
            args.output,
            columns=columns,
            compression=None if args.compression.lower() == "none" else args.compression,
            hashes=[h for h in args.hashes.split(",") if h],
            size_limit=args.size_limit,
            mode=args.mode,
        )
    finally:
        if created:
            session.stop()
    print(
        f"wrote {info.new_samples:,} samples as version {info.version} of {info.url} "
        f"({info.num_shards} shards, {info.num_samples:,} samples, {info.bytes / 1e6:,.1f} MB) "
        f"in {time.perf_counter() - started:.1f} s; index: {info.index_url}"
    )
    return 0


def _columns(items: Sequence[str]) -> dict[str, str] | None:
    columns = {}
    for item in items:
        name, sep, encoding = item.partition(":")
        if not sep or not name or not encoding:
            raise ValueError(f"--columns takes NAME:ENCODING pairs (e.g. image:jpeg), got {item!r}")
        columns[name] = encoding
    return columns or None


@contextmanager
def _progress_lines() -> Iterator[None]:
    """Print the library's progress log lines while a command runs (only the CLI prints).

    The handler is removed afterwards, so calling ``main`` in-process (tests, notebooks)
    leaves logging as it was and never writes to a stream that has been closed since.
    """
    logger = logging.getLogger("sparkshard")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("sparkshard: %(message)s"))
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def one_line(exc: BaseException) -> str:
    """The reason of ``exc`` in one line (the innermost ``XError: msg`` of a Spark trace)."""
    text = str(exc).strip() or type(exc).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "Traceback" in text:
        matches = [m for m in map(_ERROR_LINE.match, lines) if m]
        if matches:
            return f"{matches[-1].group(1).rsplit('.', 1)[-1]}: {matches[-1].group(3)}"[:500]
    return lines[0][:500] if lines else type(exc).__name__
