"""Reading a database as an attacker with a copy of it would: every table, every row, as text."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine


async def dump(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table of the database at `url`."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
            out: dict[str, list[dict[str, Any]]] = {}
            for name in names:
                rows = (await conn.execute(text(f'SELECT * FROM "{name}"'))).mappings().all()
                out[name] = [dict(r) for r in rows]
            return out
    finally:
        await engine.dispose()


def places(tables: dict[str, list[dict[str, Any]]], needle: str) -> list[str]:
    """Where `needle` occurs in a dump: table.column of every cell that holds it."""
    found = []
    for table, rows in tables.items():
        for row in rows:
            for column, value in row.items():
                if value is not None and needle in str(value):
                    found.append(f"{table}.{column}")
    return sorted(set(found))
