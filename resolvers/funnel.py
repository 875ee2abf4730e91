"""Funnel resolver: operators (viewer and up) only."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from app.auth import policy
from app.auth.principal import PrincipalKind, Role
from app.context import RequestContext
from app.errors import Forbidden
from app.services.funnel import FunnelResult, Funnels, Step


async def funnel(
    ctx: RequestContext, *, steps: Sequence[Step], start: datetime, end: datetime, within_days: int
) -> FunnelResult:
    """Services and end users see no funnel: it is a figure over everyone."""
    if ctx.principal.kind is not PrincipalKind.OPERATOR:
        raise Forbidden("funnels are for operators")
    policy.require_role(ctx.principal, Role.VIEWER)
    return await Funnels(ctx.db, ctx.dictionary, ctx.settings).run(steps, start, end, within_days)
