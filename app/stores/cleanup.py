"""SQL for the periodic clean-ups: rows past their use, deleted in bounded batches; no rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.channel_models import DeadLetter
from app.db.models import PhoneCode, RefreshToken, WechatInbox

BATCH = 5_000  # rows per statement: short transactions, no long lock on a busy table


async def _delete(session: AsyncSession, model: Any, where: ColumnElement[bool]) -> int:
    ids = select(model.id).where(where).limit(BATCH).scalar_subquery()
    result = await session.execute(delete(model).where(model.id.in_(ids)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def spent_phone_codes(session: AsyncSession, *, before: datetime) -> int:
    """SMS codes expired, or used, before `before` (a batch)."""
    return await _delete(session, PhoneCode, or_(PhoneCode.expires_at < before, PhoneCode.used_at < before))


async def spent_refresh_tokens(session: AsyncSession, *, before: datetime) -> int:
    """Refresh tokens expired, used (rotated) or revoked before `before` (a batch)."""
    return await _delete(
        session,
        RefreshToken,
        or_(
            RefreshToken.expires_at < before,
            RefreshToken.used_at < before,
            RefreshToken.revoked_at < before,
        ),
    )


async def finished_pushes(session: AsyncSession, *, status: str, before: datetime) -> int:
    """Official-account pushes in `status` (done, or failed for good) processed before `before`."""
    return await _delete(
        session, WechatInbox, (WechatInbox.status == status) & (WechatInbox.processed_at < before)
    )


async def dead_letters(session: AsyncSession, *, before: datetime) -> int:
    """Rejected ingestion records received before `before` (a batch, in a channel store)."""
    return await _delete(session, DeadLetter, DeadLetter.received_at < before)
