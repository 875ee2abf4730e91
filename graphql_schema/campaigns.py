"""Campaigns: a push to a saved audience's recipients, sent in the background."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from app.context import RequestContext
from app.services.campaigns import CampaignRecord
from graphql_schema.audiences import ReasonCount
from graphql_schema.enums import Purpose
from graphql_schema.permissions import AUTHENTICATED
from resolvers import campaigns as resolve

Ctx = Info[RequestContext, None]


@strawberry.enum(description="How a campaign reaches its recipients.")
class CampaignKind(Enum):
    OA_MASS_MESSAGE = strawberry.enum_value(
        "OA_MASS_MESSAGE",
        description="Official-account mass message to an openid list (marketing allowed; batches of at "
        "most 10,000).",
    )
    OA_TEMPLATE_MESSAGE = strawberry.enum_value(
        "OA_TEMPLATE_MESSAGE",
        description="Official-account template message, one per follower (service notices).",
    )
    MP_SUBSCRIBE_MESSAGE = strawberry.enum_value(
        "MP_SUBSCRIBE_MESSAGE", description="Mini-program subscription message, one per user who subscribed."
    )


@strawberry.enum(
    description="Where a campaign is: queued, sending, done, or failed (its audience was deleted)."
)
class CampaignStatus(Enum):
    QUEUED = "QUEUED"
    SENDING = "SENDING"
    DONE = "DONE"
    FAILED = "FAILED"


@strawberry.input(description="A campaign to send.")
class CampaignInput:
    audience: str = strawberry.field(
        description="A saved audience's name: its recipients when the campaign starts."
    )
    kind: CampaignKind = strawberry.field(description="How it is sent.")
    purpose: Purpose | None = strawberry.field(
        default=Purpose.MARKETING,
        description="The consent every recipient must have granted in the campaign's channel.",
    )
    template_id: str | None = strawberry.field(
        default=None, description="Template (OA_TEMPLATE_MESSAGE, MP_SUBSCRIBE_MESSAGE)."
    )
    content: JSON = strawberry.field(
        description='The message: a mass message\'s {"text": …}; a template\'s {"data": {…}, "url" or '
        '"page": …}.'
    )
    idempotency_key: str = strawberry.field(
        description="The same key again answers the same campaign and sends nothing twice."
    )


@strawberry.type(
    description="A push to an audience's recipients, sent in the background; nobody gets it twice."
)
class Campaign:
    record: strawberry.Private[CampaignRecord]

    @strawberry.field(description="The campaign's id.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.record.id))

    @strawberry.field(description="The saved audience it was sent to.")
    def audience(self) -> str:
        return self.record.audience

    @strawberry.field(description="How it is sent.")
    def kind(self) -> CampaignKind:
        return CampaignKind(self.record.kind)

    @strawberry.field(description="The consent its recipients granted.")
    def purpose(self) -> Purpose:
        return Purpose(self.record.purpose)

    @strawberry.field(description="Queued, sending, done or failed.")
    def status(self) -> CampaignStatus:
        return CampaignStatus(self.record.status)

    @strawberry.field(description="Members when it started.")
    def targeted(self) -> int:
        return self.record.targeted

    @strawberry.field(description="Recipients WeChat took the message for.")
    def sent(self) -> int:
        return self.record.sent

    @strawberry.field(description="Recipients whose call failed (WeChat's error, or interrupted mid-call).")
    def failed(self) -> int:
        return self.record.failed

    @strawberry.field(
        description="Members not sent to, by reason (the recipients' reasons, and WeChat's refusals such as "
        "NOT_SUBSCRIBED)."
    )
    def skipped(self) -> list[ReasonCount]:
        return [ReasonCount(reason=k, count=v) for k, v in sorted(self.record.skipped.items()) if v]

    @strawberry.field(description="When it was started (UTC).")
    def created_at(self) -> datetime:
        return self.record.created_at

    @strawberry.field(description="When its last recipient was handled (UTC).")
    def finished_at(self) -> datetime | None:
        return self.record.finished_at


@strawberry.type
class CampaignQuery:
    @strawberry.field(
        description="A campaign by id; null if there is none (operators).", permission_classes=AUTHENTICATED
    )
    async def campaign(self, info: Ctx, id: strawberry.ID) -> Campaign | None:
        found = await resolve.campaign(info.context, str(id))
        return None if found is None else Campaign(record=found)


@strawberry.type
class CampaignMutation:
    @strawberry.mutation(
        description="Start sending a campaign; it answers at once (status QUEUED or SENDING) and goes on in "
        "the background.",
        permission_classes=AUTHENTICATED,
    )
    async def send_campaign(self, info: Ctx, input: CampaignInput) -> Campaign:
        data = {
            "audience": input.audience,
            "kind": input.kind.value,
            "purpose": (input.purpose or Purpose.MARKETING).value,
            "template_id": input.template_id,
            "content": input.content,
            "idempotency_key": input.idempotency_key,
        }
        return Campaign(record=await resolve.send(info.context, data))
