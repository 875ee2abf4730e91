"""Audiences: conditions over the unified user (every channel at once), saved by name or previewed."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator
from datetime import datetime
from enum import Enum
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from app.context import RequestContext
from app.services.audiences import AudienceRecord
from graphql_schema.common import PageInfo
from graphql_schema.enums import Channel, IdentityKind, OrderStatus, Purpose, ReservationStatus
from graphql_schema.identity import User, UserConnection
from graphql_schema.permissions import AUTHENTICATED
from resolvers import audiences as resolve

Ctx = Info[RequestContext, None]


@strawberry.input(
    description="Orders: of a channel (any when omitted), with one of these statuses (any when "
    "omitted), naming a SKU, placed within the last N days; at least minCount of them."
)
class OrderCondition:
    channel: Channel | None = strawberry.field(default=None, description="Only orders of this channel.")
    statuses: list[OrderStatus] | None = strawberry.field(default=None, description="One of these statuses.")
    sku: str | None = strawberry.field(default=None, description="An order line of this SKU.")
    within_days: int | None = strawberry.field(default=None, description="Placed within the last N days.")
    min_count: int | None = strawberry.field(default=1, description="At least this many such orders.")


@strawberry.input(
    description="Behaviour events of these types, of a channel, carrying a tag, within the last N "
    "days; at least minCount of them."
)
class BehaviorCondition:
    types: list[str] = strawberry.field(description="Event types, e.g. article_read.")
    channel: Channel | None = strawberry.field(default=None, description="Only events of this channel.")
    tag: str | None = strawberry.field(default=None, description="The event's properties.tags hold this tag.")
    within_days: int | None = strawberry.field(default=None, description="Within the last N days.")
    min_count: int | None = strawberry.field(default=1, description="At least this many such events.")


@strawberry.input(
    description="Reservations: of a channel, with these statuses, for a service, within the last N "
    "days; at least minCount."
)
class ReservationCondition:
    channel: Channel | None = strawberry.field(default=None, description="Only reservations of this channel.")
    statuses: list[ReservationStatus] | None = strawberry.field(
        default=None, description="One of these statuses."
    )
    service: str | None = strawberry.field(default=None, description="For this service, e.g. 儿童摄影.")
    within_days: int | None = strawberry.field(default=None, description="Booked within the last N days.")
    min_count: int | None = strawberry.field(default=1, description="At least this many such reservations.")


@strawberry.input(
    description="Holds an identity of this kind, of this channel (OPENID of OFFICIAL_ACCOUNT: follows "
    "the official account)."
)
class IdentityCondition:
    kind: IdentityKind = strawberry.field(description="The identity kind.")
    channel: Channel | None = strawberry.field(
        default=None, description="Of this channel (OPENID, APP_USER_ID)."
    )


@strawberry.input(description="The membership tier is one of these.")
class MembershipCondition:
    tiers: list[str] = strawberry.field(description="Tiers, e.g. GOLD.")


@strawberry.input(description="An interest of at least this weight.")
class InterestCondition:
    tag: str = strawberry.field(description="The interest tag, e.g. 母婴.")
    min_weight: float | None = strawberry.field(
        default=0.0, description="Relative weight, 0..1 (see User.interests)."
    )


@strawberry.input(description="A cart line (of a SKU) unchanged for at least N days.")
class CartCondition:
    sku: str | None = strawberry.field(default=None, description="Of this SKU (any when omitted).")
    older_than_days: int | None = strawberry.field(default=None, description="Unchanged for at least N days.")


@strawberry.input(description="A consent is granted (for a channel).")
class ConsentCondition:
    purpose: Purpose = strawberry.field(description="What the consent is for.")
    channel: Channel | None = strawberry.field(default=None, description="In this channel (PUSH, MARKETING).")


@strawberry.input(
    description="Figures over every channel, as User.traits shows them (orders PAID or later, cancelled "
    "excluded). Set at least one field; every field set must hold."
)
class TraitsCondition:
    min_lifetime_value_cents: int | None = strawberry.field(
        default=None,
        description="Lifetime value (User.traits.lifetimeValueCents) of at least this, in cents.",
    )
    min_paid_orders: int | None = strawberry.field(
        default=None, description="At least this many paid orders (User.traits.paidOrders)."
    )
    last_order_within_days: int | None = strawberry.field(
        default=None, description="The last paid order (User.traits.lastOrderAt) within the last N days."
    )


@strawberry.input(description="A product preference (User.preferences) with at least this score.")
class PreferenceCondition:
    sku: str = strawberry.field(description="The product's SKU.")
    min_score: float | None = strawberry.field(
        default=0.0, description="The preference's score is at least this (0: any interest in the SKU)."
    )


@strawberry.input(
    description="The cross-channel journey (User.journey): where the person first appeared, the order of "
    "channels. Set one field or both."
)
class JourneyCondition:
    first_channel: Channel | None = strawberry.field(
        default=None, description="The channel the person first appeared in (journey.path[0])."
    )
    path_starts_with: list[Channel] | None = strawberry.field(
        default=None, description="journey.path begins with these channels, in this order."
    )


@strawberry.input(
    description="One condition on the unified user (every channel at once). Set exactly one field; "
    "all/any/not combine."
)
class AudienceCondition:
    all: list[AudienceCondition] | None = strawberry.field(default=None, description="Every condition holds.")
    any: list[AudienceCondition] | None = strawberry.field(default=None, description="At least one holds.")
    not_: AudienceCondition | None = strawberry.field(
        default=None, name="not", description="This condition does not hold."
    )
    orders: OrderCondition | None = strawberry.field(default=None, description="Orders (see OrderCondition).")
    behavior: BehaviorCondition | None = strawberry.field(
        default=None, description="Behaviour events (see BehaviorCondition)."
    )
    reservations: ReservationCondition | None = strawberry.field(
        default=None, description="Reservations (see ReservationCondition)."
    )
    identity: IdentityCondition | None = strawberry.field(
        default=None, description="Holds an identity (see IdentityCondition)."
    )
    membership: MembershipCondition | None = strawberry.field(
        default=None, description="The membership tier is one of these."
    )
    interest: InterestCondition | None = strawberry.field(
        default=None, description="An interest of at least this weight."
    )
    cart: CartCondition | None = strawberry.field(
        default=None, description="A cart line (see CartCondition)."
    )
    consent: ConsentCondition | None = strawberry.field(
        default=None, description="A consent is granted (for a channel)."
    )
    traits: TraitsCondition | None = strawberry.field(
        default=None, description="Lifetime figures (see TraitsCondition)."
    )
    preference: PreferenceCondition | None = strawberry.field(
        default=None, description="A product preference of at least a score (see PreferenceCondition)."
    )
    journey: JourneyCondition | None = strawberry.field(
        default=None, description="Where the person first appeared (see JourneyCondition)."
    )


def _camel(name: str) -> str:
    head, *rest = name.rstrip("_").split("_")
    return head + "".join(p.title() for p in rest)


def as_json(value: Any) -> Any:
    """An input tree as the JSON the contract shows (camelCase, enums by name, nulls dropped)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if v is not None:
                out[_camel(f.name)] = as_json(v)
        return out
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    return value


@strawberry.type(description="A member who can be reached in a channel.")
class Recipient:
    user_id: strawberry.ID = strawberry.field(description="The person's user id.")
    openid: str | None = strawberry.field(description="The openid of the channel's appid (WeChat channels).")
    unionid: str | None = strawberry.field(description="The person's WeChat unionid, if known.")
    app_user_id: str | None = strawberry.field(description="The APP account id (APP).")


@strawberry.type(
    description="How many members a count left out, and why: NO_CONSENT, NOT_REACHABLE (no identity of the "
    "channel), UNSUBSCRIBED (no longer follows the official account)."
)
class ReasonCount:
    reason: str = strawberry.field(description="NO_CONSENT, NOT_REACHABLE or UNSUBSCRIBED.")
    count: int = strawberry.field(description="How many members.")


@strawberry.type(description="A page of recipients, in user id order, with those left out by reason.")
class RecipientConnection:
    nodes: list[Recipient] = strawberry.field(description="The recipients of this page.")
    page_info: PageInfo = strawberry.field(description="Where this page ends.")
    total_count: int = strawberry.field(description="How many recipients, over all pages.")
    excluded: list[ReasonCount] = strawberry.field(description="Members who cannot be reached, by reason.")


@strawberry.type(description="A saved, named audience.")
class Audience:
    record: strawberry.Private[AudienceRecord]

    @strawberry.field(description="Its name.")
    def name(self) -> str:
        return self.record.name

    @strawberry.field(description="What it is for.")
    def description(self) -> str | None:
        return self.record.description

    @strawberry.field(description="The condition as saved (the AudienceCondition tree as JSON).")
    def condition(self) -> JSON:
        return cast(JSON, self.record.condition)

    @strawberry.field(description="How many people it holds now (its kept membership, followed live).")
    async def size(self, info: Ctx) -> int:
        return await resolve.kept_size(info.context, self.record.id)

    @strawberry.field(description="Its people, in user id order.")
    async def members(self, info: Ctx, first: int | None = 100, after: str | None = None) -> UserConnection:
        page = await resolve.members(
            info.context,
            self.record.condition,
            first=first,
            after=after,
            default=100,
            saved_id=self.record.id,
        )
        return UserConnection.of(page)

    @strawberry.field(
        description="Who can be reached in a channel for a purpose: the purpose's consent granted there, "
        "and an identity of that channel to send to."
    )
    async def recipients(
        self,
        info: Ctx,
        channel: Channel,
        purpose: Purpose | None = Purpose.MARKETING,
        first: int | None = 1000,
        after: str | None = None,
    ) -> RecipientConnection:
        page = await resolve.recipients(
            info.context,
            self.record.condition,
            channel=channel,
            purpose=purpose or Purpose.MARKETING,
            first=first,
            after=after,
        )
        return RecipientConnection(
            nodes=[
                Recipient(
                    user_id=strawberry.ID(str(r.user_id)),
                    openid=r.openid,
                    unionid=r.unionid,
                    app_user_id=r.app_user_id,
                )
                for r in page.nodes
            ],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
            total_count=page.total_count,
            excluded=[ReasonCount(reason=k, count=v) for k, v in sorted(page.excluded.items())],
        )

    @strawberry.field(description="When it was last saved (UTC).")
    def updated_at(self) -> datetime:
        return self.record.updated_at


@strawberry.type(description="An audience evaluated without saving it.")
class AudiencePreview:
    condition: strawberry.Private[dict[str, Any]]

    @strawberry.field(description="How many people it holds now.")
    async def size(self, info: Ctx) -> int:
        return await resolve.size(info.context, self.condition)

    @strawberry.field(description="Its first people, in user id order.")
    async def members(self, info: Ctx, first: int | None = 20) -> list[User]:
        page = await resolve.members(info.context, self.condition, first=first, after=None, default=20)
        return [User(record=u) for u in page.nodes]


@strawberry.type(description="An audience's member entered or left it.")
class AudienceChange:
    audience: str = strawberry.field(description="The saved audience's name.")
    user_id: strawberry.ID = strawberry.field(description="The person who entered or left.")
    entered: bool = strawberry.field(description="True: entered; false: left.")
    at: datetime = strawberry.field(description="When the membership follower recorded it (UTC).")


@strawberry.type
class AudienceSubscription:
    @strawberry.subscription(
        description="Members entering and leaving a saved audience, live, within a second of the change "
        "that moved them (operators).",
        permission_classes=AUTHENTICATED,
    )
    async def audience_changed(self, info: Ctx, name: str) -> AsyncGenerator[AudienceChange, None]:
        async for audience, event in resolve.changed(info.context, name):
            yield AudienceChange(
                audience=audience,
                user_id=strawberry.ID(str(event.user_id)),
                entered=event.entered,
                at=event.at,
            )


@strawberry.type
class AudienceQuery:
    @strawberry.field(
        description="A saved audience by name; null if there is none (operators).",
        permission_classes=AUTHENTICATED,
    )
    async def audience(self, info: Ctx, name: str) -> Audience | None:
        found = await resolve.audience(info.context, name)
        return None if found is None else Audience(record=found)

    @strawberry.field(
        description="Every saved audience, by name (operators).", permission_classes=AUTHENTICATED
    )
    async def audiences(self, info: Ctx) -> list[Audience]:
        return [Audience(record=a) for a in await resolve.audiences(info.context)]

    @strawberry.field(
        description="An audience evaluated without saving it (operators).", permission_classes=AUTHENTICATED
    )
    async def preview_audience(self, info: Ctx, condition: AudienceCondition) -> AudiencePreview:
        return AudiencePreview(condition=await resolve.preview(info.context, as_json(condition)))


@strawberry.type
class AudienceMutation:
    @strawberry.mutation(
        description="Save (create or replace) a named audience.", permission_classes=AUTHENTICATED
    )
    async def save_audience(
        self, info: Ctx, name: str, condition: AudienceCondition, description: str | None = None
    ) -> Audience:
        saved = await resolve.save(
            info.context, name=name, condition=as_json(condition), description=description
        )
        return Audience(record=saved)

    @strawberry.mutation(
        description="Delete a saved audience; false if there was none.", permission_classes=AUTHENTICATED
    )
    async def delete_audience(self, info: Ctx, name: str) -> bool:
        return await resolve.delete(info.context, name=name)
