"""Reads that need nothing of SQLAlchemy, on PostgreSQL: a few asyncpg connections per database.

A compiled read is one statement returning one value of text. Through a SQLAlchemy session it
paid more for the session, the pool checkout and the check-in than for PostgreSQL's client work,
and asyncpg's own pool still runs a task per release (`asyncio.shield`). Here idle connections
wait in a list: taking one and giving it back cost a list operation. The statements are reads in
autocommit that set nothing, so a connection needs no reset between uses; one whose statement
failed or was interrupted is closed, not reused. asyncpg prepares each statement once per
connection (as many as TROIKA_DB_STATEMENT_CACHE_SIZE, like the main pool's).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url


class DirectReads:
    """At most `max_size` asyncpg connections to one PostgreSQL database, opened as needed."""

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
        self._idle: list[Any] = []
        self._opened = 0
        self._waiting: deque[asyncio.Future[Any]] = deque()  # a connection, or None: open one
        self._closed = False
        self.taken = 0  # connections handed out so far (tests count a request's)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """A connection for the length of the block, given back after (closed if it failed)."""
        conn = await self._take()
        self.taken += 1
        try:
            yield conn
        except BaseException:
            self._drop(conn)
            raise
        self._give(conn)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        """One statement's single value, on a connection taken for it (`connection` without the
        context manager's generator: a compiled read's only use, on every request)."""
        conn = await self._take()
        self.taken += 1
        try:
            value = await conn.fetchval(sql, *args)
        except BaseException:
            self._drop(conn)
            raise
        self._give(conn)
        return value

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        """A statement's rows, as `fetchval` takes a connection for it."""
        conn = await self._take()
        self.taken += 1
        try:
            rows = await conn.fetch(sql, *args)
        except BaseException:
            self._drop(conn)
            raise
        self._give(conn)
        return rows  # type: ignore[no-any-return]

    async def _take(self) -> Any:
        if self._idle:
            return self._idle.pop()
        if self._opened >= self.max_size:
            waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                async with asyncio.timeout(self.timeout):
                    conn = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                    self._give(waiter.result())  # handed over just as the wait ended
                elif waiter.done() and not waiter.cancelled():
                    self._wake()  # a place was freed for it: pass it on
                raise
            if conn is not None:
                return conn
        self._opened += 1
        try:
            return await asyncpg.connect(
                self.dsn,
                statement_cache_size=self.statement_cache_size,
                server_settings=self.server_settings,
            )
        except BaseException:
            self._opened -= 1
            self._wake()
            raise

    def _give(self, conn: Any) -> None:
        if self._closed or conn.is_closed():
            self._drop(conn)
            return
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def _drop(self, conn: Any) -> None:
        conn.terminate()
        self._opened -= 1
        self._wake()

    def _wake(self) -> None:
        """A place is free: the first request waiting opens a connection of its own."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            self._opened -= 1
            await conn.close()
