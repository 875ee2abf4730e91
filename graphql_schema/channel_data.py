"""Channel data federated over the channel stores: orders, cart, behaviour, interests, ingestion."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from app.context import RequestContext
from app.domain.channel_data import CartRow, EventRow, OrderRow
from app.domain.channel_data import Interest as InterestRecord
from app.ingest.dictionary import DataDictionary as Dictionary
from app.ingest.service import IngestReport as Report
from app.ingest.service import RecordStatus
from graphql_schema.common import PageInfo
from graphql_schema.enums import Channel, OrderStatus
from graphql_schema.permissions import AUTHENTICATED
from loaders.channel_data import Page
from resolvers import channel_data as resolve


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

    @classmethod
    def of(cls, row: OrderRow, dictionary: Dictionary) -> Order:
        return cls(
            id=strawberry.ID(f"{row.channel.value}:{row.id}"),
            channel=row.channel,
            source_id=row.order_id,
            status=OrderStatus[dictionary.status_names[row.status_code]],
            status_code=row.status_code,
            total_cents=row.total_cents,
            currency=row.currency,
            items=[
                OrderItem(
                    sku=i["sku"],
                    name=i.get("name"),
                    quantity=i["quantity"],
                    unit_price_cents=i["unit_price_cents"],
                )
                for i in row.items
            ],
            placed_at=row.placed_at,
            updated_at=row.updated_at,
        )


@strawberry.type(description="A page of orders, newest first.")
class OrderConnection:
    nodes: list[Order] = strawberry.field(description="The orders of this page.")
    page_info: PageInfo = strawberry.field(description="Where this page ends.")
    total_count: int = strawberry.field(description="How many orders match, over all pages.")

    @classmethod
    def of(cls, page: Page[OrderRow], dictionary: Dictionary) -> OrderConnection:
        return cls(
            nodes=[Order.of(o, dictionary) for o in page.nodes],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
            total_count=page.total_count,
        )


@strawberry.type(description="A SKU in the unified cart: the latest change across channels wins.")
class CartItem:
    sku: str = strawberry.field(description="The product's SKU.")
    quantity: int = strawberry.field(description="How many are in the cart.")
    channel: Channel = strawberry.field(description="The channel of the latest change.")
    updated_at: datetime = strawberry.field(description="When it last changed (UTC).")


@strawberry.type(description="The unified cart.")
class Cart:
    items: list[CartItem] = strawberry.field(description="One entry per SKU.")

    @classmethod
    def of(cls, rows: list[CartRow]) -> Cart:
        return cls(
            items=[
                CartItem(sku=r.sku, quantity=r.quantity, channel=r.channel, updated_at=r.updated_at)
                for r in rows
            ]
        )


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

    @classmethod
    def of(cls, page: Page[EventRow]) -> BehaviorConnection:
        return cls(
            nodes=[
                BehaviorEvent(
                    id=strawberry.ID(f"{e.channel.value}:{e.id}"),
                    channel=e.channel,
                    type=e.type,
                    occurred_at=e.occurred_at,
                    properties=cast(JSON, e.properties),
                )
                for e in page.nodes
            ],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        )


@strawberry.type(description="A weighted interest derived from behaviour.")
class Interest:
    tag: str = strawberry.field(description="The interest, e.g. 母婴知识.")
    weight: float = strawberry.field(
        description="Relative weight: 1.0 for the strongest, recent behaviour counting more."
    )

    @classmethod
    def of(cls, found: InterestRecord) -> Interest:
        return cls(tag=found.tag, weight=found.weight)


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

    @classmethod
    def of(cls, report: Report) -> IngestReport:
        return cls(
            accepted=report.count(RecordStatus.ACCEPTED),
            duplicates=report.count(RecordStatus.DUPLICATE),
            rejected=report.count(RecordStatus.REJECTED),
            results=[RecordResult(id=r.id, status=r.status.value, reason=r.reason) for r in report.results],
        )


@strawberry.type(
    description="The data dictionary in force: standard fields, channel mappings, cleaning rules."
)
class DataDictionary:
    version: str = strawberry.field(description="The dictionary file's version.")
    document: JSON = strawberry.field(description="The whole dictionary, as its data file states it.")


@strawberry.type
class ChannelDataQuery:
    @strawberry.field(description="The data dictionary in force.", permission_classes=AUTHENTICATED)
    def data_dictionary(self, info: Info[RequestContext, None]) -> DataDictionary:
        dictionary = info.context.dictionary
        document: Any = dictionary.document
        return DataDictionary(version=dictionary.version, document=document)


@strawberry.type
class ChannelDataMutation:
    @strawberry.mutation(
        description="Ingest records of one channel (the common envelope); reported per record. "
        "Accepted records are committed before this answers.",
        permission_classes=AUTHENTICATED,
    )
    async def ingest(
        self, info: Info[RequestContext, None], channel: Channel, records: list[JSON]
    ) -> IngestReport:
        return IngestReport.of(await resolve.ingest(info.context, channel=channel, records=records))
