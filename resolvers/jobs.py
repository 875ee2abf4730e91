"""Background-job resolvers: admins see what failed for good."""

from __future__ import annotations

from app.auth import policy
from app.context import RequestContext
from app.jobs.runner import FailedJob
from resolvers.paging import page_size


async def failed_jobs(ctx: RequestContext, *, first: int) -> list[FailedJob]:
    """Newest first; empty when this process runs no job queue."""
    policy.ensure_can_read_jobs(ctx.principal)
    if ctx.jobs is None:
        return []
    return await ctx.jobs.failed(limit=page_size(ctx, first, default=20))
