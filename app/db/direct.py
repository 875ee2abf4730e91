"""Reads that need nothing of SQLAlchemy, on PostgreSQL: a small asyncpg pool per database.

A compiled read is one statement returning one value of text. Through a SQLAlchemy session it
paid more for the session, the pool checkout and the check-in than PostgreSQL's client work:
here a connection comes from asyncpg's own pool, with no reset query on release (reads in
autocommit set nothing), and the statement is prepared once per connection by asyncpg (as many
as TROIKA_DB_STATEMENT_CACHE_SIZE, like the main pool's).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """No reset query on release: the statements here are reads that set nothing."""


class DirectReads:
    """A lazily opened asyncpg pool on one PostgreSQL database (at most `max_size` connections)."""

    def __init__(
        self,
        url: str,
        *,
        max_size: int,
        timeout: float,
        statement_cache_size: int,
        server_settings: dict[str, str] | None = None,
    ) -> None:
        self.dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.max_size = max_size
        self.timeout = timeout  # how long a request waits for a free connection
        self.statement_cache_size = statement_cache_size  # 0 behind PgBouncer in transaction mode
        self.server_settings = server_settings
        self.pool: asyncpg.Pool | None = None
        self.lock = asyncio.Lock()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """A connection of the pool for the length of the block."""
        pool = self.pool or await self._open()
        async with asyncio.timeout(self.timeout):  # asyncpg's own timeout runs a task per acquire
            conn = await pool.acquire()
        try:
            yield conn
        finally:
            await pool.release(conn)

    async def _open(self) -> asyncpg.Pool:
        async with self.lock:
            if self.pool is None:
                self.pool = await asyncpg.create_pool(
                    self.dsn,
                    min_size=0,
                    max_size=self.max_size,
                    reset=_keep_session,
                    statement_cache_size=self.statement_cache_size,
                    server_settings=self.server_settings,
                )
            return self.pool

    async def close(self) -> None:
        if self.pool is not None:
            pool, self.pool = self.pool, None
            await pool.close()
