"""SQL for staff role grants; a person's grants are read across their merge cluster."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import RoleGrant
from app.domain.entitlements import RoleGrantRecord
from app.stores.identity import merge_cluster


def _record(g: Any) -> RoleGrantRecord:
    return RoleGrantRecord(
        id=g.id,
        user_id=g.user_id,
        role=g.role,
        scope=g.scope or None,
        granted_at=g.granted_at,
        granted_by=g.granted_by,
    )


async def active_by_user_ids(
    session: AsyncSession, user_ids: Sequence[int]
) -> dict[int, list[RoleGrantRecord]]:
    """Unrevoked grants of each user and of the users merged into it, oldest first."""
    out: dict[int, list[RoleGrantRecord]] = defaultdict(list)
    if not user_ids:
        return out
    members = merge_cluster(user_ids)
    stmt = (
        select(members.c.root_id, RoleGrant)
        .join(RoleGrant, RoleGrant.user_id == members.c.id)
        .where(RoleGrant.revoked_at.is_(None))
        .order_by(members.c.root_id, RoleGrant.granted_at, RoleGrant.id)
    )
    for root_id, g in (await session.execute(stmt)).all():
        out[root_id].append(_record(g))
    return out


async def insert_grant(
    session: AsyncSession, *, user_id: int, role: str, scope: str | None, at: datetime, actor: str
) -> None:
    await session.execute(
        insert(RoleGrant).values(
            user_id=user_id, role=role, scope=scope or "", granted_at=at, granted_by=actor
        )
    )


async def revoke(session: AsyncSession, grant_ids: Sequence[int], *, at: datetime, actor: str) -> None:
    """Close grants; the rows stay with who revoked them and when."""
    if grant_ids:
        await session.execute(
            update(RoleGrant)
            .where(RoleGrant.id.in_(grant_ids), RoleGrant.revoked_at.is_(None))
            .values(revoked_at=at, revoked_by=actor)
        )
