"""The audit log: every change to permissions (and, later, PII reads and key changes) leaves a row.

Any domain records through `record`, inside the transaction of the change it describes, so an
entry exists exactly when the change does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.types import utcnow
from app.entitlements.records import AuditRecord
from app.errors import InvalidInput
from app.stores import audit as store

_KINDS = {"user": "user", "service": "service", "operator": "operator"}


def principal_kind(actor: str) -> str:
    """The kind of caller an actor string names (user:1, service:APP:2, operator:3); else system."""
    return _KINDS.get(actor.split(":", 1)[0], "system")


async def record(
    session: AsyncSession, *, actor: str, action: str, user_id: int | None, details: dict[str, Any]
) -> None:
    """Append one entry: `action` is a dotted name such as consent.set or role.grant."""
    await store.append(
        session,
        at=utcnow(),
        actor=actor,
        principal_kind=principal_kind(actor),
        action=action,
        target_user_id=user_id,
        details=details,
    )


@dataclass(frozen=True)
class AuditPage:
    nodes: list[AuditRecord]
    has_next_page: bool
    end_cursor: str | None


def _cursor(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{raw!r} is not a cursor from this API", field="after") from None
    if value <= 0:
        raise InvalidInput(f"{raw!r} is not a cursor from this API", field="after")
    return value


async def page(
    session: AsyncSession, *, first: int, after: str | None, user_id: int | None, action: str | None
) -> AuditPage:
    """Newest first; `after` is the `endCursor` of the previous page (the resolver caps `first`)."""
    rows = await store.page(
        session, first=first, before_id=_cursor(after), target_user_id=user_id, action=action
    )
    nodes = rows[:first]
    return AuditPage(
        nodes=nodes, has_next_page=len(rows) > first, end_cursor=str(nodes[-1].id) if nodes else None
    )
