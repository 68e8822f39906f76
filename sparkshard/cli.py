"""The ``sparkshard`` command line, for job steps.

    python -m sparkshard convert --input PATH_OR_TABLE [--format parquet|delta|json|csv|orc]
        --output URL [--columns name:encoding ...] [--compression zstd:3]
        [--size-limit 64MB] [--mode error|overwrite|append]

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
from collections.abc import Sequence

__all__ = ["main"]

_ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception)): (.+)$")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _show_progress()
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
    return parser


def _convert(args: argparse.Namespace) -> int:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # local workers use this venv
    from sparkshard import spark as writer

    columns = _columns(args.columns)
    started = time.perf_counter()
    session, created = writer.cli_session(args.master)
    try:
        print(f"sparkshard: reading {args.input}", file=sys.stderr, flush=True)
        df = writer.read_source(session, args.input, args.format)
        info = writer.dataframe_to_shards(
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


def _show_progress() -> None:
    """Print the library's progress log lines (sparkshard logs; only the CLI prints)."""
    logger = logging.getLogger("sparkshard")
    logger.setLevel(logging.INFO)
    if not any(getattr(h, "sparkshard_cli", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("sparkshard: %(message)s"))
        handler.sparkshard_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


def one_line(exc: BaseException) -> str:
    """The reason of ``exc`` in one line (the innermost ``XError: msg`` of a Spark trace)."""
    text = str(exc).strip() or type(exc).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "Traceback" in text:
        matches = [m for m in map(_ERROR_LINE.match, lines) if m]
        if matches:
            return f"{matches[-1].group(1).rsplit('.', 1)[-1]}: {matches[-1].group(3)}"[:500]
    return lines[0][:500] if lines else type(exc).__name__
