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

# (column, PostgreSQL type); "json" columns take JSON documents (dicts, lists) as values.
Columns = tuple[tuple[str, str], ...]


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# Unit separator: text and integer columns travel as one string split by PostgreSQL, when no value
# holds it; JSON columns as one JSON array.
SEP = "\x1f"
_SPLIT = "string_to_array(CAST(:{c} AS text), E'\\x1f')"
_INTEGERS = frozenset({"int", "bigint"})


@lru_cache(maxsize=128)
def _statement(
    table: str, columns: Columns, tail: str, shared: frozenset[str], joined: frozenset[str], around: str
) -> TextClause:
    """The statement for one shape of parameters (shared, joined or array columns), built once."""

    def pick(column: str, kind: str) -> str:
        if column in shared:
            return f"CAST(:{column} AS {kind})"
        return f"CAST(x.{column} AS json)" if kind == "json" else f"x.{column}"

    names = ", ".join(c for c, _ in columns)
    listed = [(c, t) for c, t in columns if c not in shared]
    arrays = ", ".join(array_sql(c, t, c in joined) for c, t in listed)
    picks = ", ".join(pick(c, t) for c, t in columns)
    unnested = ", ".join(c for c, _ in listed)
    insert = f"INSERT INTO {table} ({names}) SELECT {picks} FROM unnest({arrays}) AS x({unnested}) {tail}"
    return text(around.replace("{insert}", insert))


def array_sql(column: str, kind: str, joined: bool) -> str:
    """The SQL that turns parameter `column` into an array of `kind` (json: of text)."""
    if not joined:
        return f"CAST(:{column} AS {'text' if kind == 'json' else kind}[])"
    if kind == "json":  # a JSON array of the column's documents, in row order
        return (
            f"ARRAY(SELECT d FROM json_array_elements(CAST(:{column} AS json)) WITH ORDINALITY AS e(d, n)"
            " ORDER BY n)"
        )
    split = _SPLIT.format(c=column)
    return split if kind == "text" else f"CAST({split} AS {kind}[])"


def column_param(kind: str, values: list[Any]) -> tuple[Any, bool]:
    """One column's values as a parameter: a joined string when that is safe (True), else the list."""
    if kind == "json":
        if None not in values:  # one document for the column: one call into orjson, not one per row
            return dumps(values), True
        return [None if v is None else dumps(v) for v in values], False
    if kind == "text" and None not in values:
        joined = SEP.join(values)
        # No value holds the separator itself; and '' would split into no element at all.
        if joined and joined.count(SEP) == len(values) - 1:
            return joined, True
    if kind in _INTEGERS and all(type(v) is int for v in values):
        return SEP.join(map(str, values)), True
    return values, False


async def insert_rows(
    session: AsyncSession,
    table: str,
    columns: Columns,
    rows: Sequence[dict[str, Any]],
    tail: str = "",
    *,
    around: str = "{insert}",
    more: dict[str, Any] | None = None,
) -> Result[Any]:
    """Insert `rows` (in their order) with one statement; `tail` is its ON CONFLICT / RETURNING clause.

    `around` may embed the INSERT in a larger statement (a CTE), with `more` parameters of its own.
    """
    params: dict[str, Any] = dict(more or {})
    shared: set[str] = set()
    joined: set[str] = set()
    for name, kind in columns:
        values = [r[name] for r in rows]
        if len(values) > 1 and values.count(values[0]) == len(values):
            one = values[0]
            params[name] = dumps(one) if kind == "json" and one is not None else one
            shared.add(name)
            continue
        params[name], as_text = column_param(kind, values)
        if as_text:
            joined.add(name)
    if len(shared) == len(columns):  # unnest needs one array to know how many rows there are
        first = columns[0][0]
        shared.discard(first)
        params[first] = [params[first]] * len(rows)
    stmt = _statement(table, columns, tail, frozenset(shared), frozenset(joined), around)
    return await session.execute(stmt, params)
