"""Multi-row writes on PostgreSQL as one statement over arrays: `INSERT … SELECT … FROM unnest(…)`.

An executemany of N rows costs SQLAlchemy a bind-parameter set per row and PostgreSQL the parse of
a VALUES list of N x columns parameters; one array per column costs both little per row. A column
whose value is the same in every row (the channel, the batch's clock, the actor) travels as one
parameter: asyncpg's array encoding costs about half a microsecond per element.
Rows are inserted in array order, so callers that sort by the conflict key lock in that order.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Result, TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.jsoncodec import dumps

# (column, PostgreSQL type); "json" columns travel as text and are cast on the way in.
Columns = tuple[tuple[str, str], ...]


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


@lru_cache(maxsize=64)
def _statement(table: str, columns: Columns, tail: str, shared: frozenset[str]) -> TextClause:
    """The statement for `table` with `shared` columns as single parameters, built once per shape."""

    def pick(column: str, kind: str) -> str:
        if kind == "json":  # never shared: each row's document differs
            return f"CAST(x.{column} AS json)"
        return f"CAST(:{column} AS {kind})" if column in shared else f"x.{column}"

    names = ", ".join(c for c, _ in columns)
    listed = [(c, t) for c, t in columns if c not in shared]
    arrays = ", ".join(f"CAST(:{c} AS {'text' if t == 'json' else t}[])" for c, t in listed)
    picks = ", ".join(pick(c, t) for c, t in columns)
    unnested = ", ".join(c for c, _ in listed)
    return text(f"INSERT INTO {table} ({names}) SELECT {picks} FROM unnest({arrays}) AS x({unnested}) {tail}")


async def insert_rows(
    session: AsyncSession, table: str, columns: Columns, rows: Sequence[dict[str, Any]], tail: str = ""
) -> Result[Any]:
    """Insert `rows` (in their order) with one statement; `tail` is its ON CONFLICT / RETURNING clause."""
    params: dict[str, Any] = {}
    shared: set[str] = set()
    for name, kind in columns:
        values = [r[name] for r in rows]
        if kind == "json":
            params[name] = [None if v is None else dumps(v) for v in values]
        elif values.count(values[0]) == len(values):
            params[name] = values[0]
            shared.add(name)
        else:
            params[name] = values
    if len(shared) == len(columns):  # unnest needs one array to know how many rows there are
        first = columns[0][0]
        shared.discard(first)
        params[first] = [params[first]] * len(rows)
    return await session.execute(_statement(table, columns, tail, frozenset(shared)), params)
