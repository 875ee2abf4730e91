"""SQL for the columns that hold sealed values: find those an older key sealed, rewrite them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.db.channel_models import DeadLetter, RawRecord
from app.db.models import Identity, IdentityEdge, WechatSession


@dataclass(frozen=True)
class SealedColumn:
    """A column of sealed values: where it lives (the hub, or every channel store) and its purpose."""

    name: str
    id: InstrumentedAttribute[int]
    value: InstrumentedAttribute[Any]
    purpose: str
    in_channel_stores: bool = False


# Every sealed column there is (app/pii.py, app/services/accounts.py, app/ingest/service.py).
SEALED: tuple[SealedColumn, ...] = (
    SealedColumn("identities.sealed", Identity.id, Identity.sealed, "phone"),
    SealedColumn("identity_edges.sealed", IdentityEdge.id, IdentityEdge.sealed, "phone"),
    SealedColumn(
        "wechat_sessions.sealed_key", WechatSession.id, WechatSession.sealed_key, "wechat-session-key"
    ),
    SealedColumn("ch_records.identity_sealed", RawRecord.id, RawRecord.identity_sealed, "phone", True),
    SealedColumn("ch_dead_letters.payload", DeadLetter.id, DeadLetter.payload, "dead-letter", True),
)


def _stale(column: SealedColumn, kid: str) -> Any:
    return column.value.is_not(None) & ~column.value.startswith(f"{kid}.", autoescape=True)


async def count_stale(session: AsyncSession, column: SealedColumn, kid: str) -> int:
    """How many values of `column` a key other than `kid` sealed."""
    stmt = select(func.count()).select_from(column.id.class_).where(_stale(column, kid))
    return int((await session.execute(stmt)).scalar_one())


async def stale_batch(
    session: AsyncSession, column: SealedColumn, kid: str, *, after_id: int, limit: int
) -> list[tuple[int, str]]:
    """The next `limit` (id, sealed value) after `after_id`, by id, that another key sealed."""
    stmt = (
        select(column.id, column.value)
        .where(column.id > after_id, _stale(column, kid))
        .order_by(column.id)
        .limit(limit)
    )
    return [(r[0], r[1]) for r in (await session.execute(stmt)).all()]


async def rewrite(session: AsyncSession, column: SealedColumn, rows: Sequence[tuple[int, str, str]]) -> int:
    """Replace (id, old, new) values, each only if it still holds `old` (a writer may have replaced
    it meanwhile); returns how many were replaced."""
    done = 0
    for row_id, old, new in rows:
        stmt = (
            update(column.id.class_)
            .where(column.id == row_id, column.value == old)
            .values({column.value.key: new})
        )
        done += (await session.execute(stmt)).rowcount  # type: ignore[attr-defined]
    return done
