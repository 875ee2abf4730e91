"""Campaign resolvers: operators start campaigns (operator and up) and read them (viewer and up)."""

from __future__ import annotations

from typing import Any

from app.context import RequestContext
from app.errors import DomainError
from app.services.campaigns import CampaignRecord, Campaigns
from resolvers.audiences import _reader, _writer
from resolvers.identity import parse_id


class JobsUnavailable(DomainError):
    code = "JOBS_UNAVAILABLE"


def _service(ctx: RequestContext) -> Campaigns:
    return Campaigns(ctx.db, ctx.dictionary, ctx.settings)


async def campaign(ctx: RequestContext, campaign_id: str) -> CampaignRecord | None:
    _reader(ctx)
    async with ctx.read() as session:
        return await _service(ctx).get(session, parse_id(campaign_id, "id"))


async def send(ctx: RequestContext, data: dict[str, Any]) -> CampaignRecord:
    """Save the campaign (or find it by its idempotency key) and queue its sending."""
    _writer(ctx)
    if ctx.jobs is None:
        raise JobsUnavailable("this process runs no job queue; campaigns cannot be sent")
    service = _service(ctx)
    campaign_id, _new = await ctx.write(lambda s: service.create(s, data=data, actor=ctx.principal.actor))
    await ctx.jobs.defer_campaign(campaign_id)
    async with ctx.read() as session:
        found = await service.get(session, campaign_id)
    assert found is not None
    return found
