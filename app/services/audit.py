"""The audit log: who did what to whom, when, in which request; append-only.

Every change of identities (links, merges, unmerges, proven, replaced and recycled phones),
consents, memberships and points, roles and API keys, every read of unmasked PII, every export and
erasure. Any domain records through `record` (or `record_many`), inside the transaction of the
change it describes, so an entry exists exactly when the change does; or hands an `entry` to the
store that writes the change, which writes both in one statement. The request's trace id comes
from the session (`RequestContext.write` puts it there). Details never hold identity values,
phones or tokens: the log cannot be erased, so it names people by user id only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.types import utcnow
from app.domain.entitlements import AuditRecord
from app.errors import InvalidInput
from app.stores import audit as store

_KINDS = {"user": "user", "service": "service", "operator": "operator"}
# Session info key of the trace id of the request the session works for.
TRACE_ID = "troika.trace_id"


def principal_kind(actor: str) -> str:
    """The kind of caller an actor string names (user:1, service:APP:2, operator:3); else system."""
    return _KINDS.get(actor.split(":", 1)[0], "system")


async def record(
    session: AsyncSession, *, actor: str, action: str, user_id: int | None, details: dict[str, Any]
) -> None:
    """Append one entry: `action` is a dotted name such as consent.set or role.grant."""
    await record_many(session, actor=actor, action=action, entries=[(user_id, details)])


async def record_many(
    session: AsyncSession, *, actor: str, action: str, entries: Sequence[tuple[int | None, dict[str, Any]]]
) -> None:
    """One entry per (target user, details), in one statement: a batch's links, a request's PII reads."""
    if not entries:
        return
    at = utcnow()
    await store.append_many(
        session, [entry(session, actor=actor, action=action, user_id=u, details=d, at=at) for u, d in entries]
    )


def entry(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    user_id: int | None,
    details: dict[str, Any],
    at: datetime | None = None,
) -> dict[str, Any]:
    """One entry as a row, for a store that writes it with the change it describes (one statement)."""
    trace_id = session.info.get(TRACE_ID)
    return entry_of(actor=actor, action=action, user_id=user_id, details=details, trace_id=trace_id, at=at)


def entry_of(
    *,
    actor: str,
    action: str,
    user_id: int | None,
    details: dict[str, Any],
    trace_id: str | None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """`entry` for a writer with no session (one statement on its own connection): the trace id given."""
    return {
        "at": at or utcnow(),
        "actor": actor[:64],
        "principal_kind": principal_kind(actor),
        "action": action,
        "target_user_id": user_id,
        "details": details,
        "trace_id": trace_id,
    }


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


@dataclass(frozen=True)
class AuditFilter:
    """What to page through: a target user, an action (`identity.*`: every identity action), an
    actor (`operator:3`), a request (its trace id)."""

    user_id: int | None = None
    action: str | None = None
    actor: str | None = None
    trace_id: str | None = None


async def page(
    session: AsyncSession, *, first: int, after: str | None, where: AuditFilter = AuditFilter()
) -> AuditPage:
    """Newest first; `after` is the `endCursor` of the previous page (the resolver caps `first`)."""
    action, prefix = where.action, None
    if action is not None and action.endswith(".*"):
        prefix = action[:-1]
        action = None
    rows = await store.page(
        session,
        first=first,
        before_id=_cursor(after),
        target_user_id=where.user_id,
        action=action,
        action_prefix=prefix,
        actor=where.actor,
        trace_id=where.trace_id,
    )
    nodes = rows[:first]
    return AuditPage(
        nodes=nodes, has_next_page=len(rows) > first, end_cursor=str(nodes[-1].id) if nodes else None
    )
