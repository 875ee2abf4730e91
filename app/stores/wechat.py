"""SQL for WeChat session keys, the official-account inbox, SMS codes and backfill state; no rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import PhoneCode, WechatInbox, WechatSession, WechatSyncState


def _insert(session: AsyncSession, table: Any) -> Any:
    return pg_insert(table) if session.get_bind().dialect.name == "postgresql" else sqlite_insert(table)


async def save_session_key(
    session: AsyncSession, *, appid: str, openid: str, sealed_key: str, at: datetime
) -> None:
    """Keep only the newest session key of an openid (a new login replaces it at WeChat too)."""
    dialect = session.get_bind().dialect.name
    ins = (pg_insert if dialect == "postgresql" else sqlite_insert)(WechatSession).values(
        appid=appid, openid=openid, sealed_key=sealed_key, updated_at=at
    )
    stmt = ins.on_conflict_do_update(
        index_elements=["appid", "openid"], set_={"sealed_key": sealed_key, "updated_at": at}
    )
    await session.execute(stmt)


async def sealed_session_key(session: AsyncSession, *, appid: str, openid: str) -> str | None:
    stmt = select(WechatSession.sealed_key).where(
        WechatSession.appid == appid, WechatSession.openid == openid
    )
    return (await session.execute(stmt)).scalar_one_or_none()


# -- SMS codes ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CodeRow:
    id: int
    code_hash: str
    expires_at: datetime
    used_at: datetime | None


async def insert_code(
    session: AsyncSession,
    *,
    phone_hash: str,
    code_hash: str,
    at: datetime,
    expires_at: datetime,
    requested_by: str,
) -> None:
    await session.execute(
        insert(PhoneCode).values(
            phone_hash=phone_hash,
            code_hash=code_hash,
            created_at=at,
            expires_at=expires_at,
            requested_by=requested_by,
        )
    )


async def latest_code(session: AsyncSession, *, phone_hash: str) -> CodeRow | None:
    """The newest code sent to a phone (an older one is superseded by it)."""
    stmt = (
        select(PhoneCode.id, PhoneCode.code_hash, PhoneCode.expires_at, PhoneCode.used_at)
        .where(PhoneCode.phone_hash == phone_hash)
        .order_by(PhoneCode.id.desc())
        .limit(1)
    )
    row = (await session.execute(stmt)).first()
    return None if row is None else CodeRow(row.id, row.code_hash, row.expires_at, row.used_at)


async def use_code(session: AsyncSession, code_id: int, *, at: datetime) -> bool:
    """Mark a code used; False when somebody used it first (single use, across instances)."""
    stmt = update(PhoneCode).where(PhoneCode.id == code_id, PhoneCode.used_at.is_(None)).values(used_at=at)
    return (await session.execute(stmt)).rowcount == 1  # type: ignore[attr-defined,no-any-return]


# -- the official-account inbox ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InboxRow:
    id: int
    appid: str
    dedupe_key: str
    payload: str
    status: str
    attempts: int


async def insert_push(
    session: AsyncSession,
    *,
    appid: str,
    dedupe_key: str,
    timestamp: str,
    nonce: str,
    payload: str,
    at: datetime,
) -> int | None:
    """Store a push; None when its identity or its signature's (timestamp, nonce) is already in."""
    stmt = (
        _insert(session, WechatInbox)
        .values(
            appid=appid,
            dedupe_key=dedupe_key,
            timestamp=timestamp,
            nonce=nonce,
            payload=payload,
            received_at=at,
            status="pending",
            attempts=0,
        )
        .on_conflict_do_nothing()
        .returning(WechatInbox.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def push_exists(session: AsyncSession, *, appid: str, dedupe_key: str) -> bool:
    stmt = select(WechatInbox.id).where(WechatInbox.appid == appid, WechatInbox.dedupe_key == dedupe_key)
    return (await session.execute(stmt)).first() is not None


async def claim(
    session: AsyncSession, push_id: int, *, at: datetime, stale_before: datetime
) -> InboxRow | None:
    """Take a push to process: pending, to retry, or abandoned mid-way (claimed before `stale_before`).

    The job queue runs one job per push at a time (its lock), so a job may pass `stale_before=at`
    to take over what a killed worker left.
    """
    stmt = (
        update(WechatInbox)
        .where(
            WechatInbox.id == push_id,
            or_(
                WechatInbox.status.in_(("pending", "retrying")),
                (WechatInbox.status == "processing") & (WechatInbox.claimed_at <= stale_before),
            ),
        )
        .values(status="processing", claimed_at=at, attempts=WechatInbox.attempts + 1)
        .returning(
            WechatInbox.id,
            WechatInbox.appid,
            WechatInbox.dedupe_key,
            WechatInbox.payload,
            WechatInbox.status,
            WechatInbox.attempts,
        )
    )
    row = (await session.execute(stmt)).first()
    return None if row is None else InboxRow(*row)


async def finish(session: AsyncSession, push_id: int, *, status: str, outcome: str, at: datetime) -> None:
    await session.execute(
        update(WechatInbox)
        .where(WechatInbox.id == push_id)
        .values(status=status, outcome=outcome[:2000], processed_at=at)
    )


async def unfinished(session: AsyncSession, *, stale_before: datetime, limit: int) -> list[int]:
    """Pushes still to process, oldest first: never finished, to retry, or abandoned."""
    stmt = (
        select(WechatInbox.id)
        .where(
            or_(
                WechatInbox.status.in_(("pending", "retrying")),
                (WechatInbox.status == "processing") & (WechatInbox.claimed_at < stale_before),
            )
        )
        .order_by(WechatInbox.id)
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


@dataclass(frozen=True, slots=True)
class PushSummary:
    id: int
    status: str
    attempts: int
    received_at: datetime
    processed_at: datetime | None
    outcome: str | None


async def pushes(session: AsyncSession, *, statuses: Sequence[str], limit: int) -> list[PushSummary]:
    """Pushes in `statuses`, newest first (the payload left out)."""
    stmt = (
        select(
            WechatInbox.id,
            WechatInbox.status,
            WechatInbox.attempts,
            WechatInbox.received_at,
            WechatInbox.processed_at,
            WechatInbox.outcome,
        )
        .where(WechatInbox.status.in_(list(statuses)))
        .order_by(WechatInbox.id.desc())
        .limit(limit)
    )
    return [PushSummary(*row) for row in (await session.execute(stmt)).all()]


async def pushes_by_ids(session: AsyncSession, ids: Sequence[int]) -> list[PushSummary]:
    if not ids:
        return []
    stmt = select(
        WechatInbox.id,
        WechatInbox.status,
        WechatInbox.attempts,
        WechatInbox.received_at,
        WechatInbox.processed_at,
        WechatInbox.outcome,
    ).where(WechatInbox.id.in_(list(ids)))
    return [PushSummary(*row) for row in (await session.execute(stmt)).all()]


async def requeue_failed(session: AsyncSession, ids: Sequence[int] | None) -> list[int]:
    """Failed pushes (these, or all) back to pending, their attempts from zero; the ids requeued."""
    stmt = update(WechatInbox).where(WechatInbox.status == "failed")
    if ids is not None:
        stmt = stmt.where(WechatInbox.id.in_(list(ids)))
    stmt = stmt.values(status="pending", attempts=0, processed_at=None).returning(WechatInbox.id)
    return sorted((await session.execute(stmt)).scalars())


# -- backfill state ----------------------------------------------------------------------------


async def sync_state(session: AsyncSession, name: str) -> tuple[str | None, int]:
    row = (
        await session.execute(
            select(WechatSyncState.cursor, WechatSyncState.done).where(WechatSyncState.name == name)
        )
    ).first()
    return (None, 0) if row is None else (row.cursor, row.done)


async def save_sync_state(
    session: AsyncSession, name: str, *, cursor: str | None, done: int, at: datetime
) -> None:
    dialect = session.get_bind().dialect.name
    ins = (pg_insert if dialect == "postgresql" else sqlite_insert)(WechatSyncState).values(
        name=name, cursor=cursor, done=done, updated_at=at
    )
    await session.execute(
        ins.on_conflict_do_update(
            index_elements=["name"], set_={"cursor": cursor, "done": done, "updated_at": at}
        )
    )
