"""Users' data versions: bumped by every change to what a user's view shows, read by the one
statement a response-cache hit runs."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.db.engine import Database
from app.db.models import User
from app.domain import UserRecord
from app.stores.bulk import is_postgres

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


async def bump_active_user(session: AsyncSession, user_id: int) -> UserRecord | None:
    """Advance an active user's data version, which locks its row; None when `user_id` is absorbed,
    erased or unknown (the caller resolves it the long way). The record carries the new version."""
    stmt = (
        update(User)
        .where(User.id == user_id, User.merged_into_id.is_(None), User.erased_at.is_(None))
        .values(data_version=User.data_version + 1)
        .returning(User.id, User.created_at, User.data_version)
        .execution_options(synchronize_session=False)
    )
    row = (await session.execute(stmt)).first()
    return None if row is None else UserRecord(id=row.id, created_at=row.created_at, version=row.data_version)


async def bump_versions(session: AsyncSession, ids: Iterable[int]) -> list[int]:
    """Advance the data version of these users, locking their rows in id order (no deadlocks).

    Returns those found merged into another user once locked: their survivor's view changed too.
    """
    wanted = sorted(set(ids))
    if not wanted:
        return []
    if is_postgres(session):
        rows = (await session.execute(_BUMP_PG, {"ids": ",".join(map(str, wanted))})).all()
    else:
        locked = select(User.id).where(User.id.in_(wanted)).order_by(User.id).with_for_update()
        rows = (
            await session.execute(
                update(User)
                .where(User.id.in_(locked.scalar_subquery()))
                .values(data_version=User.data_version + 1)
                .returning(User.id, User.merged_into_id)
                .execution_options(synchronize_session=False)
            )
        ).all()
    return sorted(r.id for r in rows if r.merged_into_id is not None)


# One array parameter rather than a bind per id: a batch can touch thousands of users.
# The rows are locked first, in id order (an init plan), then updated by index: as `id IN (…)`
# the planner hashes the whole users table.
_BUMP_PG = text(
    "UPDATE users SET data_version = data_version + 1 WHERE id = ANY(ARRAY("
    "SELECT id FROM users WHERE id = ANY(CAST(string_to_array(CAST(:ids AS text), ',') AS bigint[]))"
    " ORDER BY id FOR UPDATE)) RETURNING id, merged_into_id"
)


_VERSIONS = select(User.id, User.data_version, User.merged_into_id, User.erased_at).where(
    User.id.in_(bindparam("ids", expanding=True))
)


async def user_versions(conn: AsyncConnection, ids: Iterable[int]) -> dict[int, int]:
    """The data version of each of these users that is still active (absorbed and erased ones are
    left out).

    On a Core connection, not a session: it is the whole cost of a cache hit.
    """
    rows = (await conn.execute(_VERSIONS, {"ids": list(set(ids))})).all()
    return {r.id: r.data_version for r in rows if r.merged_into_id is None and r.erased_at is None}
