"""A row filter that means the same thing with and without Spark.

Filters use the DNF convention of pyarrow and deltalake: a list of ``(column, op, value)``
tuples that must all hold, or a list of such lists of which any may hold::

    [("split", "=", "train"), ("score", ">=", 0.5)]
    [[("label", "in", [1, 2])], [("label", "=", 7), ("weight", ">", 0)]]

``op`` is one of ``= == != < > <= >= in not in``, with SQL's meaning: a row whose value is
null matches no term (not even ``!=`` or ``not in``). :class:`RowFilter` validates a filter
once, then renders it as a pyarrow expression (the single-process path) or as Spark SQL
text (the distributed path), and as plain JSON for the dataset's lineage. A Spark SQL
string is accepted too, but only where Spark evaluates it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["RowFilter"]

_OPS = ("=", "==", "!=", "<", ">", "<=", ">=", "in", "not in")
Term = tuple[str, str, Any]


@dataclass(frozen=True)
class RowFilter:
    """A validated filter: DNF terms (``clauses``) or a Spark SQL string (``sql``)."""

    clauses: tuple[tuple[Term, ...], ...] = ()
    sql: str | None = None

    @classmethod
    def parse(cls, value: str | Sequence[Any] | None) -> RowFilter | None:
        """Validate ``filter=`` as the user gave it; ``None`` keeps every row."""
        if value is None:
            return None
        if isinstance(value, str):
            if not value.strip():
                raise ValueError("filter= is an empty string: pass None to keep every row")
            return cls(sql=value.strip())
        if not isinstance(value, Sequence) or not value:
            raise TypeError(_usage(f"got {value!r:.80}"))
        groups = value if all(_is_group(g) for g in value) else [value]
        return cls(clauses=tuple(tuple(_term(t) for t in group) for group in groups))

    def to_json(self) -> Any:
        """What lineage records (and what two conversions compare)."""
        if self.sql is not None:
            return self.sql
        return [[[c, op, _json_value(v)] for c, op, v in group] for group in self.clauses]

    def to_arrow(self) -> Any:
        """The filter as a ``pyarrow.compute.Expression``."""
        if self.sql is not None:
            raise ValueError(
                f"filter={self.sql!r} is Spark SQL, which only Spark evaluates: pass spark=, "
                "or give the filter as DNF tuples such as [('label', '=', 1)]"
            )
        import pyarrow.compute as pc

        expression = None
        for group in self.clauses:
            conjunction = None
            for term in group:
                one = _arrow_term(pc, term)
                conjunction = one if conjunction is None else conjunction & one
            expression = conjunction if expression is None else expression | conjunction
        return expression

    def to_spark_sql(self) -> str:
        """The filter as a Spark SQL boolean expression."""
        if self.sql is not None:
            return self.sql
        groups = [" AND ".join(_sql_term(t) for t in group) for group in self.clauses]
        return " OR ".join(f"({g})" for g in groups)


def _usage(found: str) -> str:
    return (
        "filter= takes (column, op, value) tuples, a list of lists of them (OR of ANDs), or "
        f"a Spark SQL string; {found}"
    )


def _is_group(item: Any) -> bool:
    return isinstance(item, list) or (
        isinstance(item, tuple) and bool(item) and all(isinstance(t, (tuple, list)) for t in item)
    )


def _term(item: Any) -> Term:
    if not isinstance(item, (tuple, list)) or len(item) != 3:
        raise TypeError(_usage(f"got the term {item!r:.80}"))
    column, op, value = item
    op = str(op).lower()
    if not isinstance(column, str) or not column:
        raise TypeError(_usage(f"the column of {item!r:.80} is not a name"))
    if op not in _OPS:
        raise ValueError(f"filter term {item!r:.80}: op must be one of {_OPS}")
    values = value if op in ("in", "not in") else [value]
    if op in ("in", "not in") and (
        isinstance(value, (str, bytes)) or not isinstance(value, Sequence)
    ):
        raise TypeError(f"filter term {item!r:.80}: '{op}' takes a list of values")
    for v in values:
        _check_value(v, item)
    return (column, op, list(value) if op in ("in", "not in") else value)


def _check_value(value: Any, item: Any) -> None:
    if value is None:
        raise ValueError(
            f"filter term {item!r:.80} compares with None, which matches no row in SQL; "
            "filter nulls in Spark or with a Spark SQL string ('col IS NULL')"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"filter term {item!r:.80}: the value must be a finite number")
    if not isinstance(value, (bool, int, float, str, Decimal, dt.date)):
        raise TypeError(
            f"filter term {item!r:.80}: values must be numbers, strings, dates or "
            f"datetimes, got {type(value).__name__}"
        )


def _arrow_term(pc: Any, term: Term) -> Any:
    """One term with SQL's meaning: a null value never matches (also not for ``not in``)."""
    column, op, value = term
    field = pc.field(column)
    if op in ("in", "not in"):
        import pyarrow as pa

        matched = field.isin(pa.array(value))
        return (~matched & field.is_valid()) if op == "not in" else matched
    compare = {"=": "equal", "==": "equal", "!=": "not_equal", "<": "less", ">": "greater",
               "<=": "less_equal", ">=": "greater_equal"}[op]  # fmt: skip
    return getattr(pc, compare)(field, pc.scalar(value))


def _json_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, (dt.date, Decimal)):
        return str(value)
    return value


def _sql_term(term: Term) -> str:
    column, op, value = term
    name = "`" + column.replace("`", "``") + "`"
    if op in ("in", "not in"):
        return f"{name} {op.upper()} ({', '.join(_sql_literal(v) for v in value)})"
    return f"{name} {'=' if op == '==' else op} {_sql_literal(value)}"


def _sql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, float):
        return repr(value) + "D"
    if isinstance(value, dt.datetime):
        return f"TIMESTAMP {_sql_string(value.isoformat(sep=' '))}"
    if isinstance(value, dt.date):
        return f"DATE {_sql_string(value.isoformat())}"
    return _sql_string(str(value))


def _sql_string(text: str) -> str:
    # Spark SQL string literals take backslash escapes (spark.sql.parser.escapedStringLiterals
    # is off by default); json.dumps escapes backslashes, quotes and control characters.
    return "'" + json.dumps(text, ensure_ascii=False)[1:-1].replace("'", "\\'") + "'"
