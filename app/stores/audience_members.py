"""SQL for kept audience membership: members, entries and exits, the follower's cursor."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.db.audience_models import AudienceEvent, AudienceFollower, AudienceMember
from app.db.models import Audience, Change

_CHUNK = 5_000
PAGE = 1000  # entries and exits read at a time
_FOLLOWER = 1


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    user_id: int
    entered: bool
    at: datetime


async def size(session: AsyncSession, audience_id: int) -> int:
    stmt = select(func.count()).where(AudienceMember.audience_id == audience_id)
    return int((await session.execute(stmt)).scalar_one())


async def page(session: AsyncSession, audience_id: int, *, first: int, after_id: int | None) -> list[int]:
    """Member ids in user id order, after `after_id`."""
    stmt = select(AudienceMember.user_id).where(AudienceMember.audience_id == audience_id)
    if after_id is not None:
        stmt = stmt.where(AudienceMember.user_id > after_id)
    return list((await session.execute(stmt.order_by(AudienceMember.user_id).limit(first))).scalars())


async def kept(session: AsyncSession, audience_id: int, user_ids: Sequence[int] | None) -> set[int]:
    """The kept members of one audience (among these users, when given)."""
    stmt = select(AudienceMember.user_id).where(AudienceMember.audience_id == audience_id)
    if user_ids is None:
        return set((await session.execute(stmt)).scalars())
    out: set[int] = set()
    ids = list(user_ids)
    for i in range(0, len(ids), _CHUNK):
        chunk = stmt.where(AudienceMember.user_id.in_(ids[i : i + _CHUNK]))
        out.update((await session.execute(chunk)).scalars())
    return out


async def names_of(session: AsyncSession, user_ids: Sequence[int]) -> dict[int, list[str]]:
    """The names of the audiences each user is kept in, by name."""
    stmt = (
        select(AudienceMember.user_id, Audience.name)
        .join(Audience, Audience.id == AudienceMember.audience_id)
        .where(AudienceMember.user_id.in_(list(user_ids)))
        .order_by(Audience.name)
    )
    out: dict[int, list[str]] = {}
    for row in (await session.execute(stmt)).all():
        out.setdefault(row.user_id, []).append(row.name)
    return out


async def apply(
    session: AsyncSession,
    audience_id: int,
    *,
    entered: Iterable[int],
    left: Iterable[int],
    at: datetime,
    events: bool,
) -> None:
    """Move people in and out of one audience (and record it, when `events`)."""
    ins, outs = sorted(entered), sorted(left)
    for i in range(0, len(outs), _CHUNK):
        chunk = outs[i : i + _CHUNK]
        await session.execute(
            delete(AudienceMember).where(
                AudienceMember.audience_id == audience_id, AudienceMember.user_id.in_(chunk)
            )
        )
    rows = [{"audience_id": audience_id, "user_id": u, "since": at} for u in ins]
    for i in range(0, len(rows), _CHUNK):
        await session.execute(insert(AudienceMember), rows[i : i + _CHUNK])
    if events:
        moved = [{"audience_id": audience_id, "user_id": u, "entered": True, "at": at} for u in ins]
        moved += [{"audience_id": audience_id, "user_id": u, "entered": False, "at": at} for u in outs]
        for i in range(0, len(moved), _CHUNK):
            await session.execute(insert(AudienceEvent), moved[i : i + _CHUNK])


async def forget(session: AsyncSession, audience_id: int) -> None:
    """A deleted audience keeps no members and no events."""
    await session.execute(delete(AudienceMember).where(AudienceMember.audience_id == audience_id))
    await session.execute(delete(AudienceEvent).where(AudienceEvent.audience_id == audience_id))


async def last_event(conn: AsyncConnection | AsyncSession) -> int:
    return int((await conn.execute(select(func.coalesce(func.max(AudienceEvent.id), 0)))).scalar_one())


_EVENTS_AFTER = (
    select(AudienceEvent.id, AudienceEvent.user_id, AudienceEvent.entered, AudienceEvent.at)
    .where(AudienceEvent.audience_id == bindparam("audience_id"), AudienceEvent.id > bindparam("after"))
    .order_by(AudienceEvent.id)
    .limit(bindparam("limit"))
)


async def events_after(
    conn: AsyncConnection | AsyncSession, audience_id: int, after: int, *, limit: int = PAGE
) -> list[EventRow]:
    """One audience's entries and exits after event id `after`, oldest first."""
    params = {"audience_id": audience_id, "after": after, "limit": limit}
    rows = (await conn.execute(_EVENTS_AFTER, params)).all()
    return [EventRow(r.id, r.user_id, r.entered, r.at) for r in rows]


async def prune_events(session: AsyncSession, *, older_than: datetime) -> int:
    result = await session.execute(delete(AudienceEvent).where(AudienceEvent.at < older_than))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def follower_cursor(conn: AsyncConnection | AsyncSession) -> int:
    """How far the follower has read the outbox (a missing row: from the outbox's current end)."""
    found = (
        await conn.execute(select(AudienceFollower.cursor).where(AudienceFollower.id == _FOLLOWER))
    ).scalar_one_or_none()
    if found is not None:
        return int(found)
    return int((await conn.execute(select(func.coalesce(func.max(Change.id), 0)))).scalar_one())


async def advance(session: AsyncSession, old: int, new: int) -> bool:
    """Move the cursor from `old` to `new`; False when another follower has moved it first."""
    stmt = (
        update(AudienceFollower)
        .where(AudienceFollower.id == _FOLLOWER, AudienceFollower.cursor == old)
        .values(cursor=new)
    )
    return bool((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]


async def touched_between(session: AsyncSession, after: int, upto: int) -> set[int]:
    """Users the outbox names in (after, upto]."""
    stmt = select(Change.user_id).where(Change.id > after, Change.id <= upto).distinct()
    return set((await session.execute(stmt)).scalars())
