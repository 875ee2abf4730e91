"""The portrait (用户画像) in GraphQL: product preferences, traits and the cross-channel journey."""

from __future__ import annotations

from datetime import datetime

import strawberry

from app.domain.portrait import Journey as JourneyRecord
from app.domain.portrait import Preference
from app.domain.portrait import Traits as TraitsRecord
from graphql_schema.enums import Channel


@strawberry.type(
    description="A product one person has shown interest in, summed over every channel (the mini "
    "program's views, the APP's favourites, carts and orders everywhere)."
)
class ProductPreference:
    sku: str = strawberry.field(description="The product's SKU, as the channels name it.")
    name: str | None = strawberry.field(
        description="The product's name as last seen in any channel, when one was."
    )
    views: int = strawberry.field(description="Behaviour events that viewed the SKU (per the dictionary).")
    favorites: int = strawberry.field(description="Favourite events naming the SKU.")
    cart_adds: int = strawberry.field(description="Cart records whose quantity of the SKU rose.")
    purchases: int = strawberry.field(
        description="Orders that reached PAID or later, cancelled ones excluded."
    )
    score: float = strawberry.field(
        description="Weighted and decayed with age; the list is ordered by it, highest first."
    )
    channels: list[Channel] = strawberry.field(description="The channels this interest was seen in.")
    last_at: datetime = strawberry.field(description="The latest record that showed this interest (UTC).")

    @classmethod
    def of(cls, p: Preference) -> ProductPreference:
        assert p.last_at is not None  # every preference comes from at least one record
        return cls(
            sku=p.sku,
            name=p.name,
            views=p.views,
            favorites=p.favorites,
            cart_adds=p.cart_adds,
            purchases=p.purchases,
            score=p.score,
            channels=sorted(p.channels, key=lambda c: c.value),
            last_at=p.last_at,
        )


@strawberry.type(description="How many of something one channel holds.")
class ChannelCount:
    channel: Channel = strawberry.field(description="The channel.")
    count: int = strawberry.field(description="How many.")


@strawberry.type(description="Figures computed over every channel the person used.")
class UserTraits:
    lifetime_value_cents: int = strawberry.field(
        description="Orders that reached PAID or later, cancelled ones excluded, in cents."
    )
    paid_orders: int = strawberry.field(description="Orders that reached PAID or later, cancelled excluded.")
    average_order_cents: int | None = strawberry.field(
        description="Lifetime value over paid orders, in cents; null without paid orders."
    )
    first_order_at: datetime | None = strawberry.field(description="When the first paid order was placed.")
    last_order_at: datetime | None = strawberry.field(description="When the latest paid order was placed.")
    orders_by_channel: list[ChannelCount] = strawberry.field(description="Paid orders per channel.")
    last_seen_at: datetime | None = strawberry.field(
        description="The latest record's occurredAt in any channel."
    )

    @classmethod
    def of(cls, t: TraitsRecord) -> UserTraits:
        return cls(
            lifetime_value_cents=t.lifetime_value_cents,
            paid_orders=t.paid_orders,
            average_order_cents=t.average_order_cents,
            first_order_at=t.first_order_at,
            last_order_at=t.last_order_at,
            orders_by_channel=[ChannelCount(channel=c, count=n) for c, n in t.orders_by_channel],
            last_seen_at=t.last_seen_at,
        )


@strawberry.type(description="When a person first and last appeared in one channel.")
class ChannelPresence:
    channel: Channel = strawberry.field(description="The channel.")
    first_seen_at: datetime = strawberry.field(
        description="The earliest record there, or the link of an identity of the channel."
    )
    last_seen_at: datetime = strawberry.field(description="The latest record or identity link there.")
    first_order_at: datetime | None = strawberry.field(description="The first order placed there, if any.")


@strawberry.type(description="The channels a person came through, in order.")
class Journey:
    path: list[Channel] = strawberry.field(
        description="The channels in the order the person first appeared in them, e.g. "
        "[OFFICIAL_ACCOUNT, MINI_PROGRAM, APP]."
    )
    channels: list[ChannelPresence] = strawberry.field(description="Per channel, when the person was there.")

    @classmethod
    def of(cls, j: JourneyRecord) -> Journey:
        return cls(
            path=list(j.path),
            channels=[
                ChannelPresence(
                    channel=p.channel,
                    first_seen_at=p.first_seen_at,
                    last_seen_at=p.last_seen_at,
                    first_order_at=p.first_order_at,
                )
                for p in j.channels
            ],
        )
