"""Counting the SQL a request runs: the proof that reads are batched (and cache hits are cheap)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import event

from app.background import IN_BACKGROUND


@contextmanager
def count_statements(app: FastAPI) -> Iterator[list[str]]:
    statements: list[str] = []
    engines = set()
    for group in (app.state.db, *(s.engines for s in app.state.db.stores)):
        engines.add(group.write_engine.sync_engine)
        if group.read_engine.pool is not group.write_engine.pool:  # else an option view of the writer
            engines.add(group.read_engine.sync_engine)

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if IN_BACKGROUND.get():  # the change feed, gauges, the job worker: no request's statements
            return
        if not statement.lstrip().upper().startswith(("BEGIN", "PRAGMA", "SAVEPOINT", "RELEASE")):
            statements.append(statement)

    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


@contextmanager
def count_direct_statements(app: FastAPI) -> Iterator[list[str]]:
    """Statements a request sends on connections taken with `DirectReads.connection` (the hub's
    own asyncpg pools, app/db/direct.py): the one-statement writes, which no engine event sees.
    None on SQLite."""
    statements: list[str] = []
    direct = app.state.db.direct_writes or app.state.db.direct
    if direct is None:
        yield statements
        return
    taken = direct.connection

    def record(query: Any) -> None:
        if not IN_BACKGROUND.get():
            statements.append(query.query)

    @asynccontextmanager
    async def connection() -> AsyncIterator[Any]:
        async with taken() as conn:
            conn.add_query_logger(record)
            try:
                yield conn
            finally:
                await asyncio.sleep(0)  # asyncpg calls its loggers soon after, not at once
                conn.remove_query_logger(record)

    direct.connection = connection
    try:
        yield statements
    finally:
        del direct.connection
