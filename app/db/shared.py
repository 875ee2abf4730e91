"""One read session per database for a whole request, shared by its loaders and lookups."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.engine import Engines


class SharedReads:
    """A request's reads on one connection per database instead of a pool checkout per batch.

    strawberry resolves sibling fields concurrently, so loader batches of one request can be due
    at the same moment: they take turns on the connection (a lock per database). Whoever holds
    the turn must not wait for another loader meanwhile. With `shared` off (WebSocket
    connections, which live long) every use gets a session of its own, as before.
    """

    def __init__(self, *, shared: bool) -> None:
        self.shared = shared
        self._open: dict[int, tuple[AsyncSession, asyncio.Lock]] = {}

    @property
    def holds(self) -> bool:
        """Whether a session (and its connection) is open."""
        return bool(self._open)

    @asynccontextmanager
    async def session(self, engines: Engines) -> AsyncIterator[AsyncSession]:
        """A read session on `engines`' database, this request's own while it lasts."""
        if not self.shared:
            async with engines.read_sessions() as own:
                yield own
            return
        key = id(engines.read_sessions)  # a channel store on the hub's database is the hub's
        entry = self._open.get(key)
        if entry is None:
            entry = self._open[key] = (engines.read_sessions(), asyncio.Lock())
        session, lock = entry
        async with lock:
            try:
                yield session
            except Exception:
                # A statement failed: whatever state it left, the next use starts afresh.
                if self._open.get(key) is entry:
                    del self._open[key]
                await session.close()
                raise

    async def close(self) -> None:
        """Give the connections back (at the end of the request, or before it writes)."""
        opened, self._open = self._open, {}
        for session, lock in opened.values():
            async with lock:
                await session.close()
