"""Merges as records: which users a person's cluster merged, and which merges were undone."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Merge
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
        out[root_id][m.id] = MergeRecord(
            id=m.id, survivor_id=m.survivor_id, absorbed_id=m.absorbed_id, at=m.at, undone_at=m.undone_at
        )
    return {u: list(found.values()) for u, found in out.items()}
