"""Merges as records: which users a person's cluster merged, and which merges were undone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Merge, MergeIdentity
from app.domain import MergeRecord
from app.stores.identity import merge_cluster


async def merges_by_user_ids(session: AsyncSession, user_ids: Sequence[int]) -> dict[int, list[MergeRecord]]:
    """Each user's merges, oldest first: those of its cluster (the user and every user merged into
    it), as survivor or as absorbed, undone ones included."""
    out: dict[int, dict[int, MergeRecord]] = {u: {} for u in user_ids}
    if not user_ids:
        return {}
    members = merge_cluster(user_ids)
    stmt = (
        select(members.c.root_id, Merge)
        .join(Merge, or_(Merge.survivor_id == members.c.id, Merge.absorbed_id == members.c.id))
        .order_by(Merge.at, Merge.id)
    )
    for root_id, m in (await session.execute(stmt)).all():
        out[root_id][m.id] = _merge(m)
    return {u: list(found.values()) for u, found in out.items()}


def _merge(m: Merge) -> MergeRecord:
    return MergeRecord(
        id=m.id, survivor_id=m.survivor_id, absorbed_id=m.absorbed_id, at=m.at, undone_at=m.undone_at
    )


async def insert_merge(
    session: AsyncSession,
    *,
    survivor_id: int,
    absorbed_id: int,
    identity_ids: Sequence[int],
    at: datetime,
    actor: str,
    reason: str,
) -> MergeRecord:
    """Record a merge and the identities the absorbed user brought."""
    merge_id = (
        await session.execute(
            insert(Merge)
            .values(survivor_id=survivor_id, absorbed_id=absorbed_id, at=at, actor=actor, reason=reason)
            .returning(Merge.id)
        )
    ).scalar_one()
    if identity_ids:
        await session.execute(
            insert(MergeIdentity), [{"merge_id": merge_id, "identity_id": i} for i in identity_ids]
        )
    return MergeRecord(id=merge_id, survivor_id=survivor_id, absorbed_id=absorbed_id, at=at)


async def merge_for_update(session: AsyncSession, merge_id: int) -> MergeRecord | None:
    """Read a merge and lock it, so it is undone at most once."""
    row = (
        await session.execute(select(Merge).where(Merge.id == merge_id).with_for_update())
    ).scalar_one_or_none()
    return None if row is None else _merge(row)


async def merge_identity_ids(session: AsyncSession, merge_id: int) -> list[int]:
    """What the absorbed user brought into a merge."""
    stmt = select(MergeIdentity.identity_id).where(MergeIdentity.merge_id == merge_id)
    return list((await session.execute(stmt)).scalars())


async def mark_merge_undone(session: AsyncSession, merge_id: int, *, at: datetime, actor: str) -> None:
    """Close a merge so a second undo is refused."""
    await session.execute(update(Merge).where(Merge.id == merge_id).values(undone_at=at, undone_by=actor))
