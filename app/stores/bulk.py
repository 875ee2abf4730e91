"""Multi-row writes on PostgreSQL as one statement over arrays: `INSERT … SELECT … FROM unnest(…)`.

An executemany of N rows costs SQLAlchemy a bind-parameter set per row and PostgreSQL the parse of
a VALUES list of N x columns parameters; one array per column costs both almost nothing per row.
Rows are inserted in array order, so callers that sort by the conflict key lock in that order.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.jsoncodec import dumps

# (column, PostgreSQL type); "json" columns travel as text and are cast on the way in.
Columns = tuple[tuple[str, str], ...]


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


@lru_cache(maxsize=32)
def unnest_insert(table: str, columns: Columns, tail: str = "") -> TextClause:
    """The statement for `table`, built once; `tail` is its ON CONFLICT / RETURNING clause."""
    names = ", ".join(c for c, _ in columns)
    arrays = ", ".join(f"CAST(:{c} AS {'text' if t == 'json' else t}[])" for c, t in columns)
    picks = ", ".join(f"CAST(x.{c} AS json)" if t == "json" else f"x.{c}" for c, t in columns)
    return text(f"INSERT INTO {table} ({names}) SELECT {picks} FROM unnest({arrays}) AS x({names}) {tail}")


def arrays(rows: Sequence[dict[str, Any]], columns: Columns) -> dict[str, list[Any]]:
    """One list per column, JSON columns encoded."""
    out: dict[str, list[Any]] = {}
    for name, kind in columns:
        values = [r[name] for r in rows]
        out[name] = [None if v is None else dumps(v) for v in values] if kind == "json" else values
    return out
