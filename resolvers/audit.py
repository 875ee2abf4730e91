"""Audit-log resolvers: admins read what changed, who did it and when."""

from __future__ import annotations

from app.auth import policy
from app.context import RequestContext
from app.services import audit
from app.services.audit import AuditFilter, AuditPage
from resolvers.identity import parse_id
from resolvers.paging import page_size


async def audit_log(
    ctx: RequestContext,
    *,
    first: int,
    after: str | None,
    user_id: str | None,
    action: str | None,
    actor: str | None = None,
    trace_id: str | None = None,
) -> AuditPage:
    """Newest first; filtered by target user, action (or `prefix.*`), actor and request when asked."""
    policy.ensure_can_read_audit(ctx.principal)
    first = page_size(ctx, first, default=20)
    where = AuditFilter(
        user_id=parse_id(user_id) if user_id is not None else None,
        action=action,
        actor=actor,
        trace_id=trace_id,
    )
    async with ctx.read() as session:
        return await audit.page(session, first=first, after=after, where=where)
