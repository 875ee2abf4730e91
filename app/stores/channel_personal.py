"""SQL for a person's rows in one channel-store database: all of them, by identity ref, to export
or to delete (rejected records included, when their identity was readable)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.channel_models import (
    ChannelCartItem,
    ChannelEvent,
    ChannelOrder,
    ChannelReservation,
    DeadLetter,
    InterestTag,
    OaComment,
    RawRecord,
)

TABLES: tuple[Any, ...] = (
    ChannelOrder,
    ChannelReservation,
    ChannelCartItem,
    ChannelEvent,
    RawRecord,
    DeadLetter,
    OaComment,
)
_ORDER = {
    ChannelOrder: (ChannelOrder.placed_at, ChannelOrder.id),
    ChannelReservation: (ChannelReservation.booked_at, ChannelReservation.id),
    ChannelCartItem: (ChannelCartItem.updated_at, ChannelCartItem.id),
    ChannelEvent: (ChannelEvent.occurred_at, ChannelEvent.id),
    RawRecord: (RawRecord.occurred_at, RawRecord.id),
    DeadLetter: (DeadLetter.received_at, DeadLetter.id),
    OaComment: (OaComment.at, OaComment.id),
}
# Kept from the rows above (not exported: nothing in them that the events do not say).
DERIVED: tuple[Any, ...] = (InterestTag,)
CHUNK = 500  # refs per statement: a person has a handful; the bound keeps any statement small


def _chunks(refs: Sequence[str]) -> list[list[str]]:
    return [list(refs[i : i + CHUNK]) for i in range(0, len(refs), CHUNK)]


async def rows_for_refs(session: AsyncSession, refs: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Every row of every channel table keyed by one of `refs`, oldest first, by table name."""
    out: dict[str, list[dict[str, Any]]] = {}
    for model in TABLES:
        rows: list[dict[str, Any]] = []
        for chunk in _chunks(refs):
            stmt = (
                select(*model.__table__.columns).where(model.identity_ref.in_(chunk)).order_by(*_ORDER[model])
            )
            rows += [dict(r) for r in (await session.execute(stmt)).mappings().all()]
        out[model.__tablename__] = rows
    return out


async def delete_for_refs(session: AsyncSession, refs: Sequence[str]) -> dict[str, int]:
    """Delete every row keyed by one of `refs`; how many went, by table name."""
    counts: dict[str, int] = {}
    for model in TABLES + DERIVED:
        n = 0
        for chunk in _chunks(refs):
            result = await session.execute(
                delete(model)
                .where(model.identity_ref.in_(chunk))
                .execution_options(synchronize_session=False)
            )
            n += int(result.rowcount)  # type: ignore[attr-defined]
        counts[model.__tablename__] = n
    return counts
