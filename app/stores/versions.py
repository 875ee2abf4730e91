"""Users' data versions for the response cache: the one statement a cache hit runs."""

from __future__ import annotations

from collections.abc import Iterable

from app.db.engine import Database
from app.stores.identity import user_versions

_SQL = (
    "SELECT id, data_version FROM users WHERE id = ANY($1::bigint[])"
    " AND merged_into_id IS NULL AND erased_at IS NULL"
)
# One user, the common entry: its id bound as a value, so PostgreSQL keeps a generic plan.
_ONE = "SELECT data_version FROM users WHERE id = $1 AND merged_into_id IS NULL AND erased_at IS NULL"


class VersionReader:
    """On PostgreSQL, the compiled reads' asyncpg connections (app/db/direct.py): SQLAlchemy's
    layers, and asyncpg's own pool with its task per release, cost more than the query.

    Elsewhere (SQLite) the hub's read engine serves, through SQLAlchemy Core.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    async def __call__(self, user_ids: Iterable[int]) -> dict[int, int]:
        ids = list(set(user_ids))
        direct = self.db.direct
        if direct is None:
            async with self.db.read_engine.connect() as conn:
                return await user_versions(conn, ids)
        if len(ids) == 1:
            version = await direct.fetchval(_ONE, ids[0])
            return {} if version is None else {ids[0]: version}
        return {r[0]: r[1] for r in await direct.fetch(_SQL, ids)}

    async def close(self) -> None:
        """Nothing of its own to close: the connections go with the database."""
