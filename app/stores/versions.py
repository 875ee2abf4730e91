"""Users' data versions for the response cache: the one statement a cache hit runs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import asyncpg
from sqlalchemy.engine import make_url

from app.db.engine import Database
from app.stores.identity import user_versions

_SQL = (
    "SELECT id, data_version FROM users WHERE id = ANY($1::bigint[])"
    " AND merged_into_id IS NULL AND erased_at IS NULL"
)


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """No reset query on release: this pool runs one read-only statement and sets nothing."""


class VersionReader:
    """On PostgreSQL, a small asyncpg pool of its own: SQLAlchemy's layers cost more than the query.

    Elsewhere (SQLite) the hub's read engine serves, through SQLAlchemy Core.
    """

    def __init__(self, db: Database, *, max_connections: int = 4) -> None:
        self.db = db
        self.max_connections = max_connections
        self.pool: asyncpg.Pool | None = None
        self.lock = asyncio.Lock()
        url = make_url(db.url)
        self.dsn = (
            None
            if url.get_backend_name() != "postgresql"
            else url.set(drivername="postgresql").render_as_string(hide_password=False)
        )

    async def __call__(self, user_ids: Iterable[int]) -> dict[int, int]:
        ids = list(set(user_ids))
        if self.dsn is None:
            async with self.db.read_engine.connect() as conn:
                return await user_versions(conn, ids)
        pool = self.pool or await self._open()
        return {r[0]: r[1] for r in await pool.fetch(_SQL, ids)}

    async def _open(self) -> asyncpg.Pool:
        async with self.lock:
            if self.pool is None:
                self.pool = await asyncpg.create_pool(
                    self.dsn, min_size=1, max_size=self.max_connections, reset=_keep_session
                )
            return self.pool

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None
