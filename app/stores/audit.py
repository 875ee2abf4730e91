"""SQL for the audit log: appends and pages, never an UPDATE or a DELETE (triggers refuse them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import AuditEntry
from app.domain.entitlements import AuditRecord
from app.jsoncodec import dumps
from app.stores.bulk import Columns, insert_rows, is_postgres

_ENTRY: Columns = (
    ("at", "timestamptz"),
    ("actor", "text"),
    ("principal_kind", "text"),
    ("action", "text"),
    ("target_user_id", "bigint"),
    ("details", "json"),
    ("trace_id", "text"),
)


async def append_many(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """The only way the log grows: one statement however many entries."""
    if len(rows) > 1 and is_postgres(session):
        await insert_rows(session, "audit_log", _ENTRY, rows)
    elif rows:
        await session.execute(insert(AuditEntry), list(rows))


_CARRIED = (
    "audit_entry AS (INSERT INTO audit_log (at, actor, principal_kind, action, target_user_id, details,"
    " trace_id) VALUES (CAST(:audit_at AS timestamptz), CAST(:audit_actor AS text),"
    " CAST(:audit_principal_kind AS text), CAST(:audit_action AS text),"
    " CAST(:audit_target_user_id AS bigint),"
    " CAST(:audit_details AS json), CAST(:audit_trace_id AS text)))"
)


def carried(row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """One entry as a WITH item (`name AS (INSERT …)`) a writer's own statement carries, and its
    parameters (PostgreSQL): the change and its entry in one round trip."""
    params = {f"audit_{k}": v for k, v in row.items()}
    params["audit_details"] = dumps(row["details"])
    return _CARRIED, params


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def page(
    session: AsyncSession,
    *,
    first: int,
    before_id: int | None,
    target_user_id: int | None,
    action: str | None,
    action_prefix: str | None = None,
    actor: str | None = None,
    trace_id: str | None = None,
) -> list[AuditRecord]:
    """Newest first, keyset-paged by id; one row more than asked tells if another page follows."""
    stmt = select(AuditEntry)
    if before_id is not None:
        stmt = stmt.where(AuditEntry.id < before_id)
    if target_user_id is not None:
        stmt = stmt.where(AuditEntry.target_user_id == target_user_id)
    if action is not None:
        stmt = stmt.where(AuditEntry.action == action)
    if action_prefix is not None:
        stmt = stmt.where(AuditEntry.action.like(_like_prefix(action_prefix), escape="\\"))
    if actor is not None:
        stmt = stmt.where(AuditEntry.actor == actor)
    if trace_id is not None:
        stmt = stmt.where(AuditEntry.trace_id == trace_id)
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
            trace_id=r.trace_id,
        )
        for r in rows
    ]
