"""SQL for the outbox: append in commit order, read after a cursor, prune by age."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import bindparam, delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from app.db.models import Change
from app.domain.changes import ChangeRow

# The head row is the lock: an UPDATE waits for the writer holding it to commit, then numbers
# from the value that writer committed (READ COMMITTED re-reads a row it waited for), so locking
# and numbering are one statement. Never below the newest row (an index probe): rows written past
# the head (by a version that numbered from max(id), or by hand) are numbered after, not
# collided with. `{after}` joins the head to a relation that must be locked first (the
# one-statement writes lock their user before the head); "" for none.
HEAD_CTE = (
    "head AS (UPDATE changes_head SET last = greatest(changes_head.last,"
    " (SELECT coalesce(max(id), 0) FROM changes)) + {count}{after}"
    " WHERE changes_head.id = 1 RETURNING changes_head.last)"
)
# Rows numbered after the head, in the order given; answers the last cursor written.
_APPEND_PG = text(
    "WITH "
    + HEAD_CTE.format(count="CAST(:count AS bigint)", after="")
    + ", written AS (INSERT INTO changes (id, user_id, topic, at)"
    " SELECT head.last - CAST(:count AS bigint) + x.n, x.user_id, x.topic, CAST(:at AS timestamptz)"
    " FROM head, unnest(CAST(string_to_array(CAST(:users AS text), ',') AS bigint[]),"
    " CAST(:topics AS text[])) WITH ORDINALITY AS x(user_id, topic, n) RETURNING id)"
    " SELECT max(id) FROM written"
)


def append(session: Session, changes: Sequence[tuple[int, str]], *, at: datetime) -> list[int]:
    """Append (user_id, topic) rows as the transaction's last statement; returns their cursors.

    Synchronous on purpose: it runs in the session's before-commit hook. On PostgreSQL it locks
    the outbox's head row (changes_head) until the commit, so appends happen one transaction at
    a time: a later cursor is always committed later, and numbering from the head leaves no gaps
    (a rolled-back append rolls the head back too). SQLite writers are serial already: they
    number from max + 1 and leave the head alone.
    """
    if not changes:
        return []
    if session.get_bind().dialect.name == "postgresql":
        params = {
            "users": ",".join(str(u) for u, _ in changes),
            "topics": [t for _, t in changes],
            "count": len(changes),
            "at": at,
        }
        last = session.execute(_APPEND_PG, params).scalar_one()
        return list(range(last - len(changes) + 1, last + 1))
    last = session.execute(select(func.coalesce(func.max(Change.id), 0))).scalar_one()
    cursors = list(range(last + 1, last + 1 + len(changes)))
    session.execute(
        insert(Change),
        [
            {"id": c, "user_id": user_id, "topic": topic, "at": at}
            for c, (user_id, topic) in zip(cursors, changes, strict=True)
        ],
    )
    return cursors


_AFTER = (
    select(Change.id, Change.user_id, Change.topic, Change.at)
    .where(Change.id > bindparam("after"))
    .order_by(Change.id)
    .limit(bindparam("limit"))
)
_AFTER_FOR_USERS = _AFTER.where(Change.user_id.in_(bindparam("user_ids", expanding=True)))


async def after(
    conn: AsyncConnection | AsyncSession, cursor: int, *, limit: int, user_ids: Iterable[int] | None = None
) -> list[ChangeRow]:
    """Committed changes after `cursor` (of these users only, if given), oldest first, at most `limit`."""
    if user_ids is None:
        rows = (await conn.execute(_AFTER, {"after": cursor, "limit": limit})).all()
    else:
        params = {"after": cursor, "limit": limit, "user_ids": list(user_ids)}
        rows = (await conn.execute(_AFTER_FOR_USERS, params)).all() if params["user_ids"] else []
    return [ChangeRow(r.id, r.user_id, r.topic, r.at) for r in rows]


async def last_cursor(conn: AsyncConnection | AsyncSession) -> int:
    """The newest cursor (0 for an empty outbox)."""
    return int((await conn.execute(select(func.coalesce(func.max(Change.id), 0)))).scalar_one())


async def first_cursor(conn: AsyncConnection | AsyncSession) -> int | None:
    """The oldest cursor still kept, or None when nothing is."""
    value = (await conn.execute(select(func.min(Change.id)))).scalar_one()
    return None if value is None else int(value)


async def prune(session: AsyncSession, *, older_than: datetime) -> int:
    """Drop rows older than the retention, always keeping the newest (it numbers the next)."""
    newest = await last_cursor(session)
    result = await session.execute(delete(Change).where(Change.at < older_than, Change.id < newest))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
