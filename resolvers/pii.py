"""PIPL rights resolvers: export and erasure, for the person themselves or an admin."""

from __future__ import annotations

from typing import Any

from app.auth import policy
from app.auth.principal import PrincipalKind
from app.context import RequestContext
from app.services.erasure import Erasure, ErasureReport
from app.services.export import Export
from resolvers.identity import me, parse_id


async def _target(ctx: RequestContext, user_id: str) -> int:
    """The id asked for, once the caller may act on it. An end user learns nothing about other ids
    (FORBIDDEN whether they exist or not)."""
    target = parse_id(user_id)
    principal = ctx.principal
    is_self = False
    if principal.kind is PrincipalKind.END_USER:
        own, found = await me(ctx), await ctx.loaders.user_by_id.load(target)
        is_self = own is not None and found is not None and own.id == found.id
    policy.ensure_can_exercise_rights(principal, is_self=is_self)
    return target


async def export_user(ctx: RequestContext, *, user_id: str) -> dict[str, Any]:
    """Everything held about the person, as one document (audited; never cached)."""
    target = await _target(ctx, user_id)
    ctx.uncacheable()
    exporter = Export(ctx.db, ctx.settings, ctx.dictionary)
    return await exporter.export(target, actor=ctx.principal.actor, trace_id=ctx.trace_id)


async def erase_user(ctx: RequestContext, *, user_id: str) -> ErasureReport:
    """Erase the person in every store; what was removed."""
    target = await _target(ctx, user_id)
    await ctx.reads.close()  # no read connection held while the erasure waits for its own
    report = await Erasure(ctx.db, ctx.settings).erase(
        target, actor=ctx.principal.actor, trace_id=ctx.trace_id
    )
    ctx.refresh()
    return report
