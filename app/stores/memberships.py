"""SQL for memberships and the points ledger; a person's rows are read across their merge cluster."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Membership, PointsEntry
from app.domain import Channel
from app.domain.entitlements import MembershipRecord
from app.stores.identity import merge_cluster


def _record(m: Any) -> MembershipRecord:
    return MembershipRecord(
        id=m.id,
        user_id=m.user_id,
        tier=m.tier,
        source_channel=Channel(m.source_channel),
        since=m.since,
        expires_at=m.expires_at,
        granted_by=m.granted_by,
    )


async def open_by_user_ids(
    session: AsyncSession, user_ids: Sequence[int]
) -> dict[int, list[MembershipRecord]]:
    """Memberships not ended (expired ones included) of each user and the users merged into it."""
    out: dict[int, list[MembershipRecord]] = defaultdict(list)
    if not user_ids:
        return out
    members = merge_cluster(user_ids)
    stmt = (
        select(members.c.root_id, Membership)
        .join(Membership, Membership.user_id == members.c.id)
        .where(Membership.ended_at.is_(None))
        .order_by(members.c.root_id, Membership.id)
    )
    for root_id, m in (await session.execute(stmt)).all():
        out[root_id].append(_record(m))
    return out


async def insert_membership(
    session: AsyncSession,
    *,
    user_id: int,
    tier: str,
    source_channel: Channel,
    since: datetime,
    expires_at: datetime | None,
    actor: str,
) -> None:
    await session.execute(
        insert(Membership).values(
            user_id=user_id,
            tier=tier,
            source_channel=source_channel.value,
            since=since,
            expires_at=expires_at,
            granted_by=actor,
        )
    )


async def renew(session: AsyncSession, membership_id: int, *, expires_at: datetime | None) -> None:
    """The same tier again in the same channel: a new end date, the same start."""
    await session.execute(
        update(Membership).where(Membership.id == membership_id).values(expires_at=expires_at)
    )


async def end(session: AsyncSession, membership_id: int, *, at: datetime, actor: str, reason: str) -> None:
    """Close a membership; the row stays (revoked or replaced, by whom, when)."""
    await session.execute(
        update(Membership)
        .where(Membership.id == membership_id, Membership.ended_at.is_(None))
        .values(ended_at=at, ended_by=actor, end_reason=reason)
    )


async def points_by_user_ids(session: AsyncSession, user_ids: Sequence[int]) -> dict[int, int]:
    """Each user's points balance, summed over their merge cluster, in one statement."""
    if not user_ids:
        return {}
    members = merge_cluster(user_ids)
    stmt = (
        select(members.c.root_id, func.coalesce(func.sum(PointsEntry.delta), 0))
        .join(PointsEntry, PointsEntry.user_id == members.c.id)
        .group_by(members.c.root_id)
    )
    return {root_id: int(total) for root_id, total in (await session.execute(stmt)).all()}


async def add_points(
    session: AsyncSession,
    *,
    user_id: int,
    delta: int,
    reason: str,
    source_channel: Channel,
    actor: str,
    at: datetime,
) -> None:
    """The only way the points ledger grows."""
    await session.execute(
        insert(PointsEntry).values(
            user_id=user_id,
            delta=delta,
            reason=reason,
            source_channel=source_channel.value,
            actor=actor,
            at=at,
        )
    )
