"""SQL for the audit log: appends and pages, never an UPDATE or a DELETE (triggers refuse them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import AuditEntry
from app.entitlements.records import AuditRecord


async def append(
    session: AsyncSession,
    *,
    at: datetime,
    actor: str,
    principal_kind: str,
    action: str,
    target_user_id: int | None,
    details: dict[str, Any],
) -> None:
    await session.execute(
        insert(AuditEntry).values(
            at=at,
            actor=actor,
            principal_kind=principal_kind,
            action=action,
            target_user_id=target_user_id,
            details=details,
        )
    )


async def page(
    session: AsyncSession,
    *,
    first: int,
    before_id: int | None,
    target_user_id: int | None,
    action: str | None,
) -> list[AuditRecord]:
    """Newest first, keyset-paged by id; one row more than asked tells if another page follows."""
    stmt = select(AuditEntry)
    if before_id is not None:
        stmt = stmt.where(AuditEntry.id < before_id)
    if target_user_id is not None:
        stmt = stmt.where(AuditEntry.target_user_id == target_user_id)
    if action is not None:
        stmt = stmt.where(AuditEntry.action == action)
    rows = (await session.execute(stmt.order_by(AuditEntry.id.desc()).limit(first + 1))).scalars()
    return [
        AuditRecord(
            id=r.id,
            at=r.at,
            actor=r.actor,
            principal_kind=r.principal_kind,
            action=r.action,
            target_user_id=r.target_user_id,
            details=r.details,
        )
        for r in rows
    ]
