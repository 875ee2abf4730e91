"""Channel data federated over the channel stores: orders, cart, behaviour, interests, ingestion."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from graphql_schema.common import PageInfo, not_yet
from graphql_schema.enums import Channel, OrderStatus
from graphql_schema.permissions import AUTHENTICATED


@strawberry.type(description="One line of an order.")
class OrderItem:
    sku: str = strawberry.field(description="The product's SKU.")
    name: str | None = strawberry.field(description="The product name the channel sent, if any.")
    quantity: int = strawberry.field(description="How many were ordered.")
    unit_price_cents: int = strawberry.field(description="Price of one, in cents (fen).")


@strawberry.type(description="An order from one channel, in the data dictionary's standard shape.")
class Order:
    id: strawberry.ID = strawberry.field(description="Troika's id of the order.")
    channel: Channel = strawberry.field(description="The channel the order was placed in.")
    source_id: str = strawberry.field(description="The order's id in its channel.")
    status: OrderStatus = strawberry.field(description="Standard status.")
    status_code: int = strawberry.field(description="Data-dictionary code: 0..4.")
    total_cents: int = strawberry.field(description="Order total in cents (fen).")
    currency: str = strawberry.field(description="ISO 4217 currency, CNY unless the channel said otherwise.")
    items: list[OrderItem] = strawberry.field(description="The order's lines.")
    placed_at: datetime = strawberry.field(description="When the order was placed (UTC).")
    updated_at: datetime = strawberry.field(description="When its status last changed (UTC).")


@strawberry.type(description="A page of orders, newest first.")
class OrderConnection:
    nodes: list[Order] = strawberry.field(description="The orders of this page.")
    page_info: PageInfo = strawberry.field(description="Where this page ends.")
    total_count: int = strawberry.field(description="How many orders match, over all pages.")


@strawberry.type(description="A SKU in the unified cart: the latest change across channels wins.")
class CartItem:
    sku: str = strawberry.field(description="The product's SKU.")
    quantity: int = strawberry.field(description="How many are in the cart.")
    channel: Channel = strawberry.field(description="The channel of the latest change.")
    updated_at: datetime = strawberry.field(description="When it last changed (UTC).")


@strawberry.type(description="The unified cart.")
class Cart:
    items: list[CartItem] = strawberry.field(description="One entry per SKU.")


@strawberry.type(description="A behaviour event from one channel.")
class BehaviorEvent:
    id: strawberry.ID = strawberry.field(description="Troika's id of the event.")
    channel: Channel = strawberry.field(description="Where it happened.")
    type: str = strawberry.field(description="The event type, e.g. article_read.")
    occurred_at: datetime = strawberry.field(description="When it happened (UTC).")
    properties: JSON = strawberry.field(description="The event's properties as the channel sent them.")


@strawberry.type(description="A page of behaviour events, newest first.")
class BehaviorConnection:
    nodes: list[BehaviorEvent] = strawberry.field(description="The events of this page.")
    page_info: PageInfo = strawberry.field(description="Where this page ends.")


@strawberry.type(description="A weighted interest derived from behaviour.")
class Interest:
    tag: str = strawberry.field(description="The interest, e.g. 母婴知识.")
    weight: float = strawberry.field(description="Relative weight, higher is stronger.")


@strawberry.type(description="The outcome of one ingested record.")
class RecordResult:
    id: str = strawberry.field(description="The record's id in its channel.")
    status: str = strawberry.field(description="ACCEPTED, DUPLICATE or REJECTED")
    reason: str | None = strawberry.field(description="Why it was rejected, naming the field.")


@strawberry.type(description="What an ingestion did, per record and in total.")
class IngestReport:
    accepted: int = strawberry.field(description="Records stored.")
    duplicates: int = strawberry.field(description="Records seen before, by (channel, id).")
    rejected: int = strawberry.field(description="Records kept in the dead-letter table.")
    results: list[RecordResult] = strawberry.field(description="One result per record, in order.")


@strawberry.type
class ChannelDataMutation:
    @strawberry.mutation(
        description="Ingest records of one channel (the common envelope); reported per record.",
        permission_classes=AUTHENTICATED,
    )
    def ingest(self, channel: Channel, records: list[JSON]) -> IngestReport:
        raise not_yet("ingest", 3)
